import parsePrometheusTextFormat, { type ParsedFamily, type ParsedSample } from 'parse-prometheus-text-format';

/** A scrape parsed by a real Prometheus text parser, with lookups by name and labels. */
export interface Scrape {
  /** Every family as the parser read it (a malformed line throws), with its declared type. */
  families: ParsedFamily[];
  family(name: string): ParsedFamily | undefined;
  /** The samples of a counter or gauge whose labels include these (all of them with none given). */
  samples(name: string, labels?: Record<string, string>): ParsedSample[];
  /** A counter's or gauge's value for exactly one matching sample; 0 when the family has none. */
  value(name: string, labels?: Record<string, string>): number;
  /** A histogram's count summed over the series whose labels include these. */
  histogramCount(name: string, labels?: Record<string, string>): number;
  /** One histogram series' cumulative buckets as [le, count], by increasing le (+Inf last). */
  histogramBuckets(name: string, labels: Record<string, string>): Array<[le: number, count: number]>;
}

export function parseScrape(text: string): Scrape {
  const families = parsePrometheusTextFormat(text);
  // The parser folds all of a histogram's series into one sample and drops their labels (it handles
  // unlabelled histograms only); read again with histograms as untyped, their _bucket, _sum and _count
  // lines come out as series of their own, labels kept.
  const series = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'));
  const family = (name: string) => families.find((candidate) => candidate.name === name);
  const matching = (name: string, labels: Record<string, string>) =>
    series
      .filter((candidate) => candidate.name === name)
      .flatMap((candidate) => candidate.metrics)
      .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value));
  return {
    families,
    family,
    samples: (name, labels = {}) => matching(name, labels),
    value(name, labels = {}) {
      const found = matching(name, labels);
      if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
      return found.length === 0 ? 0 : Number(found[0]!.value);
    },
    histogramCount: (name, labels = {}) => matching(`${name}_count`, labels).reduce((total, sample) => total + Number(sample.value), 0),
    histogramBuckets(name, labels) {
      const buckets = matching(`${name}_bucket`, labels);
      const series = new Set(buckets.map((sample) => JSON.stringify({ ...sample.labels, le: undefined })));
      if (series.size !== 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${series.size} series`);
      return buckets
        .map((sample): [number, number] => [sample.labels!.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels!.le), Number(sample.value)])
        .sort(([a], [b]) => a - b);
    },
  };
}
