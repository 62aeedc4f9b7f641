/**
 * A transaction PostgreSQL rolls back to break a deadlock (40P01) is a passing conflict, not a bug: the
 * error handler answers it like any other "database cannot serve now" (503 + Retry-After), never a 500.
 * The deadlock here is a real one, between two connections of this test.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../src/storage/db.ts';
import { createTestDatabase, testDialects, type TestDatabase } from './helpers.ts';

// PostgreSQL only (SQLite's counterpart, SQLITE_BUSY, is in database-outage.test.ts): not tagged [postgres],
// which check-test-report.mjs pairs one for one with [sqlite] tests.
describe.runIf(testDialects().includes('postgres'))('database conflicts on PostgreSQL', () => {
  let database: TestDatabase;
  const clients: pg.Client[] = [];
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    for (let index = 0; index < 2; index += 1) {
      const client = new pg.Client({ connectionString: database.url });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
    }
    await clients[0]!.query('create table rows (id int primary key, value int)');
    await clients[0]!.query('insert into rows values (1, 0), (2, 0)');
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end()));
    await database?.drop();
  });

  it('counts a deadlock victim as the database being unable to serve now (503), and a plain error not', async () => {
    const [one, two] = clients as [pg.Client, pg.Client];
    await one.query('begin');
    await two.query('begin');
    await one.query('update rows set value = 1 where id = 1');
    await two.query('update rows set value = 2 where id = 2');
    // Each now waits for the row the other holds: PostgreSQL picks one of them as the victim.
    const outcomes = await Promise.allSettled([one.query('update rows set value = 1 where id = 2'), two.query('update rows set value = 2 where id = 1')]);
    await Promise.all([one.query('rollback'), two.query('rollback')]);
    const victims = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected').map((outcome) => outcome.reason as { code?: string });
    expect(victims.map((victim) => victim.code)).toEqual(['40P01']);
    expect(isDatabaseUnavailable(victims[0])).toBe(true);
    expect(isDatabaseUnavailable({ code: '40001', message: 'could not serialize access' })).toBe(true);
    expect(isDatabaseUnavailable({ code: '23505', message: 'duplicate key value violates unique constraint' })).toBe(false);
  });
});
