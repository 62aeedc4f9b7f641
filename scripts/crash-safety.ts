/**
 * Crash-safety check (issue 4): sign users up under concurrent load, SIGKILL the server mid-load, restart it on the
 * same database, and check that every signup answered 201 survived (it can log in) and that the database is intact.
 *
 *   node --import tsx scripts/crash-safety.ts [--dialect sqlite|postgres|all] [--cycles N] [--concurrency N] [--recheck-all]
 *
 * Default dialect: `all` when TEST_DATABASE_URL is set (e.g. postgres://postgres@127.0.0.1:5432/test), else `sqlite`.
 * PostgreSQL runs in a fresh schema `gh_crash_<random>` of TEST_DATABASE_URL, dropped at the end.
 * Dialects run side by side to keep the whole run short. Exit code 1 on any failure, 2 on bad usage.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';

type Dialect = 'sqlite' | 'postgres';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_ENTRY = 'dist/main.js'; // built once below, as npm start does
const STARTUP_TIMEOUT_MS = 30_000;
const TERM_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
const LOGIN_CONCURRENCY = 8;
const FIRST_ACK_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------------------
// Command line

interface Options {
  dialects: Dialect[];
  cycles: number;
  concurrency: number;
  /** Log every acknowledged user in again at the end, not only a sample of the older cycles' users. */
  recheckAll: boolean;
}

function usage(message: string): never {
  process.stderr.write(`crash-safety: ${message}\nusage: node --import tsx scripts/crash-safety.ts [--dialect sqlite|postgres|all] [--cycles N] [--concurrency N] [--recheck-all]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  let dialect: string | undefined;
  let cycles = 3;
  let concurrency = 16;
  let recheckAll = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === '--dialect') dialect = value();
    else if (flag === '--cycles') cycles = positiveInt(flag, value());
    else if (flag === '--concurrency') concurrency = positiveInt(flag, value());
    else if (flag === '--recheck-all') recheckAll = true;
    else if (flag === '--help' || flag === '-h') usage('help');
    else usage(`unknown argument ${arg}`);
  }
  dialect ??= process.env.TEST_DATABASE_URL ? 'all' : 'sqlite';
  const dialects: Dialect[] =
    dialect === 'all' ? ['sqlite', 'postgres'] : dialect === 'sqlite' || dialect === 'postgres' ? [dialect] : usage(`unknown dialect ${dialect}`);
  if (dialects.includes('postgres') && !process.env.TEST_DATABASE_URL) {
    usage('PostgreSQL needs TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test');
  }
  return { dialects, cycles, concurrency, recheckAll };
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) usage(`${flag} must be a positive integer`);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Test data: unique emails, passphrases of random words (never "common", never a pattern, ≥ 15 characters)

const WORDS = (
  'amber anchor apricot arbor aspen badger bamboo banjo basil beacon birch bison bramble breeze bronze buckle cactus ' +
  'canyon cedar chalk cobalt comet copper coral cricket crimson dahlia delta dune ember falcon fennel fern fjord ' +
  'flint galaxy garnet ginger glacier granite gravel harbor hazel heron hickory indigo island ivory jasper juniper ' +
  'kelp kestrel lagoon lantern larch lemur lilac linen lotus lumber magnet mango maple marble meadow mesa meteor ' +
  'mint mosaic nebula nectar nickel nutmeg oasis obsidian ocelot olive onyx orchid otter paprika pebble pepper ' +
  'pine plum prairie quartz quill quince raven reef ridge saffron sage sapphire scarlet sierra slate sorrel spruce ' +
  'summit tamarind thistle thunder timber topaz tundra umber valley velvet violet walnut willow wren yarrow zephyr'
).split(' ');

interface Account {
  email: string;
  password: string;
  cycle: number;
}

function newAccount(runId: string, dialect: Dialect, cycle: number, serial: number): Account {
  const words = Array.from({ length: 4 }, () => WORDS[randomInt(WORDS.length)]);
  return {
    email: `crash-${runId}-${dialect}-c${cycle}-${serial}@example.com`,
    password: `${words.join(' ')} ${randomInt(10, 100)}`,
    cycle,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The service as a child process

interface Server {
  child: ChildProcess;
  /** From spawn to the first 200 from /healthz. */
  startupMs: number;
  base: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

// Servers still running; killed if this script ends early (an uncaught error, Ctrl-C, a CI timeout).
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});
// Temp dirs and schemas to remove if this script is interrupted.
const pendingCleanups = new Set<() => Promise<void>>();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`crash-safety: ${signal}, cleaning up\n`);
    for (const child of live) child.kill('SIGKILL');
    const cleanups = Promise.allSettled([...pendingCleanups].map((cleanup) => sleep(200).then(cleanup)));
    void Promise.race([cleanups, sleep(5_000)]).then(() => process.exit(130));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

async function startServer(databaseUrl: string): Promise<Server> {
  const port = await freePort();
  const started = Date.now();
  // Started directly (not through npm) so that SIGKILL hits the server process itself.
  const child = spawn(process.execPath, [SERVER_ENTRY], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      RATE_LIMIT_PER_MINUTE: '1000000000',
      LOGIN_MAX_FAILURES: '1000000000',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolveExit({ code, signal });
    });
  });
  const server: Server = { child, startupMs: 0, base: `http://127.0.0.1:${port}`, exited, output: () => output.trim() };

  let dead: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((status) => (dead = status));
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (dead) throw new Error(`server exited during startup (code ${dead.code}, signal ${dead.signal}):\n${server.output()}`);
    try {
      const response = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) {
        server.startupMs = Date.now() - started;
        return server;
      }
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`server did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms:\n${server.output()}`);
}

