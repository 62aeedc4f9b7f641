import { parseArgs } from 'node:util';

export const allTargetNames = ['ceiling', 'express-jsonwebtoken', 'fastify-jose', 'fastify-fast-jwt', 'gatehouse', 'gatehouse-node24'] as const;
export type TargetName = (typeof allTargetNames)[number];
export const allScenarios = ['a', 'b', 'c', 'd'] as const;
export type Scenario = (typeof allScenarios)[number];

export interface BenchOptions {
  smoke: boolean;
  /** Seconds of load per measurement in (a) and (b). */
  durationSeconds: number;
  /** Seconds per latency measurement in (d). */
  scaleDurationSeconds: number;
  /** Seconds of load per target before the first measurement (JIT, caches). */
  warmupSeconds: number;
  /** Seconds of hashing per run of (c). */
  hashSeconds: number;
  /** Each figure is the median of this many runs. */
  runs: number;
  connections: number[];
  targets: TargetName[];
  scenarios: Scenario[];
  /** Requests/s of GET /users kept up during the login storm (b). */
  stormBackgroundRate: number;
  stormBackgroundConnections: number;
  stormLoginConnections: number;
  scaleSizes: [number, number];
  scaleConnections: number;
  pin: boolean;
  /** Longest wait, before each measurement, for other processes to leave the machine idle (0: never wait). */
  quietWaitSeconds: number;
  enforce: boolean;
  /** Also write bench/RESULTS.md (markdown) from this run. */
  resultsMarkdown: boolean;
  outDir: string;
}

const usage = `npm run bench -- [flags]
  --smoke                 short run for CI: 1 run, ~2 s per measurement, small scale sizes
  --duration <s>          seconds per measurement in (a) and (b) (default 8; smoke 2)  env BENCH_DURATION
  --scale-duration <s>    seconds per latency measurement in (d) (default 5; smoke 2)
  --warmup <s>            seconds of warm-up per target (default 2; smoke 0.5)
  --runs <n>              runs per figure, median reported (default 3; smoke 1) env BENCH_RUNS
  --connections <list>    scenario (a) connection counts (default 64,16)
  --targets <list>        subset of ${allTargetNames.join(',')}
  --scenarios <list>      subset of a,b,c,d (default all)
  --storm-rate <r/s>      GET /users rate kept up during the login storm (default 1000)
  --scale-sizes <a,b>     users in the database for (d) (default 1000,1000000; smoke 1000,20000)
  --no-pin                do not use taskset even when it is available
  --quiet-wait <s>        before each measurement wait up to this long for other processes to go idle (default 5; smoke 1; 0 = off)
  --enforce               exit 1 when a Gatehouse target is not met
  --results-md            also write bench/RESULTS.md from this run (do it from a quiet full run)
  --out <dir>             where results-<timestamp>.json goes (default bench/out)
  --help`;

function numberList(text: string, flag: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((value) => !Number.isFinite(value) || value <= 0)) throw new Error(`${flag}: expected positive numbers, got "${text}"`);
  return values;
}

function positive(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag}: expected a positive number, got "${text}"`);
  return value;
}

function subset<T extends string>(text: string | undefined, allowed: readonly T[], flag: string): T[] {
  if (text === undefined) return [...allowed];
  const names = text.split(',').map((part) => part.trim()).filter(Boolean);
  const unknown = names.filter((name) => !allowed.includes(name as T));
  if (unknown.length > 0) throw new Error(`${flag}: unknown ${unknown.join(', ')} (known: ${allowed.join(', ')})`);
  return allowed.filter((name) => names.includes(name));
}

export function parseBenchOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      duration: { type: 'string' },
      'scale-duration': { type: 'string' },
      warmup: { type: 'string' },
      runs: { type: 'string' },
      connections: { type: 'string' },
      targets: { type: 'string' },
      scenarios: { type: 'string' },
      'storm-rate': { type: 'string' },
      'scale-sizes': { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string' },
      enforce: { type: 'boolean', default: false },
      'results-md': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const smoke = values.smoke || env.BENCH_SMOKE === '1';
  const durationSeconds = positive(values.duration ?? env.BENCH_DURATION, '--duration') ?? (smoke ? 2 : 8);
  const runs = Math.round(positive(values.runs ?? env.BENCH_RUNS, '--runs') ?? (smoke ? 1 : 3));
  const scaleSizes = values['scale-sizes'] ? numberList(values['scale-sizes'], '--scale-sizes') : smoke ? [1000, 20_000] : [1000, 1_000_000];
  if (scaleSizes.length !== 2) throw new Error('--scale-sizes: expected two sizes, e.g. 1000,1000000');
  return {
    smoke,
    durationSeconds,
    scaleDurationSeconds: positive(values['scale-duration'], '--scale-duration') ?? (smoke ? 2 : 5),
    warmupSeconds: positive(values.warmup, '--warmup') ?? (smoke ? 0.5 : 2),
    hashSeconds: smoke ? 1 : 4,
    runs,
    connections: values.connections ? numberList(values.connections, '--connections').map(Math.round) : [64, 16],
    targets: subset(values.targets, allTargetNames, '--targets'),
    scenarios: subset(values.scenarios, allScenarios, '--scenarios'),
    stormBackgroundRate: positive(values['storm-rate'], '--storm-rate') ?? 1000,
    stormBackgroundConnections: 16,
    stormLoginConnections: 8,
    scaleSizes: [Math.round(scaleSizes[0]!), Math.round(scaleSizes[1]!)],
    scaleConnections: 1,
    pin: !values['no-pin'],
    quietWaitSeconds: values['quiet-wait'] === '0' ? 0 : (positive(values['quiet-wait'], '--quiet-wait') ?? (smoke ? 1 : 5)),
    enforce: values.enforce,
    resultsMarkdown: values['results-md'],
    outDir: values.out ?? new URL('../out/', import.meta.url).pathname,
  };
}
