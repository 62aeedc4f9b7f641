// `gatehouse users import` speed and memory (issue 11): 100 000 users with existing hashes of mixed
// formats (werkzeug scrypt and pbkdf2 as the Flask seed writes them, bcrypt, Argon2id, Argon2i),
// imported by the real CLI (the esbuild bundle, as `npm run gatehouse` runs it) into SQLite and
// PostgreSQL in turn. Target: under 30 s each on this machine. Reports users/s, the CLI's peak RSS
// (sampled every 100 ms) and a rerun of the same file (every email skipped).
// `npm run bench:import -- --help`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { hashSync as argon2Hash } from '@node-rs/argon2';
import { hashSync as bcryptHash } from '@node-rs/bcrypt';
import pg from 'pg';
import { sampleProcess, type ProcessUsage } from './lib/processes.ts';
import { log } from './lib/stats.ts';
import { prepareGatehouse, repoRoot } from './lib/targets.ts';

const { values: flags } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    format: { type: 'string', default: 'jsonl' },
    dialects: { type: 'string', default: 'sqlite,postgres' },
    'database-url': { type: 'string', default: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'target-seconds': { type: 'string', default: '30' },
    enforce: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    'npm run bench:import -- [--users 100000] [--format jsonl|csv] [--dialects sqlite,postgres] [--database-url postgres://…] [--target-seconds 30] [--enforce]\n' +
      '  SQLite in a temporary directory; PostgreSQL in a schema of its own (dropped afterwards) of --database-url (TEST_DATABASE_URL by default).\n' +
      '  --enforce: exit 1 when an import takes longer than the target.\n',
  );
  process.exit(0);
}
const userCount = Number(flags.users);
const format = flags.format === 'csv' ? 'csv' : 'jsonl';
const dialects = flags.dialects.split(',').map((name) => name.trim());
const targetSeconds = Number(flags['target-seconds']);
const PASSWORD = 'correct horse battery staple';

// One hash per format, all of PASSWORD; each row takes the next format in turn.
const HASHES = {
  werkzeug_scrypt: 'scrypt:16384:8:1$yZmoun2zSt51aDdC$9d353aa9030c32be5fbab4cd0835b63698da6699835c264ce0dd88d9541cc4219554326013972abe370582efd5e87808806b092b34f5398d9a03d086c8cc5bda',
  werkzeug_pbkdf2: 'pbkdf2:sha256:600000$8rLJ3KideJlp8KMU$6deb9306f0ee1cfc7c50890576f8e0371535e79e538f7e64f4526a2ccf322b54',
  bcrypt: bcryptHash(PASSWORD, 10),
  argon2id: argon2Hash(PASSWORD, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 }),
  argon2i: argon2Hash(PASSWORD, { algorithm: 1, memoryCost: 65536, timeCost: 3, parallelism: 4 }),
};
const hashList = Object.values(HASHES);

interface RunResult {
  dialect: string;
  seconds: number;
  usersPerSecond: number;
  usage: ProcessUsage;
  summary: { records: number; imported: number; skipped_existing: number; refused: number };
  rowsInDatabase: number;
  rerunSeconds: number;
  rerunSkipped: number;
  rerunPeakRssMB: number;
}

const workDirectory = mkdtempSync(join(tmpdir(), 'gatehouse-import-bench-'));
try {
  log(`building: ${prepareGatehouse()}`);
  const file = join(workDirectory, `users.${format}`);
  await writeUsersFile(file);
  const fileMB = statSync(file).size / 1e6;
  log(`${userCount} users, ${fileMB.toFixed(1)} MB of ${format}, hash formats in turn: ${Object.keys(HASHES).join(', ')}`);

  const results: RunResult[] = [];
  for (const dialect of dialects) {
    if (dialect !== 'sqlite' && dialect !== 'postgres') throw new Error(`unknown dialect ${dialect}`);
    results.push(await benchDialect(dialect, file));
  }

  process.stdout.write(`\ngatehouse users import: ${userCount} users with existing hashes, ${fileMB.toFixed(1)} MB ${format} (target < ${targetSeconds} s)\n`);
  process.stdout.write('dialect   | seconds | users/s | peak RSS | imported | rerun: seconds, skipped, peak RSS\n');
  for (const result of results) {
    process.stdout.write(
      `${result.dialect.padEnd(9)} | ${result.seconds.toFixed(1).padStart(7)} | ${Math.round(result.usersPerSecond).toString().padStart(7)} | ${result.usage.peakRssMB.toFixed(0).padStart(5)} MB | ${String(result.summary.imported).padStart(8)} | ${result.rerunSeconds.toFixed(1)} s, ${result.rerunSkipped}, ${result.rerunPeakRssMB.toFixed(0)} MB${result.seconds > targetSeconds ? '  (over the target)' : ''}\n`,
    );
  }
  if (flags.enforce && results.some((result) => result.seconds > targetSeconds)) process.exitCode = 1;
} finally {
  rmSync(workDirectory, { recursive: true, force: true });
}

