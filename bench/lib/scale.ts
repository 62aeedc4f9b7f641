// Scenario (d): does latency hold from a small to a large users table?
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { closedLoopLoad } from './load.ts';
import type { BenchOptions } from './options.ts';
import { stopServer, type Pinning } from './processes.ts';
import { scaleEmail, scalePassword, seedUsers, type SeedResult } from './seed.ts';
import { median, pause, type Log } from './stats.ts';
import { logIn, startGatehouse, type RunningTarget } from './targets.ts';
import { measureRun, runProblems, type MeasuredRun } from './throughput.ts';

export interface ScaleSizeFigure {
  users: number;
  seed: SeedResult;
  listUsers: { requestsPerSecond: number; p50Ms: number; p99Ms: number; runs: MeasuredRun[] };
  login: { requestsPerSecond: number; p50Ms: number; p99Ms: number; runs: MeasuredRun[] };
  peakRssMB: number;
}

export interface ScaleFigure {
  connections: number;
  sizes: [ScaleSizeFigure, ScaleSizeFigure];
  /** Large ÷ small. */
  ratios: { listUsersP50: number; listUsersP99: number; loginP50: number; loginP99: number };
  problems: string[];
}

const distinctLoginUsers = 64;

function loginRequests(users: number) {
  // Users spread over the whole table, so lookups do not all hit the same pages.
  return Array.from({ length: Math.min(distinctLoginUsers, users) }, (_, slot) => ({
    method: 'POST',
    path: '/login',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: scaleEmail(1 + Math.floor((slot * (users - 1)) / (distinctLoginUsers - 1))), password: scalePassword }),
  }));
}

async function prepareSize(users: number, pinning: Pinning, workDirectory: string, log: Log): Promise<{ target: RunningTarget; seed: SeedResult }> {
  const directory = join(workDirectory, `scale-${users}`);
  mkdirSync(directory, { recursive: true });
  const databasePath = join(directory, 'gatehouse.db');
  const logPath = join(directory, 'gatehouse.log');
  // The first start runs the migrations; rows go in while Gatehouse is stopped.
  const first = await startGatehouse(pinning, databasePath, logPath);
  await stopServer(first.server);
  const seed = await seedUsers(databasePath, users);
  log(`(d) seeded ${users} users in ${seed.seconds.toFixed(1)} s`);
  const { server, baseUrl } = await startGatehouse(pinning, databasePath, logPath);
  const token = await logIn(baseUrl, scaleEmail(users), scalePassword);
  const authHeaders = { authorization: `Bearer ${token}` };
  const page = (await (await fetch(`${baseUrl}/users?limit=50`, { headers: authHeaders })).json()) as { users?: unknown[] };
  if (page.users?.length !== Math.min(50, users)) throw new Error(`GET /users?limit=50 gave ${page.users?.length} users, expected 50`);
  return { target: { name: 'gatehouse', server, baseUrl, requiresAuth: true, token, authHeaders }, seed };
}

export async function runScale(pinning: Pinning, options: BenchOptions, workDirectory: string, log: Log): Promise<ScaleFigure> {
  const prepared = [];
  try {
    for (const users of options.scaleSizes) prepared.push({ users, ...(await prepareSize(users, pinning, workDirectory, log)) });
    const listRuns = prepared.map((): MeasuredRun[] => []);
    const loginRuns = prepared.map((): MeasuredRun[] => []);
    for (let run = 1; run <= options.runs; run++) {
      for (const [index, { users, target }] of prepared.entries()) {
        const list = await measureRun(target, () =>
          closedLoopLoad({ url: `${target.baseUrl}/users?limit=50`, connections: options.scaleConnections, durationSeconds: options.scaleDurationSeconds, headers: target.authHeaders }),
        );
        await pause(200);
        const login = await measureRun(target, () =>
          closedLoopLoad({ url: target.baseUrl, connections: options.scaleConnections, durationSeconds: options.scaleDurationSeconds, requests: loginRequests(users) }),
        );
        await pause(200);
        listRuns[index]!.push(list);
        loginRuns[index]!.push(login);
        log(
          `(d) run ${run}/${options.runs} ${users} users: GET /users?limit=50 p50 ${list.load.latencyMs.p50.toFixed(2)} ms p99 ${list.load.latencyMs.p99.toFixed(2)} ms; ` +
            `POST /login p50 ${login.load.latencyMs.p50.toFixed(1)} ms p99 ${login.load.latencyMs.p99.toFixed(1)} ms`,
        );
      }
    }
    const sizes = prepared.map(({ users, seed }, index): ScaleSizeFigure => {
      const summary = (runs: MeasuredRun[]) => ({
        requestsPerSecond: median(runs.map((run) => run.load.requestsPerSecond)),
        p50Ms: median(runs.map((run) => run.load.latencyMs.p50)),
        p99Ms: median(runs.map((run) => run.load.latencyMs.p99)),
        runs,
      });
      return {
        users,
        seed,
        listUsers: summary(listRuns[index]!),
        login: summary(loginRuns[index]!),
        peakRssMB: median([...listRuns[index]!, ...loginRuns[index]!].map((run) => run.server.peakRssMB)),
      };
    }) as [ScaleSizeFigure, ScaleSizeFigure];
    const [small, large] = sizes;
    return {
      connections: options.scaleConnections,
      sizes,
      ratios: {
        listUsersP50: large.listUsers.p50Ms / small.listUsers.p50Ms,
        listUsersP99: large.listUsers.p99Ms / small.listUsers.p99Ms,
        loginP50: large.login.p50Ms / small.login.p50Ms,
        loginP99: large.login.p99Ms / small.login.p99Ms,
      },
      problems: runProblems([...listRuns.flat(), ...loginRuns.flat()]),
    };
  } finally {
    for (const { target } of prepared) await stopServer(target.server);
  }
}
