// Terminal tables, ratios and the target checks; the JSON file carries the same figures plus every run.
import type { Argon2Figure } from './argon2.ts';
import type { LoginStormFigure } from './login-storm.ts';
import type { TargetName } from './options.ts';
import type { ScaleFigure } from './scale.ts';
import type { ThroughputFigure } from './throughput.ts';

export interface Results {
  throughput: ThroughputFigure[];
  loginStorm?: LoginStormFigure;
  argon2?: Argon2Figure;
  scale?: ScaleFigure;
}

export interface RatioSet {
  /** requests/s of the row target ÷ requests/s of ceiling. */
  toCeiling: number;
  /** Row target ÷ column target: above 1 is more requests/s, or (p50, p99) slower. */
  vs: Partial<Record<TargetName, { requestsPerSecond: number; p50: number; p99: number }>>;
}

export type Ratios = Record<string, Partial<Record<TargetName, RatioSet>>>;

export function computeRatios(throughput: ThroughputFigure[]): Ratios {
  const ratios: Ratios = {};
  for (const connections of new Set(throughput.map((figure) => figure.connections))) {
    const figures = throughput.filter((figure) => figure.connections === connections);
    const ceiling = figures.find((figure) => figure.target === 'ceiling');
    const byTarget: Partial<Record<TargetName, RatioSet>> = {};
    for (const row of figures) {
      const vs: RatioSet['vs'] = {};
      for (const column of figures) {
        if (column.target === row.target) continue;
        vs[column.target] = {
          requestsPerSecond: row.requestsPerSecond / column.requestsPerSecond,
          p50: row.p50Ms / column.p50Ms,
          p99: row.p99Ms / column.p99Ms,
        };
      }
      byTarget[row.target] = { toCeiling: ceiling ? row.requestsPerSecond / ceiling.requestsPerSecond : Number.NaN, vs };
    }
    ratios[`${connections} connections`] = byTarget;
  }
  return ratios;
}

export interface TargetCheck {
  target: string;
  status: 'met' | 'NOT met' | 'n/a';
  measured: string;
  /** Other processes were busy during a run behind this figure: do not trust the status. */
  noisy: boolean;
}

const isNoisy = (problems: string[] | undefined) => (problems ?? []).some((problem) => problem.includes('noisy'));

function check(target: string, passed: boolean | undefined, measured: string, noisy = false): TargetCheck {
  return { target, status: passed === undefined ? 'n/a' : passed ? 'met' : 'NOT met', measured, noisy };
}

const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const percent = (value: number, digits = 0) => (Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : '—');

/** The targets for Gatehouse; "n/a" where a scenario did not run. */
export function checkTargets(results: Results, ratios: Ratios): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const gatehouseFigures = results.throughput.filter((figure) => figure.target === 'gatehouse');
  for (const figure of gatehouseFigures) {
    const set = ratios[`${figure.connections} connections`]?.gatehouse;
    // gatehouse-node24 is Gatehouse itself on another runtime, not a peer.
    const peers = Object.entries(set?.vs ?? {}).filter(([name]) => name !== 'ceiling' && !name.startsWith('gatehouse'));
    const noisy = results.throughput.some((each) => each.connections === figure.connections && isNoisy(each.problems));
    checks.push(
      check(`(a) c=${figure.connections}: ≥ 60 % of ceiling req/s`, set && Number.isFinite(set.toCeiling) ? set.toCeiling >= 0.6 : undefined, percent(set?.toCeiling ?? Number.NaN, 1), noisy),
    );
    checks.push(
      check(
        `(a) c=${figure.connections}: ahead of every peer, req/s and p99`,
        peers.length > 0 ? peers.every(([, ratio]) => ratio.requestsPerSecond > 1 && ratio.p99 < 1) : undefined,
        peers.map(([name, ratio]) => `${name} ×${fixed(ratio.requestsPerSecond)} req/s, ×${fixed(ratio.p99)} p99`).join('; ') || 'no peer measured',
        noisy,
      ),
    );
  }
  if (gatehouseFigures.length === 0) checks.push(check('(a) Gatehouse vs ceiling and peers', undefined, 'not measured'));

  const storm = results.loginStorm;
  const hashes = results.argon2?.hashesPerSecond;
  checks.push(
    check(
      '(b) logins/s ≥ 90 % of (c) hashes/s',
      storm && hashes ? storm.loginsPerSecond >= 0.9 * hashes : undefined,
      storm && hashes ? `${fixed(storm.loginsPerSecond, 1)} / ${fixed(hashes, 1)} = ${percent(storm.loginsPerSecond / hashes, 1)}` : 'not measured',
      isNoisy(storm?.problems),
    ),
  );
  checks.push(
    check(
      '(b) p99 of GET /users during storm ≤ 3× idle',
      storm ? storm.p99StormOverIdle <= 3 : undefined,
      storm ? `${fixed(storm.stormP99Ms)} ms / ${fixed(storm.idleP99Ms)} ms = ×${fixed(storm.p99StormOverIdle, 3)}` : 'not measured',
      isNoisy(storm?.problems),
    ),
  );
  const scale = results.scale;
  if (scale) {
    const [small, large] = scale.sizes;
    const labels: Record<string, string> = { listUsersP50: 'GET /users?limit=50 p50', listUsersP99: 'GET /users?limit=50 p99', loginP50: 'POST /login p50', loginP99: 'POST /login p99' };
    for (const [key, ratio] of Object.entries(scale.ratios)) {
      checks.push(check(`(d) ${labels[key] ?? key}, ${large.users} vs ${small.users} users ≤ 1.2×`, ratio <= 1.2, `×${fixed(ratio, 3)}`, isNoisy(scale.problems)));
    }
  } else {
    checks.push(check('(d) latency 1 k → 1 M users ≤ 1.2×', undefined, 'not measured'));
  }
  const rssFigures = [...gatehouseFigures.map((figure) => figure.peakRssMB), ...(storm ? [storm.stormPeakRssMB] : [])];
  checks.push(
    check('RSS under load ≤ 120 MB', rssFigures.length > 0 ? Math.max(...rssFigures) <= 120 : undefined, rssFigures.length > 0 ? `peak ${fixed(Math.max(...rssFigures), 0)} MB` : 'not measured'),
  );
  return checks;
}

