// Scale-out benchmarks (issue 9), side by side in one run, interleaved:
//   (e) workers: logins/s and GET /users req/s (and req/s per server CPU-second) with WORKERS=2 against 1;
//   (f) the cost of shared counters on the credential path (memory, the cluster primary, Redis), and the
//       delay from a logout on instance A to its refusal on instance B (Redis pub/sub, and the database sync).
// `npm run bench:scale-out -- --help`. Needs the machine's Redis (REDIS_URL, default redis://127.0.0.1:6379).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closedLoopLoad, type LoadResult } from './lib/load.ts';
import { freePort, spawnServer, stopServer, waitUntilReady, type ServerProcess } from './lib/processes.ts';
import { log, median } from './lib/stats.ts';
import { gatehouseEnv, gatehouseNodeArguments, logIn, prepareGatehouse, repoRoot, signUp } from './lib/targets.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    trials: { type: 'string', default: '40' },
    only: { type: 'string' },
    redis: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write('npm run bench:scale-out -- [--only e|f] [--duration 5] [--runs 3] [--trials 40] [--redis redis://127.0.0.1:6379]\n');
  process.exit(0);
}
const durationSeconds = Number(flags.duration);
const runs = Number(flags.runs);
const trials = Number(flags.trials);
const PASSWORD = 'correct horse battery staple';
const noPinning = { used: false, description: 'not pinned: workers must be free to use both cores' };

interface Instance {
  server: ServerProcess;
  baseUrl: string;
}

async function startInstance(databasePath: string, env: Record<string, string>, tag: string): Promise<Instance> {
  const port = await freePort();
  const logPath = join(workDirectory, `${tag}-${port}.log`);
  const server = spawnServer(noPinning, gatehouseNodeArguments(), { cwd: repoRoot, env: { ...gatehouseEnv(port, databasePath), ...env }, logPath });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntilReady(server, `${baseUrl}/healthz`, 60_000);
  return { server, baseUrl };
}

/** CPU seconds of a process and every descendant (the cluster primary and its workers). */
function treeCpuSeconds(rootPid: number): number {
  const parents = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(fields[1]));
      cpu.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  for (const [pid, seconds] of cpu) {
    for (let current: number | undefined = pid; current !== undefined && current > 1; current = parents.get(current)) {
      if (current === rootPid) {
        total += seconds;
        break;
      }
    }
  }
  return total;
}

async function measure(instance: Instance, load: () => Promise<LoadResult>): Promise<LoadResult & { serverCpuSeconds: number }> {
  const before = treeCpuSeconds(instance.server.pid);
  const result = await load();
  return { ...result, serverCpuSeconds: treeCpuSeconds(instance.server.pid) - before };
}

const workDirectory = mkdtempSync(join(tmpdir(), 'gatehouse-scale-out-'));
const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  log(line);
};

async function workers(): Promise<void> {
  const databasePath = join(workDirectory, 'workers.db');
  const seed = await startInstance(databasePath, {}, 'seed');
  const users = Array.from({ length: 32 }, (_, index) => ({ id: index + 1, name: `User ${index}`, email: `user${index}@example.com`, password: PASSWORD }));
  for (const user of users) await signUp(seed.baseUrl, user);
  await stopServer(seed.server);

  const figures: Record<string, { logins: number[]; users: number[]; usersPerCpu: number[]; loginCpu: number[] }> = {};
  // One process hashes on every core already (HASH_POOL_SIZE defaults to the cores); the one-thread
  // process is the issue's baseline of "one worker, one hashing thread".
  const setups: Array<[string, Record<string, string>]> = [
    ['1 worker, 1 hashing thread', { WORKERS: '1', HASH_POOL_SIZE: '1' }],
    ['1 worker (hashing on 2 threads)', { WORKERS: '1' }],
    ['2 workers (1 hashing thread each)', { WORKERS: '2' }],
  ];
  for (let run = 0; run < runs; run += 1) {
    for (const [count, env] of setups) {
      const instance = await startInstance(databasePath, env, 'workers');
      try {
        const token = await logIn(instance.baseUrl, users[0]!.email, PASSWORD);
        const loginBodies = users.map((user) => ({ method: 'POST' as const, path: '/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: user.email, password: PASSWORD }) }));
        const logins = await measure(instance, () => closedLoopLoad({ url: `${instance.baseUrl}/login`, connections: 8, durationSeconds, requests: loginBodies }));
        const list = await measure(instance, () =>
          closedLoopLoad({ url: `${instance.baseUrl}/users`, connections: 32, durationSeconds, headers: { 'x-access-token': token } }),
        );
        const entry = (figures[count] ??= { logins: [], users: [], usersPerCpu: [], loginCpu: [] });
        entry.logins.push(logins.requestsPerSecond);
        entry.loginCpu.push(logins.serverCpuSeconds / logins.durationSeconds);
        entry.users.push(list.requestsPerSecond);
        entry.usersPerCpu.push(list.okCount / Math.max(list.serverCpuSeconds, 0.001));
        log(`(e) run ${run + 1} ${count}: ${logins.requestsPerSecond.toFixed(1)} logins/s, ${list.requestsPerSecond.toFixed(0)} GET /users/s, ${(list.okCount / list.serverCpuSeconds).toFixed(0)} per CPU-s`);
      } finally {
        await stopServer(instance.server);
      }
    }
  }
  const base = figures[setups[0]![0]]!;
  say('### (e) workers on this machine');
  say();
  say(`| | ${setups.map(([name]) => name).join(' | ')} |`);
  say(`|---|${setups.map(() => '---').join('|')}|`);
  const row = (label: string, pick: (entry: typeof base) => number[], digits: number) =>
    say(`| ${label} | ${setups.map(([name]) => { const value = median(pick(figures[name]!)); return `${value.toFixed(digits)} (×${(value / median(pick(base))).toFixed(2)})`; }).join(' | ')} |`);
  row('logins/s (8 connections)', (entry) => entry.logins, 1);
  row('server CPU during logins (cores)', (entry) => entry.loginCpu, 2);
  row('GET /users req/s (32 connections)', (entry) => entry.users, 0);
  row('GET /users per server CPU-second', (entry) => entry.usersPerCpu, 0);
  say();
}

/** Closed loop with fetch: every answer counts (a 401 is the expected one here), latency of each. */
async function answeredLoad(url: string, body: string, connections: number): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + durationSeconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await response.arrayBuffer();
        if (response.status === 401) latencies.push(performance.now() - sent);
      }
    }),
  );
  return { perSecond: latencies.length / ((performance.now() - started) / 1000), latencies };
}

