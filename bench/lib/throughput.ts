// Scenario (a): authenticated GET /users, closed loop, at each connection count.
import { closedLoopLoad, type LoadResult } from './load.ts';
import type { BenchOptions, TargetName } from './options.ts';
import { readRssMB, sampleProcess, waitForQuietMachine, type ProcessUsage } from './processes.ts';
import { median, pause, type Log } from './stats.ts';
import type { RunningTarget } from './targets.ts';

export interface MeasuredRun {
  load: LoadResult;
  server: ProcessUsage;
}

export interface ThroughputFigure {
  target: TargetName;
  connections: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMB: number;
  /** RSS after start-up and the correctness checks, before any load. */
  idleRssMB: number;
  /** Server CPU per wall second; well under 1 means the server was not the bottleneck. */
  serverCores: number;
  loadGeneratorCores: number;
  /** Cores that other processes kept busy (median): a sign of a noisy run. */
  otherCores: number;
  problems: string[];
  runs: MeasuredRun[];
}

export async function measureRun(target: RunningTarget, load: () => Promise<LoadResult>): Promise<MeasuredRun> {
  await waitForQuietMachine();
  const sampler = sampleProcess(target.server.pid);
  const result = await load();
  return { load: result, server: sampler.stop() };
}

export function runProblems(runs: MeasuredRun[]): string[] {
  const problems = new Set<string>();
  for (const { load } of runs) {
    if (load.notOkCount > 0) problems.add(`non-2xx answers: ${JSON.stringify(load.statusCodes)}`);
  }
  const errors = runs.reduce((sum, run) => sum + run.load.errors, 0);
  const timeouts = runs.reduce((sum, run) => sum + run.load.timeouts, 0);
  if (errors > 0 || timeouts > 0) problems.add(`${errors} socket errors, ${timeouts} timeouts`);
  const busiestLoadGenerator = Math.max(0, ...runs.map((run) => run.load.loadGeneratorCores));
  if (busiestLoadGenerator > 0.85) problems.add(`load generator near its limit (up to ${(busiestLoadGenerator * 100).toFixed(0)} % of its core): req/s may be a lower bound`);
  const worstOtherCores = Math.max(0, ...runs.map((run) => run.server.otherCores));
  if (worstOtherCores > 0.15) problems.add(`noisy: other processes kept up to ${worstOtherCores.toFixed(2)} cores busy during a run`);
  return [...problems];
}

export function summarise(target: TargetName, connections: number, runs: MeasuredRun[], idleRssMB = Number.NaN): ThroughputFigure {
  return {
    target,
    connections,
    requestsPerSecond: median(runs.map((run) => run.load.requestsPerSecond)),
    p50Ms: median(runs.map((run) => run.load.latencyMs.p50)),
    p99Ms: median(runs.map((run) => run.load.latencyMs.p99)),
    peakRssMB: median(runs.map((run) => run.server.peakRssMB)),
    idleRssMB,
    serverCores: median(runs.map((run) => run.server.cpuCores)),
    loadGeneratorCores: median(runs.map((run) => run.load.loadGeneratorCores)),
    otherCores: median(runs.map((run) => run.server.otherCores)),
    problems: runProblems(runs),
    runs,
  };
}

export async function runThroughput(targets: RunningTarget[], options: BenchOptions, log: Log): Promise<ThroughputFigure[]> {
  const load = (target: RunningTarget, connections: number, durationSeconds: number) => () =>
    closedLoopLoad({ url: `${target.baseUrl}/users`, connections, durationSeconds, headers: target.authHeaders });

  const idleRssMB = new Map(targets.map((target) => [target.name, readRssMB(target.server.pid)]));
  for (const target of targets) {
    log(`(a) warm-up ${target.name} ${options.warmupSeconds} s`);
    await load(target, Math.max(...options.connections), options.warmupSeconds)();
    await pause(200);
  }
  // Targets take turns within each run, so a noisy moment hurts one run of each, not one target;
  // the first to go changes from run to run, so no target always follows the same neighbour.
  const runsByKey = new Map<string, MeasuredRun[]>();
  for (let run = 1; run <= options.runs; run++) {
    const order = targets.map((_, index) => targets[(index + run - 1) % targets.length]!);
    for (const connections of options.connections) {
      for (const target of order) {
        const measured = await measureRun(target, load(target, connections, options.durationSeconds));
        const key = `${target.name}@${connections}`;
        runsByKey.set(key, [...(runsByKey.get(key) ?? []), measured]);
        log(
          `(a) run ${run}/${options.runs} ${target.name} c=${connections}: ${measured.load.requestsPerSecond.toFixed(0)} req/s, ` +
            `p50 ${measured.load.latencyMs.p50.toFixed(2)} ms, p99 ${measured.load.latencyMs.p99.toFixed(2)} ms, ` +
            `RSS ${measured.server.peakRssMB.toFixed(0)} MB, server CPU ${(measured.server.cpuCores * 100).toFixed(0)} %, ` +
            `load generator CPU ${(measured.load.loadGeneratorCores * 100).toFixed(0)} %, other processes ${(measured.server.otherCores * 100).toFixed(0)} %`,
        );
        await pause(200);
      }
    }
  }
  return options.connections.flatMap((connections) =>
    targets.map((target) => summarise(target.name, connections, runsByKey.get(`${target.name}@${connections}`) ?? [], idleRssMB.get(target.name))),
  );
}
