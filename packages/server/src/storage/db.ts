import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationResultSet } from 'kysely';
import type pg from 'pg';
import type { Database } from './schema.ts';
import { migrations } from './migrations/index.ts';

export type DialectName = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  dialect: DialectName;
  /** Runs pending migrations; throws with the failing migration's error. */
  migrate(): Promise<MigrationResultSet>;
  /** Cheap round trip for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const INT8_OID = 20;

/** Opens the database named by the URL; only the driver it needs is loaded (pg alone costs ~10 MB). */
export async function createDb(databaseUrl: string): Promise<Db> {
  const dialect: DialectName = databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
  const kysely =
    dialect === 'sqlite'
      ? new Kysely<Database>({ dialect: new SqliteDialect({ database: await openSqlite(databaseUrl.slice('sqlite:'.length)) }) })
      : new Kysely<Database>({ dialect: new PostgresDialect({ pool: await openPostgresPool(databaseUrl) }) });

  return {
    kysely,
    dialect,
    async migrate() {
      // Kysely looks for its bookkeeping tables in every schema; pin them to ours (search_path may name another).
      const migrationTableSchema =
        dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(kysely)).rows[0]?.schema : undefined;
      const migrator = new Migrator({
        db: kysely,
        provider: { getMigrations: async () => migrations },
        ...(migrationTableSchema ? { migrationTableSchema } : {}),
      });
      const result = await migrator.migrateToLatest();
      if (result.error) throw result.error;
      return result;
    },
    ping: () => pingDatabase(kysely),
    close: () => kysely.destroy(),
  };
}

async function openSqlite(filePath: string) {
  const { default: BetterSqlite } = await import('better-sqlite3');
  const isMemory = filePath === ':memory:';
  if (!isMemory) mkdirSync(dirname(resolve(filePath)), { recursive: true });
  const database = new BetterSqlite(filePath);
  database.pragma('journal_mode = WAL');
  // FULL: a 201 from signup must survive a power cut, not only a process crash.
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  // Kysely prepares every query it runs; keep each distinct statement prepared once.
  // Safe because Kysely's SQLite driver runs one query at a time on its single connection.
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      statements.clear();
      database.close();
    },
    prepare: (text: string) => {
      let statement = statements.get(text);
      if (!statement) {
        statement = database.prepare(text);
        if (statements.size < 500) statements.set(text, statement);
      }
      return statement;
    },
  };
}

async function openPostgresPool(databaseUrl: string): Promise<pg.Pool> {
  const { default: pg } = await import('pg');
  return new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    // Epoch seconds are bigint columns; they fit a JS number exactly.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
}

/** Cheap round trip for readiness checks. */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}

/** True when the error is the database refusing a duplicate key, on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