async function counters(): Promise<void> {
  const databasePath = join(workDirectory, 'counters.db');
  const setups: Array<[string, Record<string, string>]> = [
    ['memory (1 process)', {}],
    ['cluster primary (WORKERS=2)', { WORKERS: '2' }],
    ['Redis (1 process)', { REDIS_URL: flags.redis!, REDIS_KEY_PREFIX: `bench_${randomBytes(4).toString('hex')}:` }],
  ];
  const results: Record<string, { rps: number[]; p50: number[]; p99: number[] }> = {};
  // POST /token/refresh with a well-formed unknown token: the per-client counter, one primary-key lookup, a 401.
  const body = JSON.stringify({ refresh_token: 'A'.repeat(43) });
  for (let run = 0; run < runs; run += 1) {
    for (const [name, env] of setups) {
      const instance = await startInstance(databasePath, env, 'counters');
      try {
        const result = await answeredLoad(`${instance.baseUrl}/token/refresh`, body, 16);
        const entry = (results[name] ??= { rps: [], p50: [], p99: [] });
        entry.rps.push(result.perSecond);
        entry.p50.push(percentile(result.latencies, 0.5));
        entry.p99.push(percentile(result.latencies, 0.99));
      } finally {
        await stopServer(instance.server);
      }
    }
  }
  say('### (f) shared counters on the credential path');
  say();
  say('POST /token/refresh with an unknown token (per-client counter + one lookup + 401), 16 connections:');
  say();
  say('| counters in | req/s | p50 ms | p99 ms |');
  say('|---|---|---|---|');
  for (const [name] of setups) {
    const entry = results[name]!;
    say(`| ${name} | ${median(entry.rps).toFixed(0)} | ${median(entry.p50).toFixed(2)} | ${median(entry.p99).toFixed(2)} |`);
  }
  say();
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

async function propagation(): Promise<void> {
  say('### (f) revocation reaching another instance');
  say();
  say(`Logout answered by instance A → first 401 from instance B (B polled every 2 ms), ${trials} trials each:`);
  say();
  say('| medium | p50 ms | p99 ms | max ms |');
  say('|---|---|---|---|');
  for (const [name, env] of [
    ['Redis pub/sub', { REDIS_URL: flags.redis!, REDIS_KEY_PREFIX: `bench_${randomBytes(4).toString('hex')}:` }],
    ['database sync (REVOCATION_SYNC_INTERVAL=500ms)', {}],
  ] as Array<[string, Record<string, string>]>) {
    const databasePath = join(workDirectory, `propagation-${randomBytes(3).toString('hex')}.db`);
    const a = await startInstance(databasePath, env, 'a');
    const b = await startInstance(databasePath, env, 'b');
    const delays: number[] = [];
    try {
      await signUp(a.baseUrl, { id: 1, name: 'Delay', email: 'delay@example.com', password: PASSWORD });
      for (let trial = 0; trial < trials; trial += 1) {
        const token = await logIn(a.baseUrl, 'delay@example.com', PASSWORD);
        const me = () => fetch(`${b.baseUrl}/me`, { headers: { 'x-access-token': token } }).then((response) => response.status);
        if ((await me()) !== 200) throw new Error('B did not accept the token');
        // A random moment within a sync interval, so the trials do not fall into step with B's polling.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
        await fetch(`${a.baseUrl}/logout`, { method: 'POST', headers: { 'x-access-token': token } });
        const loggedOutAt = performance.now();
        while ((await me()) !== 401) {
          if (performance.now() - loggedOutAt > 10_000) throw new Error('B never refused the token');
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        delays.push(performance.now() - loggedOutAt);
      }
    } finally {
      await stopServer(a.server);
      await stopServer(b.server);
    }
    say(`| ${name} | ${percentile(delays, 0.5).toFixed(1)} | ${percentile(delays, 0.99).toFixed(1)} | ${Math.max(...delays).toFixed(1)} |`);
  }
  say();
}

try {
  log(`building: ${prepareGatehouse()}`);
  const wanted = (part: string) => flags.only === undefined || flags.only.split(',').includes(part);
  if (wanted('e')) await workers();
  if (wanted('f')) await counters();
  if (wanted('f')) await propagation();
  say(`_${new Date().toISOString()}, ${durationSeconds} s per measurement, median of ${runs} interleaved runs; Node ${process.version}; servers not pinned, the load generator shares the 2 cores._`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
} finally {
  rmSync(workDirectory, { recursive: true, force: true });
}
