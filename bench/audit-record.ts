// What auditing adds to a request (issue 11): the synchronous cost of one audit.record() call on the
// request's path, and how fast the batched writer then stores events in a real SQLite file (and
// PostgreSQL when TEST_DATABASE_URL is set). `node --import tsx bench/audit-record.ts [events]`.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLog } from '../packages/server/src/audit/audit-log.ts';
import type { AuditEventInput } from '../packages/server/src/audit/events.ts';
import { systemClock } from '../packages/server/src/clock.ts';
import { createDb } from '../packages/server/src/storage/db.ts';
import pg from 'pg';

const events = Number(process.argv[2] ?? 50_000);
// A login's event as the login route records it.
const LOGIN: AuditEventInput = {
  action: 'user.login',
  actor: { type: 'user', id: '123456' },
  subject: { type: 'user', id: '123456' },
  context: { ip: '203.0.113.45', userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36', requestId: 'req-4f2a' },
  details: { session_id: 'kV0Qk1d3N2Jv4uQ0b2xJ8m', client_id: 'gatehouse' },
};

async function measure(label: string, url: string): Promise<void> {
  const database = await createDb(url);
  await database.migrate();
  // queueMax above the run: this measures cost, not the drop policy.
  const audit = createAuditLog({ db: database.kysely, clock: systemClock, log: () => {}, queueMax: events + 1, flushIntervalMs: 60_000, batchSize: events + 1 });
  for (let index = 0; index < 1000; index++) audit.record(LOGIN); // warm up
  await audit.flush();
  const started = process.hrtime.bigint();
  for (let index = 0; index < events; index++) audit.record(LOGIN);
  const recordNs = Number(process.hrtime.bigint() - started) / events;
  const writeStarted = process.hrtime.bigint();
  // The writer's batches of 200, as in production.
  const writer = createAuditLog({ db: database.kysely, clock: systemClock, log: () => {}, queueMax: events + 1, flushIntervalMs: 60_000 });
  for (let index = 0; index < events; index++) writer.record(LOGIN);
  await writer.flush();
  const writeSeconds = Number(process.hrtime.bigint() - writeStarted) / 1e9;
  await audit.close();
  await writer.close();
  await database.close();
  console.log(`${label}: record() ${(recordNs / 1000).toFixed(2)} µs per call (synchronous, on the request's path); batched writes ${Math.round(events / writeSeconds)} events/s`);
}

const directory = mkdtempSync(join(tmpdir(), 'gatehouse-audit-bench-'));
try {
  await measure('sqlite', `sqlite:${join(directory, 'bench.db')}`);
  const postgresUrl = process.env.TEST_DATABASE_URL;
  if (postgresUrl) {
    // A schema of its own on the shared server, dropped afterwards.
    const schema = `gh_bench_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    try {
      const url = new URL(postgresUrl);
      url.searchParams.set('options', `-c search_path=${schema}`);
      await measure('postgres', url.toString());
    } finally {
      await admin.query(`drop schema ${schema} cascade`);
      await admin.end();
    }
  }
} finally {
  rmSync(directory, { recursive: true, force: true });
}
