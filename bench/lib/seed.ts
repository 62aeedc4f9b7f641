// Bulk-seeds Gatehouse's SQLite users table directly (not through the API) for scenario (d).
import { hash } from '@node-rs/argon2';
import Database from 'better-sqlite3';
import { gatehouseArgon2Options } from './argon2-rate.ts';

export const scalePassword = 'one shared passphrase for the scale run';

export function scaleEmail(index: number): string {
  return `user${index}@scale.example.com`;
}

interface ColumnInfo {
  name: string;
  notnull: number;
  dflt_value: unknown;
  pk: number;
}

export interface SeedResult {
  usersInserted: number;
  seconds: number;
}

/** One transaction, one prepared statement, one Argon2id hash shared by every row. */
export async function seedUsers(databasePath: string, count: number): Promise<SeedResult> {
  const passwordHash = await hash(scalePassword, gatehouseArgon2Options);
  const startedAt = performance.now();
  const database = new Database(databasePath);
  try {
    const columns = database.prepare('PRAGMA table_info(users)').all() as ColumnInfo[];
    if (columns.length === 0) throw new Error(`${databasePath} has no users table: did Gatehouse's migrations run?`);
    const nowSeconds = Math.floor(Date.now() / 1000);
    const valueOf: Record<string, (index: number) => unknown> = {
      email: scaleEmail,
      email_normalized: scaleEmail,
      name: (index) => `Scale User ${index}`,
      password_hash: () => passwordHash,
      roles: () => '["user"]',
      created_at: () => nowSeconds,
      updated_at: () => nowSeconds,
    };
    const unknownRequired = columns.filter((column) => column.notnull && column.dflt_value === null && !column.pk && !(column.name in valueOf));
    if (unknownRequired.length > 0) {
      throw new Error(`users has required columns the seeder does not fill: ${unknownRequired.map((column) => column.name).join(', ')}`);
    }
    const filled = columns.map((column) => column.name).filter((name) => name in valueOf);
    const makers = filled.map((name) => valueOf[name]!);
    const insert = database.prepare(`INSERT INTO users (${filled.join(', ')}) VALUES (${filled.map(() => '?').join(', ')})`);
    database.pragma('synchronous = OFF');
    database.transaction(() => {
      for (let index = 1; index <= count; index++) insert.run(makers.map((make) => make(index)));
    })();
    database.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    database.close();
  }
  return { usersInserted: count, seconds: (performance.now() - startedAt) / 1000 };
}