async function writeUsersFile(path: string): Promise<void> {
  const out = createWriteStream(path);
  if (format === 'csv') out.write('email,name,password_hash,roles\n');
  for (let index = 0; index < userCount; index += 1) {
    const email = `user${index}@bench.example.com`;
    const name = `Bench User ${index}`;
    const hash = hashList[index % hashList.length]!;
    // Argon2 PHC strings hold commas (m=…,t=…,p=…): quoted in CSV.
    const line = format === 'csv' ? `${email},${name},"${hash}",user\n` : `${JSON.stringify({ email, name, password_hash: hash, roles: ['user'] })}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function benchDialect(dialect: 'sqlite' | 'postgres', file: string): Promise<RunResult> {
  const schema = `bench_import_${randomBytes(4).toString('hex')}`;
  let databaseUrl: string;
  if (dialect === 'sqlite') databaseUrl = `sqlite:${join(workDirectory, `${schema}.db`)}`;
  else {
    await withPostgres(flags['database-url'], (client) => client.query(`create schema ${schema}`));
    const url = new URL(flags['database-url']);
    url.searchParams.set('options', `-c search_path=${schema}`);
    databaseUrl = url.toString();
  }
  try {
    await runCli(['migrate'], databaseUrl);
    const first = await runCli(['users', 'import', file, '--json'], databaseUrl);
    const summary = JSON.parse(first.stdout) as RunResult['summary'];
    if (summary.imported !== userCount || summary.refused !== 0) throw new Error(`${dialect}: expected ${userCount} imported, got ${first.stdout}`);
    const rowsInDatabase = await countUsers(dialect, databaseUrl);
    if (rowsInDatabase !== userCount) throw new Error(`${dialect}: ${rowsInDatabase} rows in the database`);
    const rerun = await runCli(['users', 'import', file, '--json'], databaseUrl);
    const rerunSummary = JSON.parse(rerun.stdout) as RunResult['summary'];
    log(`${dialect}: ${first.seconds.toFixed(1)} s, ${Math.round(userCount / first.seconds)} users/s, peak RSS ${first.usage.peakRssMB.toFixed(0)} MB; rerun ${rerun.seconds.toFixed(1)} s`);
    return {
      dialect,
      seconds: first.seconds,
      usersPerSecond: userCount / first.seconds,
      usage: first.usage,
      summary,
      rowsInDatabase,
      rerunSeconds: rerun.seconds,
      rerunSkipped: rerunSummary.skipped_existing,
      rerunPeakRssMB: rerun.usage.peakRssMB,
    };
  } finally {
    if (dialect === 'postgres') await withPostgres(flags['database-url'], (client) => client.query(`drop schema ${schema} cascade`));
  }
}

/** The CLI as an operator runs it (`npm run gatehouse` runs dist/cli.js), timed from spawn to exit. */
async function runCli(args: string[], databaseUrl: string): Promise<{ stdout: string; seconds: number; usage: ProcessUsage }> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [join(repoRoot, 'dist/cli.js'), ...args], {
    env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sampler = sampleProcess(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  const usage = sampler.stop();
  const seconds = (performance.now() - startedAt) / 1000;
  if (code !== 0) throw new Error(`gatehouse ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
  return { stdout, seconds, usage };
}

async function countUsers(dialect: 'sqlite' | 'postgres', databaseUrl: string): Promise<number> {
  if (dialect === 'sqlite') {
    const { default: BetterSqlite } = await import('better-sqlite3');
    const database = new BetterSqlite(databaseUrl.slice('sqlite:'.length), { readonly: true });
    try {
      return Number((database.prepare('select count(*) as n from users').get() as { n: number }).n);
    } finally {
      database.close();
    }
  }
  return withPostgres(databaseUrl, async (client) => Number((await client.query('select count(*) as n from users')).rows[0].n));
}

async function withPostgres<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}
