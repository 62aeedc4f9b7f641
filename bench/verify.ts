// Benchmark (g), issue 10: a resource-server route protected by @gatehouse/verify (Fastify and Express)
// against the same route with jose's jwtVerify per request and with fastify + fast-jwt and its cache,
// side by side in one run, interleaved, against one live Gatehouse. `npm run bench:verify -- --help`.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { systemClock } from '../packages/server/src/clock.ts';
import { createClient } from '../packages/server/src/clients/clients.ts';
import { createDb } from '../packages/server/src/storage/db.ts';
import { closedLoopLoad, type LoadResult } from './lib/load.ts';
import { freePort, quietStats, sampleProcess, setUpPinning, spawnServer, stopServer, waitForQuietMachine, waitUntilReady, type ProcessUsage, type ServerProcess } from './lib/processes.ts';
import { log, median, pause } from './lib/stats.ts';
import { forgedTokens, gatehouseEnv, gatehouseNodeArguments, logIn, prepareGatehouse, repoRoot, signUp } from './lib/targets.ts';
import { benchUsers } from './peers/users.ts';

const TARGETS = ['fastify-no-auth', 'verify-fastify', 'express-no-auth', 'verify-express', 'fastify-jose-jwks', 'fastify-fast-jwt'] as const;
type Target = (typeof TARGETS)[number];
const DESCRIPTIONS: Record<Target, string> = {
  'fastify-no-auth': 'Fastify, no token check (ceiling)',
  'verify-fastify': 'Fastify + @gatehouse/verify plugin (feed on)',
  'express-no-auth': 'Express 5, no token check (its own ceiling)',
  'verify-express': 'Express 5 + @gatehouse/verify middleware (feed on)',
  'fastify-jose-jwks': 'Fastify + jose jwtVerify per request (remote JWKS)',
  'fastify-fast-jwt': 'Fastify + fast-jwt, verify cache on',
};

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    'quiet-wait': { type: 'string', default: '5' },
    'no-pin': { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write('npm run bench:verify -- [--duration 8] [--warmup 2] [--runs 3] [--connections 64] [--quiet-wait 5] [--no-pin] [--smoke]\n');
  process.exit(0);
}
const durationSeconds = flags.smoke ? 2 : Number(flags.duration);
const warmupSeconds = flags.smoke ? 0.5 : Number(flags.warmup);
const runs = flags.smoke ? 1 : Number(flags.runs);
const connections = Number(flags.connections);
const pinning = setUpPinning(!flags['no-pin']);
quietStats.maxWaitSeconds = Number(flags['quiet-wait']);
quietStats.totalBudgetSeconds = flags.smoke ? 5 : 45;

const workDirectory = mkdtempSync(join(tmpdir(), 'gatehouse-bench-verify-'));
const bundleDirectory = new URL('./out/verify-targets/', import.meta.url).pathname;
const started: ServerProcess[] = [];

interface RunningTarget {
  name: Target;
  server: ServerProcess;
  baseUrl: string;
}

/** Bundled like the other peers: plain node, no TypeScript loader in any measured process; packages stay in node_modules. */
async function bundleTargets(): Promise<void> {
  await build({
    entryPoints: TARGETS.map((name) => new URL(`./verify-targets/${name}.ts`, import.meta.url).pathname),
    outdir: bundleDirectory,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
}

async function startGatehouse(): Promise<{ baseUrl: string; token: string; clientId: string; clientSecret: string }> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const databasePath = join(workDirectory, 'gatehouse.db');
  // Not pinned: it only answers the verifiers' long polls while the targets are loaded.
  const server = spawnServer({ used: false, description: '' }, gatehouseNodeArguments(), {
    cwd: repoRoot,
    env: { ...gatehouseEnv(port, databasePath), JWT_ISSUER: baseUrl, ACCESS_TOKEN_TTL: '3600' },
    logPath: join(workDirectory, 'gatehouse.log'),
  });
  started.push(server);
  await waitUntilReady(server, `${baseUrl}/healthz`, 60_000);
  const user = benchUsers[0]!;
  await signUp(baseUrl, user);
  const token = await logIn(baseUrl, user.email, user.password);
  // The confidential client `gatehouse clients create` would make, through the clients core.
  const db = await createDb(`sqlite:${databasePath}`);
  const { secret } = await createClient({ db: db.kysely, clock: systemClock }, { id: 'bench-verifier', name: 'bench:verify', type: 'confidential' });
  await db.close();
  return { baseUrl, token, clientId: 'bench-verifier', clientSecret: secret! };
}

async function startTarget(name: Target, gatehouse: { baseUrl: string; clientId: string; clientSecret: string }): Promise<RunningTarget> {
  const port = await freePort();
  const server = spawnServer(pinning, [join(bundleDirectory, `${name}.mjs`)], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      GATEHOUSE_ISSUER: gatehouse.baseUrl,
      GATEHOUSE_AUDIENCE: 'gatehouse',
      GATEHOUSE_CLIENT_ID: gatehouse.clientId,
      GATEHOUSE_CLIENT_SECRET: gatehouse.clientSecret,
    },
    logPath: join(workDirectory, `${name}.log`),
  });
  started.push(server);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntilReady(server, `${baseUrl}/healthz`, 30_000);
  return { name, server, baseUrl };
}

