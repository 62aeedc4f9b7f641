// Cost of one shared-counter operation for WORKERS > 1 without Redis: a round trip to the
// cluster primary over IPC, against the in-process memory store (WORKERS=1) and against a
// counter row in the database (the alternative the issue offers), SQLite and PostgreSQL.
//   node --import tsx bench/cluster-ipc-rtt.ts      (TEST_DATABASE_URL for the PostgreSQL row)
import cluster from 'node:cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite from 'better-sqlite3';
import pg from 'pg';
import { createMemoryCounterStore } from '../packages/server/src/abuse/counter-store.ts';
import { createMemoryLockoutStore, type LockoutPolicy } from '../packages/server/src/abuse/lockout-store.ts';
import { createSharedStateHost } from '../packages/server/src/cluster/shared-state-host.ts';
import { createClusterSharedState } from '../packages/server/src/shared/cluster-ipc.ts';

const OPERATIONS = 20_000;
const WARMUP = 2_000;
const policy: LockoutPolicy = { kind: 'doubling', maxFailures: 1_000_000, firstLockSeconds: 60, maxLockSeconds: 3600, memorySeconds: 3600 };

async function measure(name: string, operation: (index: number) => Promise<unknown>, count = OPERATIONS): Promise<void> {
  for (let index = 0; index < WARMUP; index += 1) await operation(index);
  const samples = new Float64Array(count);
  for (let index = 0; index < count; index += 1) {
    const startedAt = performance.now();
    await operation(index);
    samples[index] = (performance.now() - startedAt) * 1000;
  }
  samples.sort();
  const at = (quantile: number) => samples[Math.min(count - 1, Math.floor(quantile * count))]!.toFixed(1);
  process.stdout.write(`${name.padEnd(44)} p50 ${at(0.5).padStart(7)} µs   p99 ${at(0.99).padStart(7)} µs   (n=${count})\n`);
}

if (cluster.isPrimary) {
  const host = createSharedStateHost();
  const worker = cluster.fork();
  worker.on('message', (message: unknown) => host.handle(worker, message));
  worker.on('exit', (code) => process.exit(code ?? 1));
} else {
  const shared = createClusterSharedState(() => {});
  const memoryCounters = createMemoryCounterStore();
  const memoryLockouts = createMemoryLockoutStore();
  await measure('memory: counters.increment', (index) => memoryCounters.increment(`ip:${index % 1000}`, 60, 1_000));
  await measure('memory: lockouts.reserve', (index) => memoryLockouts.reserve(`login:${index % 1000}`, policy, 1_000));
  await measure('cluster IPC: counters.increment', (index) => shared.counters.increment(`ip:${index % 1000}`, 60, 1_000));
  await measure('cluster IPC: lockouts.reserve', (index) => shared.lockouts.reserve(`login:${index % 1000}`, policy, 1_000));

  // A counter row: what "counters in the database" costs per operation, before any contention between workers.
  const directory = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const sqlite = new BetterSqlite(join(directory, 'counters.db'));
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL'); // as storage/db.ts opens it
  sqlite.exec('create table counters (key text primary key, count integer not null, reset_at integer not null)');
  const upsert = sqlite.prepare(
    'insert into counters (key, count, reset_at) values (?, 1, ?) on conflict (key) do update set count = count + 1 returning count',
  );
  await measure('SQLite row (WAL, synchronous=FULL): upsert', async (index) => upsert.get(`ip:${index % 1000}`, 1_060), 2_000);
  sqlite.close();
  rmSync(directory, { recursive: true, force: true });

  if (process.env.TEST_DATABASE_URL) {
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    const schema = `gh_bench_${process.pid}`;
    await client.query(`create schema ${schema}`);
    try {
      await client.query(`create table ${schema}.counters (key text primary key, count integer not null, reset_at bigint not null)`);
      const text = `insert into ${schema}.counters (key, count, reset_at) values ($1, 1, $2) on conflict (key) do update set count = ${schema}.counters.count + 1 returning count`;
      await measure('PostgreSQL row (local): upsert', (index) => client.query({ name: 'upsert', text, values: [`ip:${index % 1000}`, 1_060] }), 5_000);
    } finally {
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    }
  }
  process.exit(0);
}
