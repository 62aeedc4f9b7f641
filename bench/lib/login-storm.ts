// Scenario (b): logins with correct passwords while GET /users runs at a fixed rate.
import { benchUsers } from '../peers/users.ts';
import { closedLoopLoad, pacedLoad, type LoadResult } from './load.ts';
import type { BenchOptions } from './options.ts';
import { sampleProcess, waitForQuietMachine } from './processes.ts';
import { median, pause, type Log } from './stats.ts';
import type { RunningTarget } from './targets.ts';
import { runProblems, type MeasuredRun } from './throughput.ts';

export interface LoginStormRun {
  idle: MeasuredRun;
  background: MeasuredRun;
  logins: LoadResult;
}

export interface LoginStormFigure {
  backgroundRatePerSecond: number;
  backgroundConnections: number;
  loginConnections: number;
  loginsPerSecond: number;
  loginP50Ms: number;
  loginP99Ms: number;
  idleP50Ms: number;
  idleP99Ms: number;
  stormP50Ms: number;
  stormP99Ms: number;
  /** p99 of GET /users during the storm ÷ without it. */
  p99StormOverIdle: number;
  /** Peak RSS of Gatehouse while it hashes (one Argon2 pool of 19 MiB per busy thread). */
  stormPeakRssMB: number;
  problems: string[];
  runs: LoginStormRun[];
}

export async function runLoginStorm(gatehouse: RunningTarget, options: BenchOptions, log: Log): Promise<LoginStormFigure> {
  const background = (durationSeconds: number) => () =>
    pacedLoad({
      url: `${gatehouse.baseUrl}/users`,
      ratePerSecond: options.stormBackgroundRate,
      durationSeconds,
      maxConnections: options.stormBackgroundConnections,
      headers: gatehouse.authHeaders,
    });
  const loginRequests = benchUsers.map((user) => ({
    method: 'POST',
    path: '/login',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: user.email, password: user.password }),
  }));

  // Unmeasured: brings the paced client's own code up to speed before the first idle figure.
  await background(Math.min(2, options.durationSeconds))();
  const runs: LoginStormRun[] = [];
  for (let run = 1; run <= options.runs; run++) {
    await waitForQuietMachine();
    const idleSampler = sampleProcess(gatehouse.server.pid);
    const idleLoad = await background(options.durationSeconds)();
    const idle = { load: idleLoad, server: idleSampler.stop() };
    await pause(200);

    await waitForQuietMachine();
    // The storm starts first and ends last, so the measured window is all storm.
    const stormSampler = sampleProcess(gatehouse.server.pid);
    const storm = closedLoopLoad({
      url: gatehouse.baseUrl,
      connections: options.stormLoginConnections,
      durationSeconds: options.durationSeconds + 1,
      requests: loginRequests,
    });
    await pause(500);
    const duringStorm = await background(options.durationSeconds)();
    const logins = await storm;
    const stormUsage = stormSampler.stop();
    runs.push({ idle, background: { load: duringStorm, server: stormUsage }, logins });
    log(
      `(b) run ${run}/${options.runs}: ${logins.requestsPerSecond.toFixed(1)} logins/s (p99 ${logins.latencyMs.p99.toFixed(0)} ms); ` +
        `GET /users @ ${options.stormBackgroundRate}/s p99 idle ${idleLoad.latencyMs.p99.toFixed(2)} ms, ` +
        `storm ${duringStorm.latencyMs.p99.toFixed(2)} ms; RSS ${stormUsage.peakRssMB.toFixed(0)} MB`,
    );
    // Hashes in flight when the storm stopped finish, and their memory goes, before the next idle figure.
    await pause(1000);
  }

  const idleP99Ms = median(runs.map((run) => run.idle.load.latencyMs.p99));
  const stormP99Ms = median(runs.map((run) => run.background.load.latencyMs.p99));
  // Noise is already reported for the paced runs, which share the storm's samples.
  const loginProblems = runProblems(runs.map((run) => ({ load: run.logins, server: run.background.server })))
    .filter((problem) => !problem.startsWith('noisy'))
    .map((problem) => `login: ${problem}`);
  return {
    backgroundRatePerSecond: options.stormBackgroundRate,
    backgroundConnections: options.stormBackgroundConnections,
    loginConnections: options.stormLoginConnections,
    loginsPerSecond: median(runs.map((run) => run.logins.requestsPerSecond)),
    loginP50Ms: median(runs.map((run) => run.logins.latencyMs.p50)),
    loginP99Ms: median(runs.map((run) => run.logins.latencyMs.p99)),
    idleP50Ms: median(runs.map((run) => run.idle.load.latencyMs.p50)),
    idleP99Ms,
    stormP50Ms: median(runs.map((run) => run.background.load.latencyMs.p50)),
    stormP99Ms,
    p99StormOverIdle: stormP99Ms / idleP99Ms,
    stormPeakRssMB: median(runs.map((run) => run.background.server.peakRssMB)),
    problems: [...new Set([...runProblems(runs.flatMap((run) => [run.idle, run.background])), ...loginProblems])],
    runs,
  };
}
