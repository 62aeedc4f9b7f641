// OAuth endpoint benchmarks (issue 10, h), against a real Gatehouse process pinned to one core:
//   introspection req/s and p99 (POST /introspect, client_secret_basic, 64 connections);
//   refresh-token grants/s (POST /oauth/token grant_type=refresh_token, each loop spending the token it got last);
//   client-credentials grants/s (POST /oauth/token grant_type=client_credentials, client_secret_basic).
// Published anchors (the issue): Keycloak sizes 120 refreshes/s and 120 client-credentials grants/s per vCPU;
// PocketBase measured about 2 900 refreshes/s on 2 vCPUs.
// `npm run bench:oauth -- --help`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { closedLoopLoad, type LoadResult } from './lib/load.ts';
import { freePort, quietStats, sampleProcess, setUpPinning, spawnServer, stopServer, waitForQuietMachine, waitUntilReady, type Pinning, type ServerProcess } from './lib/processes.ts';
import { log, median } from './lib/stats.ts';
import { gatehouseEnv, gatehouseNodeArguments, logIn, prepareGatehouse, repoRoot, signUp } from './lib/targets.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    'refresh-loops': { type: 'string', default: '16' },
    'database-url': { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'quiet-wait': { type: 'string', default: '5' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    'npm run bench:oauth -- [--duration 8] [--runs 3] [--connections 64] [--refresh-loops 16] [--database-url postgres://…] [--no-pin] [--quiet-wait 5]\n' +
      '  SQLite in a temporary directory, or a schema of its own (dropped afterwards) in the PostgreSQL database --database-url names.\n',
  );
  process.exit(0);
}
const durationSeconds = Number(flags.duration);
const runs = Number(flags.runs);
const connections = Number(flags.connections);
const refreshLoops = Number(flags['refresh-loops']);
quietStats.maxWaitSeconds = Number(flags['quiet-wait']);
const PASSWORD = 'correct horse battery staple';
/** One client per resource server: introspection is budgeted per client (60 000 a minute each). */
const RESOURCE_SERVERS = 16;
const USERS = 32;

const workDirectory = mkdtempSync(join(tmpdir(), 'gatehouse-oauth-bench-'));
const postgresUrl = flags['database-url'];
const schema = `bench_oauth_${randomBytes(4).toString('hex')}`;
const databaseUrl = postgresUrl ? withSearchPath(postgresUrl, schema) : `sqlite:${join(workDirectory, 'oauth.db')}`;