async function stopGracefully(server: Server): Promise<{ ok: boolean; detail: string; ms: number }> {
  const started = Date.now();
  server.child.kill('SIGTERM');
  const result = await Promise.race([server.exited, sleep(TERM_TIMEOUT_MS).then(() => 'timeout' as const)]);
  const ms = Date.now() - started;
  if (result === 'timeout') {
    server.child.kill('SIGKILL');
    await server.exited;
    return { ok: false, detail: `did not exit within ${TERM_TIMEOUT_MS} ms of SIGTERM`, ms };
  }
  const ok = result.code === 0 && result.signal === null;
  return { ok, detail: ok ? `exit 0 after ${ms} ms` : `exit code ${result.code}, signal ${result.signal}; output:\n${server.output()}`, ms };
}

async function postJson(base: string, path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  let json: unknown = null;
  try {
    json = await response.json();
  } catch {
    // the status line is what counts; a body lost to the kill does not undo a 201
  }
  return { status: response.status, json };
}

function messageOf(json: unknown): string {
  const message = (json as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : JSON.stringify(json)?.slice(0, 200) ?? '';
}

// ---------------------------------------------------------------------------------------------------------------
// Load, kill, verify

interface LoadResult {
  acknowledged: Account[];
  attempted: number;
  unknown: number;
  inFlightAtKill: number;
  loadMs: number;
  failures: string[];
}

/** Concurrent signups for a random 1–3 s (longer if nothing was acknowledged yet), then SIGKILL while requests are in flight. */
async function loadAndKill(server: Server, makeAccount: () => Account, concurrency: number): Promise<LoadResult> {
  const result: LoadResult = { acknowledged: [], attempted: 0, unknown: 0, inFlightAtKill: 0, loadMs: randomInt(1000, 3001), failures: [] };
  let killed = false;
  let inFlight = 0;
  const worker = async () => {
    while (!killed) {
      const account = makeAccount();
      result.attempted++;
      inFlight++;
      try {
        const { status, json } = await postJson(server.base, '/signup', { name: 'Crash Test', email: account.email, password: account.password });
        if (status === 201) result.acknowledged.push(account);
        else result.failures.push(`signup ${account.email}: HTTP ${status} ${messageOf(json)}`);
      } catch (error) {
        // An answer lost to the kill is unknown, not a failure; before the kill it is a failure.
        if (killed) result.unknown++;
        else result.failures.push(`signup ${account.email}: ${(error as Error).message} (before the kill)`);
      } finally {
        inFlight--;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  const loadStarted = Date.now();
  await sleep(result.loadMs);
  // A kill before the first 201 proves nothing (a freshly started service answers its first requests slowly on a busy
  // machine): keep the load on until something was acknowledged, for at most FIRST_ACK_TIMEOUT_MS.
  while (result.acknowledged.length === 0 && Date.now() - loadStarted < FIRST_ACK_TIMEOUT_MS) await sleep(20);
  result.loadMs = Date.now() - loadStarted;
  killed = true;
  result.inFlightAtKill = inFlight;
  server.child.kill('SIGKILL');
  const exit = await server.exited;
  if (exit.signal !== 'SIGKILL') result.failures.push(`server had already exited before the kill (code ${exit.code}): ${server.output()}`);
  await Promise.all(workers);
  return result;
}

async function verifyLogins(base: string, accounts: Account[]): Promise<{ verified: number; failures: string[] }> {
  const failures: string[] = [];
  let verified = 0;
  let next = 0;
  const worker = async () => {
    while (next < accounts.length) {
      const account = accounts[next++]!;
      try {
        const { status, json } = await postJson(base, '/login', { email: account.email, password: account.password });
        const token = (json as { token?: unknown } | null)?.token;
        if (status === 201 && typeof token === 'string') verified++;
        else failures.push(`login ${account.email} (acknowledged in cycle ${account.cycle}): HTTP ${status} ${messageOf(json)}`);
      } catch (error) {
        failures.push(`login ${account.email} (acknowledged in cycle ${account.cycle}): ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: LOGIN_CONCURRENCY }, worker));
  return { verified, failures };
}

// ---------------------------------------------------------------------------------------------------------------
// Databases

interface Store {
  /** DATABASE_URL for the service. */
  url: string;
  /** Integrity problems (empty when fine) plus every stored user's email_normalized → password_hash. */
  inspect(): Promise<{ problems: string[]; users: Map<string, string>; summary: string }>;
  dispose(): Promise<void>;
}

function sqliteStore(): Store {
  const dir = mkdtempSync(join(tmpdir(), 'gh-crash-'));
  const file = join(dir, 'gatehouse.db');
  return {
    url: `sqlite:${file}`,
    async inspect() {
      // Read-only while the restarted server runs: WAL lets a reader see the committed state.
      const db = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
      try {
        const problems: string[] = [];
        const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((row) => row.integrity_check);
        if (integrity.length !== 1 || integrity[0] !== 'ok') problems.push(`PRAGMA integrity_check: ${integrity.join('; ')}`);
        const foreignKeys = db.pragma('foreign_key_check') as unknown[];
        if (foreignKeys.length > 0) problems.push(`PRAGMA foreign_key_check: ${foreignKeys.length} violation(s): ${JSON.stringify(foreignKeys.slice(0, 5))}`);
        const duplicates = db
          .prepare('select email_normalized, count(*) as n from users group by email_normalized having count(*) > 1')
          .all() as { email_normalized: string; n: number }[];
        if (duplicates.length > 0) problems.push(`duplicate email_normalized: ${JSON.stringify(duplicates.slice(0, 5))}`);
        const rows = db.prepare('select email_normalized, password_hash from users').all() as { email_normalized: string; password_hash: string }[];
        const users = new Map(rows.map((row) => [row.email_normalized, row.password_hash]));
        const summary = problems.length === 0 ? 'integrity_check ok, foreign_key_check empty' : problems.join(' | ');
        return { problems, users, summary };
      } finally {
        db.close();
      }
    },
    async dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresStore(baseUrl: string): Promise<Store> {
  const schema = `gh_crash_${randomBytes(6).toString('hex')}`;
  const quoted = `"${schema}"`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(`create schema ${quoted}`);
  } finally {
    await admin.end();
  }
  const separator = baseUrl.includes('?') ? '&' : '?';
  const url = `${baseUrl}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    url,
    async inspect() {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      try {
        const problems: string[] = [];
        const tables = await client.query<{ n: number }>(
          `select count(*)::int as n from information_schema.tables where table_schema = $1 and table_name = 'users'`,
          [schema],
        );
        if (tables.rows[0]?.n !== 1) problems.push(`table users not found in schema ${schema}`);
        const duplicates = await client.query(
          `select email_normalized, count(*)::int as n from ${quoted}.users group by email_normalized having count(*) > 1`,
        );
        if (duplicates.rows.length > 0) problems.push(`duplicate email_normalized: ${JSON.stringify(duplicates.rows.slice(0, 5))}`);
        const orphans = await client.query<{ n: number }>(
          `select count(*)::int as n from ${quoted}.sessions s left join ${quoted}.users u on u.id = s.user_id where u.id is null`,
        );
        if ((orphans.rows[0]?.n ?? 0) > 0) problems.push(`${orphans.rows[0]?.n} session(s) without a user`);
        const rows = await client.query<{ email_normalized: string; password_hash: string }>(
          `select email_normalized, password_hash from ${quoted}.users`,
        );
        const users = new Map(rows.rows.map((row) => [row.email_normalized, row.password_hash]));
        const summary = problems.length === 0 ? 'no duplicate email_normalized, no orphan sessions' : problems.join(' | ');
        return { problems, users, summary };
      } finally {
        await client.end();
      }
    },
    async dispose() {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      try {
        await client.query(`drop schema if exists ${quoted} cascade`);
      } finally {
        await client.end();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// One dialect

function shuffle<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

interface DialectReport {
  dialect: Dialect;
  cycles: number;
  attempted: number;
  acknowledged: number;
  unknown: number;
  unknownCommitted: number;
  loginsVerified: number;
  rechecked: number;
  usersInDb: number;
  starts: number;
  startupMs: number;
  integrity: string;
  shutdown: string;
  ms: number;
  failures: string[];
}

async function runDialect(dialect: Dialect, options: Options, runId: string, log: (line: string) => void): Promise<DialectReport> {
  const started = Date.now();
  const report: DialectReport = {
    dialect,
    cycles: 0,
    attempted: 0,
    acknowledged: 0,
    unknown: 0,
    unknownCommitted: 0,
    loginsVerified: 0,
    rechecked: 0,
    usersInDb: 0,
    starts: 0,
    startupMs: 0,
    integrity: 'not checked',
    shutdown: 'not reached',
    ms: 0,
    failures: [],
  };
  const fail = (message: string) => {
    report.failures.push(message);
    log(`FAIL ${message}`);
  };

  let store: Store | undefined;
  let server: Server | undefined;
  try {
    store = dialect === 'sqlite' ? sqliteStore() : await postgresStore(process.env.TEST_DATABASE_URL!);
    pendingCleanups.add(store.dispose);
    const acknowledged: Account[] = [];
    // email → password_hash as first seen after a restart: later crashes must leave these rows untouched.
    const seenHashes = new Map<string, string>();
    let serial = 0;

    const start = async (url: string) => {
      const started = await startServer(url);
      report.starts++;
      report.startupMs += started.startupMs;
      return started;
    };

    server = await start(store.url);
    log(`started in ${server.startupMs} ms`);
    for (let cycle = 1; cycle <= options.cycles; cycle++) {
      const load = await loadAndKill(server, () => newAccount(runId, dialect, cycle, serial++), options.concurrency);
      server = undefined;
      report.cycles = cycle;
      report.attempted += load.attempted;
      report.unknown += load.unknown;
      report.acknowledged += load.acknowledged.length;
      acknowledged.push(...load.acknowledged);
      load.failures.forEach(fail);
      log(
        `cycle ${cycle}: ${load.loadMs} ms of load, ${load.attempted} signups sent, ${load.acknowledged.length} answered 201, ` +
          `SIGKILL with ${load.inFlightAtKill} in flight (${load.unknown} answers lost)`,
      );
      if (load.acknowledged.length === 0) fail(`cycle ${cycle}: no signup was acknowledged before the kill; the test proved nothing`);

      server = await start(store.url);
      // Every 201 of the cycle just killed must log in on the restarted service.
      const verifyStarted = Date.now();
      const logins = await verifyLogins(server.base, load.acknowledged);
      const verifyMs = Date.now() - verifyStarted;
      report.loginsVerified += logins.verified;
      logins.failures.forEach(fail);

      // Every 201 so far must still be stored, unchanged, and the database must be intact.
      const inspection = await store.inspect();
      inspection.problems.forEach((problem) => fail(`cycle ${cycle}: ${problem}`));
      report.integrity = inspection.summary;
      report.usersInDb = inspection.users.size;
      if (inspection.users.size < acknowledged.length) fail(`cycle ${cycle}: ${inspection.users.size} users stored < ${acknowledged.length} acknowledged`);
      let missing = 0;
      for (const account of acknowledged) {
        const hash = inspection.users.get(account.email);
        if (hash === undefined) {
          missing++;
          if (missing <= 5) fail(`cycle ${cycle}: acknowledged user ${account.email} (cycle ${account.cycle}) is missing from the database`);
        } else if (seenHashes.has(account.email) && seenHashes.get(account.email) !== hash) {
          fail(`cycle ${cycle}: password hash of ${account.email} (cycle ${account.cycle}) changed across a crash`);
        } else {
          seenHashes.set(account.email, hash);
        }
      }
      if (missing > 5) fail(`cycle ${cycle}: ${missing} acknowledged users missing in all`);
      log(
        `cycle ${cycle}: restarted in ${server.startupMs} ms; ${logins.verified}/${load.acknowledged.length} logins ok in ${verifyMs} ms; ` +
          `${inspection.users.size} users stored for ${acknowledged.length} acknowledged; ${inspection.summary}`,
      );
    }

    // Count signups that committed although their answer was lost (allowed: unknown either way).
    const ackedEmails = new Set(acknowledged.map((account) => account.email));
    const final = await store.inspect();
    report.unknownCommitted = [...final.users.keys()].filter((email) => email.startsWith(`crash-${runId}-`) && !ackedEmails.has(email)).length;

    // Older users (not only the last cycle's) must still log in after all the crashes: a sample, or all of them.
    const older = acknowledged.filter((account) => account.cycle < options.cycles);
    const sample = options.recheckAll ? acknowledged : shuffle(older).slice(0, 16);
    const spot = await verifyLogins(server.base, sample);
    report.rechecked = spot.verified;
    spot.failures.forEach((failure) => fail(`final re-check: ${failure}`));

    const stop = await stopGracefully(server);
    server = undefined;
    report.shutdown = stop.ok ? `SIGTERM → ${stop.detail}` : `SIGTERM → FAILED: ${stop.detail}`;
    if (!stop.ok) fail(`graceful shutdown: ${stop.detail}`);
    log(`final: ${spot.verified}/${sample.length} ${options.recheckAll ? 'acknowledged' : 'older'} users log in again; ${report.shutdown}`);

    if (dialect === 'sqlite') {
      const after = await store.inspect();
      after.problems.forEach((problem) => fail(`after SIGTERM: ${problem}`));
      report.integrity = after.summary;
    }
  } catch (error) {
    fail(`aborted: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    if (server) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    if (store) pendingCleanups.delete(store.dispose);
    if (store) await store.dispose().catch((error: unknown) => fail(`cleanup: ${(error as Error).message}`));
    report.ms = Date.now() - started;
  }
  return report;
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const runId = randomBytes(4).toString('hex');
  const started = Date.now();
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'inherit' });
  process.stdout.write(`crash-safety: ${options.dialects.join(' + ')}, ${options.cycles} kill/restart cycles, ${options.concurrency} signups in flight\n`);

  const reports = await Promise.all(
    options.dialects.map((dialect) => runDialect(dialect, options, runId, (line) => process.stdout.write(`[${dialect}] ${line}\n`))),
  );

  process.stdout.write('\nreport\n');
  for (const r of reports) {
    process.stdout.write(
      `  ${r.dialect.padEnd(8)} ${r.failures.length === 0 ? 'PASS' : 'FAIL'}  cycles ${r.cycles}, signups sent ${r.attempted}, ` +
        `acknowledged ${r.acknowledged}, answers lost ${r.unknown} (${r.unknownCommitted} of them committed), ` +
        `logins verified ${r.loginsVerified}/${r.acknowledged} (+${r.rechecked} re-checked at the end), users stored ${r.usersInDb}, ${(r.ms / 1000).toFixed(1)} s ` +
        `(${r.starts} starts took ${(r.startupMs / 1000).toFixed(1)} s)\n` +
        `           integrity: ${r.integrity}; shutdown: ${r.shutdown}\n`,
    );
    for (const failure of r.failures.slice(0, 20)) process.stdout.write(`           - ${failure}\n`);
    if (r.failures.length > 20) process.stdout.write(`           … and ${r.failures.length - 20} more failures\n`);
  }
  process.stdout.write(`  total ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  // Exit explicitly: idle keep-alive sockets or pool timers must not hold the run open.
  process.exit(reports.every((r) => r.failures.length === 0) ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`crash-safety: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