/** Nobody is measured who accepts a forged token or refuses the valid one. */
async function checkTarget(target: RunningTarget, token: string): Promise<string[]> {
  const problems: string[] = [];
  const expectStatus = async (label: string, headers: Record<string, string>, expected: number) => {
    const response = await fetch(`${target.baseUrl}/orders`, { headers });
    await response.arrayBuffer();
    if (response.status !== expected) problems.push(`${label}: expected ${expected}, got ${response.status}`);
  };
  if (target.name.endsWith('-no-auth')) {
    await expectStatus('no token', {}, 200);
    return problems;
  }
  await expectStatus('valid token', { authorization: `Bearer ${token}` }, 200);
  await expectStatus('no token', {}, 401);
  for (const [label, forged] of Object.entries(forgedTokens(token))) await expectStatus(`forged token: ${label}`, { authorization: `Bearer ${forged}` }, 401);
  return problems;
}

interface Run {
  load: LoadResult;
  server: ProcessUsage;
}

async function measure(target: RunningTarget, token: string, seconds: number): Promise<Run> {
  await waitForQuietMachine();
  const sampler = sampleProcess(target.server.pid);
  const load = await closedLoopLoad({ url: `${target.baseUrl}/orders`, connections, durationSeconds: seconds, headers: { authorization: `Bearer ${token}` } });
  return { load, server: sampler.stop() };
}

const round = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

async function main(): Promise<number> {
  const startedAt = performance.now();
  log('bench:verify: building Gatehouse and the targets');
  prepareGatehouse();
  await bundleTargets();
  const gatehouse = await startGatehouse();
  const targets: RunningTarget[] = [];
  for (const name of TARGETS) {
    const target = await startTarget(name, gatehouse);
    const problems = await checkTarget(target, gatehouse.token);
    if (problems.length > 0) {
      log(`bench:verify: ${name} failed its checks, not measured:\n  ${problems.join('\n  ')}`);
      return 1;
    }
    targets.push(target);
    log(`bench:verify: ${name} up (pid ${target.server.pid}), valid token 200, missing and forged tokens 401`);
  }
  for (const target of targets) {
    log(`bench:verify: warm-up ${target.name} ${warmupSeconds} s`);
    await measure(target, gatehouse.token, warmupSeconds);
    await pause(200);
  }
  const results = new Map<Target, Run[]>(TARGETS.map((name) => [name, []]));
  for (let run = 0; run < runs; run += 1) {
    // Each run starts with another target, so a noisy moment spoils one run of each rather than every run of one.
    const order = targets.map((_target, index) => targets[(index + run) % targets.length]!);
    for (const target of order) {
      log(`bench:verify: run ${run + 1}/${runs} ${target.name}`);
      results.get(target.name)!.push(await measure(target, gatehouse.token, durationSeconds));
      await pause(200);
    }
  }

  const fastJwt = median(results.get('fastify-fast-jwt')!.map((run) => run.load.requestsPerSecond));
  const rows = TARGETS.map((name) => {
    const measured = results.get(name)!;
    const requestsPerSecond = median(measured.map((run) => run.load.requestsPerSecond));
    const notes: string[] = [];
    if (measured.some((run) => run.load.notOkCount > 0 || run.load.errors > 0)) notes.push('errors or non-2xx answers');
    if (Math.max(...measured.map((run) => run.load.loadGeneratorCores)) > 0.85) notes.push('load generator near its limit');
    if (Math.max(...measured.map((run) => run.server.otherCores)) > 0.15) notes.push('noisy');
    return {
      name,
      requestsPerSecond,
      vsFastJwt: requestsPerSecond / fastJwt,
      p50Ms: median(measured.map((run) => run.load.latencyMs.p50)),
      p99Ms: median(measured.map((run) => run.load.latencyMs.p99)),
      serverCores: median(measured.map((run) => run.server.cpuCores)),
      peakRssMB: median(measured.map((run) => run.server.peakRssMB)),
      notes,
    };
  });
  const lines = [
    `### (g) a protected route, GET /orders with a valid Gatehouse token, ${connections} connections (median of ${runs} run(s) of ${durationSeconds} s)`,
    '',
    `${new Date().toISOString()}, node ${process.version}, ${pinning.description}; targets bundled with esbuild, run with plain node; took ${round((performance.now() - startedAt) / 1000)} s`,
    '',
    '| target | req/s | × fast-jwt | p50 ms | p99 ms | server CPU | peak RSS MB | notes |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.name}: ${DESCRIPTIONS[row.name]} | ${round(row.requestsPerSecond)} | ${round(row.vsFastJwt, 2)} | ${round(row.p50Ms, 2)} | ${round(row.p99Ms, 2)} | ${round(row.serverCores * 100)} % | ${round(row.peakRssMB, 1)} | ${row.notes.join('; ')} |`,
    ),
  ];
  const verifyFastify = rows.find((row) => row.name === 'verify-fastify')!;
  lines.push('', `Target (ahead of fastify + fast-jwt with its cache): verify-fastify at ×${round(verifyFastify.vsFastJwt, 2)}: ${verifyFastify.vsFastJwt > 1 ? 'met' : 'NOT met'}.`);
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(new URL('./out/', import.meta.url).pathname, { recursive: true });
  const outPath = new URL(`./out/verify-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url).pathname;
  writeFileSync(outPath, `${JSON.stringify({ flags, pinning, quietStats, rows, runs: Object.fromEntries(results) }, null, 2)}\n`);
  log(`bench:verify: every run in ${outPath}`);
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  log(`bench:verify: ${(error as Error).stack ?? error}`);
} finally {
  for (const server of started.reverse()) await stopServer(server);
  rmSync(workDirectory, { recursive: true, force: true });
}
process.exit(exitCode);