export type ReportFormat = 'text' | 'markdown';

function table(format: ReportFormat, header: string[], rows: string[][], alignLeft = false): string {
  if (format === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(header), line(header.map((_, column) => (column === 0 || alignLeft ? '---' : '---:'))), ...rows.map(line)].join('\n');
  }
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, column) => (column === 0 || alignLeft ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

function throughputSection(format: ReportFormat, results: Results, ratios: Ratios, runsNote: string): string[] {
  const md = format === 'markdown';
  const out: string[] = [];
  for (const connections of new Set(results.throughput.map((figure) => figure.connections))) {
    const figures = results.throughput.filter((figure) => figure.connections === connections);
    const set = ratios[`${connections} connections`] ?? {};
    const names = figures.map((figure) => figure.target);
    const peerNames = names.filter((name) => name !== 'ceiling');
    out.push(`${md ? '### ' : ''}(a) GET /users with a valid token, ${connections} connections (${runsNote})`, ...(md ? [''] : []));
    out.push(
      table(
        format,
        ['target', 'req/s', 'p50 ms', 'p99 ms', 'RSS MB', 'idle RSS', 'server CPU', '% ceiling', ...peerNames.map((name) => `÷${name}`)],
        figures.map((figure) => [
          figure.target,
          fixed(figure.requestsPerSecond, 0),
          fixed(figure.p50Ms),
          fixed(figure.p99Ms),
          fixed(figure.peakRssMB, 0),
          fixed(figure.idleRssMB, 0),
          percent(figure.serverCores),
          percent(set[figure.target]?.toCeiling ?? Number.NaN),
          ...peerNames.map((name) => (name === figure.target ? '—' : `×${fixed(set[figure.target]?.vs[name]?.requestsPerSecond ?? Number.NaN)}`)),
        ]),
      ),
    );
    out.push(`${md ? '\n' : '  '}÷ columns: requests/s of the row ÷ the column (above 1: more requests/s). p99 of the row ÷ the column (below 1: faster):${md ? '\n' : ''}`);
    const indent = md ? '' : '  ';
    out.push(
      table(
        format,
        [`${indent}p99 ratio`, ...names],
        figures.map((figure) => [`${indent}${figure.target}`, ...names.map((name) => (name === figure.target ? '—' : `×${fixed(set[figure.target]?.vs[name]?.p99 ?? Number.NaN)}`))]),
      ),
    );
    if (md) out.push('');
    for (const figure of figures.filter((each) => each.problems.length > 0)) out.push(`${md ? '- ' : '  ! '}${figure.target}: ${figure.problems.join('; ')}`);
    out.push('');
  }
  return out;
}

/** Node 24 ÷ Node 20 for the same Gatehouse bundle, per connection count, when both ran. */
function runtimeSection(format: ReportFormat, results: Results, runsNote: string): string[] {
  const md = format === 'markdown';
  const rows: string[][] = [];
  for (const connections of new Set(results.throughput.map((figure) => figure.connections))) {
    const on20 = results.throughput.find((figure) => figure.connections === connections && figure.target === 'gatehouse');
    const on24 = results.throughput.find((figure) => figure.connections === connections && figure.target === 'gatehouse-node24');
    if (!on20 || !on24) continue;
    rows.push([
      String(connections),
      `${fixed(on24.requestsPerSecond, 0)} ÷ ${fixed(on20.requestsPerSecond, 0)} = ×${fixed(on24.requestsPerSecond / on20.requestsPerSecond, 3)}`,
      `×${fixed(on24.p50Ms / on20.p50Ms, 3)}`,
      `×${fixed(on24.p99Ms / on20.p99Ms, 3)}`,
      `${fixed(on24.peakRssMB, 0)} ÷ ${fixed(on20.peakRssMB, 0)} = ×${fixed(on24.peakRssMB / on20.peakRssMB, 3)}`,
      `${fixed(on24.idleRssMB, 0)} ÷ ${fixed(on20.idleRssMB, 0)}`,
    ]);
  }
  if (rows.length === 0) return [];
  return [
    `${md ? '### ' : ''}(a) runtimes: gatehouse-node24 ÷ gatehouse, the same bundle on Node 24 and on this Node (${runsNote})`,
    ...(md ? [''] : []),
    table(format, ['connections', 'req/s', 'p50', 'p99', 'peak RSS MB', 'idle RSS MB'], rows),
    '',
  ];
}

function otherSections(format: ReportFormat, results: Results, runsNote: string): string[] {
  const md = format === 'markdown';
  const heading = (text: string) => [`${md ? '### ' : ''}${text}`, ...(md ? [''] : [])];
  const note = (text: string) => `${md ? '\n' : '  '}${text}`;
  const out: string[] = [];
  const storm = results.loginStorm;
  if (storm) {
    out.push(
      ...heading(
        `(b) login storm on gatehouse (${runsNote}): ${storm.loginConnections} connections POST /login, GET /users paced at ${storm.backgroundRatePerSecond}/s over ${storm.backgroundConnections} connections`,
      ),
    );
    out.push(
      table(
        format,
        ['', 'logins/s', 'login p50 ms', 'login p99 ms', 'GET p50 ms', 'GET p99 ms', 'RSS MB'],
        [
          ['idle', '—', '—', '—', fixed(storm.idleP50Ms), fixed(storm.idleP99Ms), '—'],
          ['storm', fixed(storm.loginsPerSecond, 1), fixed(storm.loginP50Ms, 1), fixed(storm.loginP99Ms, 1), fixed(storm.stormP50Ms), fixed(storm.stormP99Ms), fixed(storm.stormPeakRssMB, 0)],
        ],
      ),
    );
    out.push(note(`p99 storm ÷ idle: ×${fixed(storm.p99StormOverIdle)}`));
    if (storm.problems.length > 0) out.push(note(`! ${storm.problems.join('; ')}`));
    out.push('');
  }
  const argon2 = results.argon2;
  if (argon2) {
    out.push(
      ...heading(
        `(c) Argon2id m=${argon2.parameters.memoryKiB} t=${argon2.parameters.timeCost} p=${argon2.parameters.parallelism}, in-process, Gatehouse hashing pool of ${argon2.threadPoolSize} worker(s) at nice 19, ${argon2.cores}: ${fixed(argon2.hashesPerSecond, 1)} hashes/s (${runsNote})`,
      ),
    );
    if (!md) out.push('');
  }
  const scale = results.scale;
  if (scale) {
    out.push(...heading(`(d) scale, ${scale.connections} connection (${runsNote})`));
    out.push(
      table(
        format,
        ['users', 'seed s', 'GET /users?limit=50 p50 ms', 'p99 ms', 'req/s', 'POST /login p50 ms', 'p99 ms', 'RSS MB'],
        scale.sizes.map((size) => [
          String(size.users),
          fixed(size.seed.seconds, 1),
          fixed(size.listUsers.p50Ms),
          fixed(size.listUsers.p99Ms),
          fixed(size.listUsers.requestsPerSecond, 0),
          fixed(size.login.p50Ms, 1),
          fixed(size.login.p99Ms, 1),
          fixed(size.peakRssMB, 0),
        ]),
      ),
    );
    const ratio = scale.ratios;
    out.push(note(`large ÷ small: list p50 ×${fixed(ratio.listUsersP50)}, p99 ×${fixed(ratio.listUsersP99)}; login p50 ×${fixed(ratio.loginP50)}, p99 ×${fixed(ratio.loginP99)}`));
    if (scale.problems.length > 0) out.push(note(`! ${scale.problems.join('; ')}`));
    out.push('');
  }
  return out;
}

export function formatReport(format: ReportFormat, results: Results, ratios: Ratios, checks: TargetCheck[], howItRan: string[], runs: number): string {
  const md = format === 'markdown';
  const runsNote = runs === 1 ? '1 run' : `median of ${runs} runs`;
  const out: string[] = md ? ['## How it ran', '', ...howItRan.map((line) => `- ${line}`), ''] : ['', 'How it ran:', ...howItRan.map((line) => `  ${line}`), ''];
  out.push(...throughputSection(format, results, ratios, runsNote), ...runtimeSection(format, results, runsNote), ...otherSections(format, results, runsNote));
  out.push(md ? '## Gatehouse targets (issue 5)\n' : 'Gatehouse targets (issue 5):');
  const indent = md ? '' : '  ';
  out.push(
    table(format, [`${indent}target`, 'status', 'measured'], checks.map((each) => [`${indent}${each.target}`, each.noisy ? `${each.status} (noisy)` : each.status, each.measured]), true),
  );
  if (checks.some((each) => each.noisy)) out.push(`${md ? '\n' : '  '}(noisy): other processes were busy during a run behind this figure; rerun on a quiet machine before trusting it.`);
  return out.join('\n');
}