function withSearchPath(url: string, searchPath: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${searchPath}`);
  return parsed.toString();
}

async function onPostgres(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
const pinning: Pinning = setUpPinning(!flags['no-pin']);

function serverEnv(port: number): NodeJS.ProcessEnv {
  return { ...gatehouseEnv(port, join(workDirectory, 'unused.db')), DATABASE_URL: databaseUrl };
}

/** `gatehouse clients create … --json` with the built CLI, as an operator would. */
function createClient(args: string[]): { client_secret?: string } {
  const output = execFileSync(process.execPath, ['dist/cli.js', 'clients', 'create', ...args, '--json'], {
    cwd: repoRoot,
    env: { ...serverEnv(0), LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return JSON.parse(output) as { client_secret?: string };
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' };

interface Measured {
  perSecond: number;
  p50: number;
  p99: number;
  /** Server CPU seconds per wall second during the load (1 = the pinned core fully busy). */
  serverCores: number;
  loadGeneratorCores: number;
  otherCores: number;
  failures: number;
}

async function measure(server: ServerProcess, load: () => Promise<Omit<Measured, 'serverCores' | 'otherCores'>>): Promise<Measured> {
  await waitForQuietMachine();
  const sampler = sampleProcess(server.pid);
  const result = await load();
  const usage = sampler.stop();
  return { ...result, serverCores: usage.cpuCores, otherCores: usage.otherCores };
}

const fromAutocannon = (result: LoadResult) => ({
  perSecond: result.requestsPerSecond,
  p50: result.latencyMs.p50,
  p99: result.latencyMs.p99,
  loadGeneratorCores: result.loadGeneratorCores,
  failures: result.notOkCount + result.errors + result.timeouts,
});

/** A keep-alive POST that resolves with the status and the body text. */
function post(agent: Agent, url: URL, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { agent, method: 'POST', host: url.hostname, port: url.port, path: url.pathname, headers: { ...FORM_HEADERS, 'content-length': Buffer.byteLength(body) }, timeout: 10_000 },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.once('end', () => resolve({ status: response.statusCode ?? 0, text }));
        response.once('error', reject);
      },
    );
    outgoing.once('timeout', () => outgoing.destroy(new Error('timeout')));
    outgoing.once('error', reject);
    outgoing.end(body);
  });
}

/**
 * Each loop owns a session and spends the refresh token it received last, as a client does: a
 * chain autocannon cannot express. Latency per grant, microseconds kept.
 */
async function refreshGrants(baseUrl: string, refreshTokens: string[]): Promise<Omit<Measured, 'serverCores' | 'otherCores'>> {
  const agent = new Agent({ keepAlive: true, maxSockets: refreshTokens.length });
  const url = new URL('/oauth/token', baseUrl);
  const latencies: number[] = [];
  let failures = 0;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const deadline = started + durationSeconds * 1000;
  await Promise.all(
    refreshTokens.map(async (_first, loop) => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        const answer = await post(agent, url, form({ grant_type: 'refresh_token', refresh_token: refreshTokens[loop]!, client_id: 'gatehouse' }));
        if (answer.status !== 200) {
          failures += 1;
          throw new Error(`refresh grant answered ${answer.status}: ${answer.text.slice(0, 200)}`);
        }
        refreshTokens[loop] = (JSON.parse(answer.text) as { refresh_token: string }).refresh_token;
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const wallMs = performance.now() - started;
  agent.destroy();
  const cpu = process.cpuUsage(cpuStart);
  const sorted = latencies.sort((left, right) => left - right);
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
  return { perSecond: latencies.length / (wallMs / 1000), p50: at(0.5), p99: at(0.99), loadGeneratorCores: (cpu.user + cpu.system) / 1000 / wallMs, failures };
}

interface Scenario {
  name: string;
  note: string;
  run(server: ServerProcess, baseUrl: string): Promise<Measured>;
}

const lines: string[] = [];
const say = (line = '') => {
  lines.push(line);
  log(line);
};

if (postgresUrl) await onPostgres(`create schema ${schema}`);
try {
  log(`building: ${prepareGatehouse()}`);
  // Clients first (the CLI migrates the database), then users, with the server up.
  const resourceServers = Array.from({ length: RESOURCE_SERVERS }, (_, index) => {
    const id = `resource-${index + 1}`;
    return { id, secret: createClient(['--id', id, '--name', `Resource server ${index + 1}`, '--type', 'confidential']).client_secret! };
  });
  const worker = { id: 'report-worker', secret: createClient(['--id', 'report-worker', '--name', 'Reports', '--type', 'confidential', '--scope', 'orders:read', '--scope', 'reports:write']).client_secret! };

  const port = await freePort();
  const server = spawnServer(pinning, gatehouseNodeArguments(), { cwd: repoRoot, env: serverEnv(port), logPath: join(workDirectory, 'gatehouse.log') });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(server, `${baseUrl}/healthz`, 60_000);
    const users = Array.from({ length: USERS }, (_, index) => ({ id: index + 1, name: `User ${index}`, email: `oauth-user${index}@example.com`, password: PASSWORD }));
    for (const user of users) await signUp(baseUrl, user);
    // Access tokens of many sessions, each resource server introspecting its share in turn.
    const accessTokens: string[] = [];
    for (const user of users) accessTokens.push(await logIn(baseUrl, user.email, PASSWORD), await logIn(baseUrl, user.email, PASSWORD));
    const introspections = accessTokens.map((token, index) => {
      const client = resourceServers[index % resourceServers.length]!;
      return { method: 'POST' as const, path: '/introspect', headers: { ...FORM_HEADERS, authorization: basic(client.id, client.secret) }, body: form({ token }) };
    });
    const probe = await fetch(`${baseUrl}/introspect`, { method: 'POST', headers: introspections[0]!.headers, body: introspections[0]!.body });
    if (probe.status !== 200 || !((await probe.json()) as { active: boolean }).active) throw new Error(`introspection probe answered ${probe.status}`);

    /** Fresh sessions for each refresh run: the chains of the previous run are spent. */
    const newRefreshTokens = async () => {
      const tokens: string[] = [];
      for (let loop = 0; loop < refreshLoops; loop += 1) {
        const user = users[loop % users.length]!;
        const answer = await fetch(`${baseUrl}/oauth/token`, {
          method: 'POST',
          headers: FORM_HEADERS,
          body: form({ grant_type: 'password', username: user.email, password: PASSWORD, client_id: 'gatehouse' }),
        });
        tokens.push(((await answer.json()) as { refresh_token: string }).refresh_token);
      }
      return tokens;
    };

    const scenarios: Scenario[] = [
      {
        name: 'introspection',
        note: `POST /introspect, ${accessTokens.length} live user tokens from ${RESOURCE_SERVERS} clients (Basic), ${connections} connections`,
        run: (measured) => measure(measured, async () => fromAutocannon(await closedLoopLoad({ url: `${baseUrl}/introspect`, connections, durationSeconds, requests: introspections }))),
      },
      {
        name: 'refresh_token grants',
        note: `POST /oauth/token grant_type=refresh_token, ${refreshLoops} sessions each spending its latest token (rotation + reuse detection, one transaction each)`,
        run: async (measured) => {
          const tokens = await newRefreshTokens();
          return measure(measured, () => refreshGrants(baseUrl, tokens));
        },
      },
      {
        name: 'client_credentials grants',
        note: `POST /oauth/token grant_type=client_credentials, client_secret_basic, ${connections} connections`,
        run: (measured) =>
          measure(measured, async () =>
            fromAutocannon(
              await closedLoopLoad({
                url: `${baseUrl}/oauth/token`,
                connections,
                durationSeconds,
                requests: [{ method: 'POST', path: '/oauth/token', headers: { ...FORM_HEADERS, authorization: basic(worker.id, worker.secret) }, body: 'grant_type=client_credentials' }],
              }),
            ),
          ),
      },
    ];

    const results = new Map<string, Measured[]>();
    for (let run = 0; run < runs; run += 1) {
      // Rotate the order each run, so a noisy moment spoils one run of every scenario, not every run of one.
      for (let turn = 0; turn < scenarios.length; turn += 1) {
        const scenario = scenarios[(run + turn) % scenarios.length]!;
        const result = await scenario.run(server, baseUrl);
        if (result.failures > 0) throw new Error(`${scenario.name}: ${result.failures} failed requests`);
        (results.get(scenario.name) ?? results.set(scenario.name, []).get(scenario.name)!).push(result);
        log(
          `run ${run + 1} ${scenario.name}: ${result.perSecond.toFixed(0)}/s, p99 ${result.p99.toFixed(2)} ms, server ${(result.serverCores * 100).toFixed(0)} % of a core, ` +
            `load generator ${(result.loadGeneratorCores * 100).toFixed(0)} %, others ${result.otherCores.toFixed(2)} cores`,
        );
      }
    }

    say(`### (h) OAuth endpoints, one Gatehouse process on one core (median of ${runs} runs)`);
    say();
    say('| | per second | p50 ms | p99 ms | server CPU | per server CPU-second |');
    say('|---|---|---|---|---|---|');
    for (const scenario of scenarios) {
      const measured = results.get(scenario.name)!;
      const pick = (select: (result: Measured) => number) => median(measured.map(select));
      say(
        `| ${scenario.name} | ${pick((r) => r.perSecond).toFixed(0)} | ${pick((r) => r.p50).toFixed(2)} | ${pick((r) => r.p99).toFixed(2)} | ` +
          `${(pick((r) => r.serverCores) * 100).toFixed(0)} % | ${pick((r) => r.perSecond / Math.max(r.serverCores, 0.01)).toFixed(0)} |`,
      );
    }
    say();
    for (const scenario of scenarios) say(`- ${scenario.name}: ${scenario.note}`);
    const noisy = [...results.values()].flat().filter((result) => result.otherCores > 0.15).length;
    say(
      `- ${new Date().toISOString()}, Node ${process.version}, ${databaseUrl.startsWith('sqlite:') ? 'SQLite' : 'PostgreSQL'}, ${pinning.description}, ` +
        `${durationSeconds} s per measurement; ${noisy} of ${runs * scenarios.length} measurements had other processes above 0.15 core`,
    );
    process.stdout.write(`\n${lines.join('\n')}\n`);
  } finally {
    await stopServer(server);
  }
} finally {
  rmSync(workDirectory, { recursive: true, force: true });
  if (postgresUrl) await onPostgres(`drop schema ${schema} cascade`);
}
