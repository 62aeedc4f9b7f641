import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type SqliteDatabase from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  PostgresIntrospector,
  SqliteAdapter,
  SqliteDialect,
  sql,
  type DatabaseIntrospector,
  type DialectAdapter,
  type Migration,
  type DatabaseMetadata,
  type LogEvent,
  type MigrationResultSet,
  type PostgresPool,
  type PostgresPoolClient,
  type SchemaMetadata,
  type TableMetadata,
} from 'kysely';
import type pg from 'pg';
import type { Database } from './schema.ts';
import { migrations } from './migrations/index.ts';

export type DialectName = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  dialect: DialectName;
  /** Where the data lives, for operators: an absolute SQLite path or PostgreSQL host:port/database (never credentials). */
  location: string;
  /** Runs pending migrations; throws with the failing migration's error. */
  migrate(): Promise<MigrationOutcome>;
  /** Cheap round trip for readiness checks. */
  ping(): Promise<void>;
  /** Connection pool and failed queries, for metrics. */
  stats(): DatabaseStats;
  close(): Promise<void>;
}

export interface DatabaseStats {
  /** PostgreSQL's pool (SQLite has one connection and no pool): open, idle, and requests waiting for one. */
  pool: { total: number; idle: number; waiting: number } | undefined;
  /** Queries that failed since start: the database away or busy, a constraint refusal (a taken email), anything else. */
  queryErrors: Record<QueryErrorKind, number>;
}

export type QueryErrorKind = 'unavailable' | 'constraint' | 'other';

export interface MigrationOutcome extends MigrationResultSet {
  /** The first migration ran now: the database (SQLite file or PostgreSQL schema) was new and empty. */
  createdDatabase: boolean;
}

export interface DbOptions {
  /**
   * Told when a pooled PostgreSQL connection fails or is dropped (server restart, failover,
   * pg_terminate_backend). The pool replaces it by itself; this is for the log.
   */
  onConnectionLost?: (error: Error & { code?: string }) => void;
  /**
   * Bounds on opening a connection and on each query, so requests fail fast (503) while the database
   * is unreachable instead of hanging. Migrations run without the query bound. Unset: 5 s to connect, no query bound.
   */
  timeouts?: { connectMs: number; queryMs: number };
}

const INT8_OID = 20;
const FIRST_MIGRATION = Object.keys(migrations).sort()[0];

/** Opens the database named by the URL; only the driver it needs is loaded (pg alone costs ~10 MB). */
export async function createDb(databaseUrl: string, options: DbOptions = {}): Promise<Db> {
  const dialect: DialectName = databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
  const location = await databaseLocation(databaseUrl);
  const queryErrors: Record<QueryErrorKind, number> = { unavailable: 0, constraint: 0, other: 0 };
  // Kysely tells every query to a log function; only failures are counted, the rest return at once.
  const log = (event: LogEvent) => {
    if (event.level === 'error') queryErrors[queryErrorKind(event.error)] += 1;
  };
  let kysely: Kysely<Database>;
  let pgPool: pg.Pool | undefined;
  if (dialect === 'sqlite') {
    const filePath = databaseUrl.slice('sqlite:'.length);
    kysely = new Kysely<Database>({ dialect: new TransactionalDdlSqliteDialect({ database: await openSqlite(filePath, options.timeouts?.queryMs) }), log });
  } else {
    pgPool = await openPostgresPool(databaseUrl, options);
    kysely = new Kysely<Database>({ dialect: new CurrentSchemaPostgresDialect({ pool: discardingTimedOutClients(pgPool) }), log });
  }

  return {
    kysely,
    dialect,
    location,
    async migrate() {
      // A migration may rightly take longer than a request's query bound: PostgreSQL migrates on a connection of its own without it.
      if (dialect === 'sqlite' || !options.timeouts) return migrateToLatest(kysely);
      const migrationDb = await createDb(databaseUrl, { timeouts: { connectMs: options.timeouts.connectMs, queryMs: 0 } });
      try {
        return await migrateToLatest(migrationDb.kysely);
      } finally {
        await migrationDb.close();
      }
    },
    ping: () => pingDatabase(kysely),
    stats: () => ({
      pool: pgPool ? { total: pgPool.totalCount, idle: pgPool.idleCount, waiting: pgPool.waitingCount } : undefined,
      queryErrors: { ...queryErrors },
    }),
    close: () => kysely.destroy(),
  };
}

/**
 * What the migrator asks the database (do its bookkeeping tables exist?), answered from our schema
 * alone. Kysely's PostgresIntrospector reads every table of every schema, calling
 * has_schema_privilege() and pg_get_serial_sequence() on each: a schema another tenant drops at that
 * moment fails our start with `schema "…" does not exist` (seen in CI, where every test has a schema
 * of its own and drops it when done), and its cost grows with everyone else's tables.
 */
class CurrentSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<any>;
  readonly #schemas: PostgresIntrospector;

  constructor(db: Kysely<any>) {
    this.#db = db;
    this.#schemas = new PostgresIntrospector(db);
  }

  getSchemas(): Promise<SchemaMetadata[]> {
    // A plain read of pg_namespace: no per-schema function that a concurrent drop could fail.
    return this.#schemas.getSchemas();
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; schema: string; kind: string }>`
      select c.relname as name, ns.nspname as schema, c.relkind as kind
      from pg_catalog.pg_class c join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
      where ns.nspname = current_schema() and c.relkind in ('r', 'v', 'p')
      order by c.relname`.execute(this.#db);
    return rows.map((row) => ({ name: row.name, schema: row.schema, isView: row.kind === 'v', columns: [] }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}

class CurrentSchemaPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db);
  }
}

/**
 * SQLite's schema changes are transactional like its other writes, but Kysely's adapter says otherwise to be safe,
 * so its migrator ran them one statement at a time: a crash or an error halfway through a migration left a column
 * or table behind with the migration unrecorded, and every later start failed on it ("duplicate column name").
 * With this adapter a run of pending migrations commits with its bookkeeping, whole or not at all, as on PostgreSQL.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class TransactionalDdlSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/** The migrator for this database: its bookkeeping in our own schema; `list` is every migration unless told (tests). */
export async function createMigrator(kysely: Kysely<any>, list: Record<string, Migration> = migrations): Promise<Migrator> {
  const isPostgres = kysely.getExecutor().adapter instanceof PostgresAdapter;
  // Kysely looks for its bookkeeping tables in every schema; pin them to ours (search_path may name another).
  const migrationTableSchema = isPostgres ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(kysely)).rows[0]?.schema : undefined;
  return new Migrator({
    db: kysely,
    provider: { getMigrations: async () => list },
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
}

async function migrateToLatest(kysely: Kysely<Database>): Promise<MigrationOutcome> {
  const migrator = await createMigrator(kysely);
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  const createdDatabase = result.results?.some((migration) => migration.migrationName === FIRST_MIGRATION && migration.status === 'Success') ?? false;
  return { ...result, createdDatabase };
}

/** Where the data lives, for operators: an absolute SQLite path or PostgreSQL host:port/database (never credentials). */
export async function databaseLocation(databaseUrl: string): Promise<string> {
  if (databaseUrl.startsWith('sqlite:')) {
    const filePath = databaseUrl.slice('sqlite:'.length);
    return filePath === ':memory:' ? ':memory:' : resolve(filePath);
  }
  const { default: pg } = await import('pg');
  // pg's own parsing (URL, then PG* variables, then defaults) names the server; constructing a client does not connect.
  const { host, port, database } = new pg.Client({ connectionString: databaseUrl });
  return `${host}:${port}/${database}`;
}

async function openSqlite(filePath: string, busyTimeoutMs = 5000) {
  const { default: BetterSqlite } = await import('better-sqlite3');
  const isMemory = filePath === ':memory:';
  if (!isMemory) mkdirSync(dirname(resolve(filePath)), { recursive: true });
  const database = new BetterSqlite(filePath);
  database.pragma('journal_mode = WAL');
  // FULL: a 201 from signup must survive a power cut, not only a process crash.
  database.pragma('synchronous = FULL');
  database.pragma('foreign_keys = ON');
  database.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
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

async function openPostgresPool(databaseUrl: string, options: DbOptions): Promise<pg.Pool> {
  const { default: pg } = await import('pg');
  const queryMs = options.timeouts?.queryMs ?? 0;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    // A dead or unreachable server fails the request (503) instead of queueing it forever.
    connectionTimeoutMillis: options.timeouts?.connectMs ?? 5_000,
    // Both sides bound a query: the server cancels a slow one (lock waits), the client gives up on
    // a server or network that went silent (no answer ever comes). 0 = unbounded.
    ...(queryMs > 0 ? { query_timeout: queryMs, statement_timeout: queryMs } : {}),
    idleTimeoutMillis: 30_000,
    // Finds connections a failover or a NAT silently dropped, instead of waiting on them.
    keepAlive: true,
    // Lets operators find our connections in pg_stat_activity; an application_name in the URL wins.
    fallback_application_name: 'gatehouse',
    // Epoch seconds are bigint columns; they fit a JS number exactly.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // A dropped connection emits 'error' on its client: on the pool too while idle, on nothing while a
  // query holds it. Unheard, either kills the process. pg-pool discards the broken client and opens
  // a new one on demand; the query caught in flight rejects and its request answers 503.
  const reported = new WeakSet<pg.ClientBase>();
  const report = (client: pg.ClientBase, error: Error) => {
    // One drop raises several errors (the server's notice, then the closed socket): report the first.
    if (reported.has(client)) return;
    reported.add(client);
    options.onConnectionLost?.(error);
  };
  pool.on('connect', (client) => client.on('error', (error) => report(client, error)));
  pool.on('error', (error, client) => report(client, error));
  return pool;
}

/**
 * After pg's client-side query timeout the connection still waits for that query's answer, so
 * every later query on it would time out too: such a connection is destroyed on release, not pooled.
 */
function discardingTimedOutClients(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        let timedOut = false;
        wrapper = {
          query: ((...args: unknown[]) => {
            const result = (client.query as (...queryArgs: unknown[]) => unknown)(...args);
            if (result instanceof Promise) result.catch((error: unknown) => (timedOut ||= isQueryTimeout(error)));
            return result;
          }) as PostgresPoolClient['query'],
          release: (destroy?: boolean) => client.release(destroy || timedOut),
        };
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}

function isQueryTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === QUERY_READ_TIMEOUT;
}

/** Cheap round trip for readiness checks. */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}

function queryErrorKind(error: unknown): QueryErrorKind {
  if (isDatabaseUnavailable(error)) return 'unavailable';
  return isUniqueViolation(error) ? 'constraint' : 'other';
}

/** True when the error is the database refusing a duplicate key, on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Client-side connection failures: nothing wrong with the request, the database is away for now. */
const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** pg raises these without a code when a connection ends, times out, or has already failed. */
const QUERY_READ_TIMEOUT = 'Query read timeout';
const CONNECTION_ERROR_MESSAGES = [
  QUERY_READ_TIMEOUT,
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'timeout exceeded when trying to connect',
  // Kysely, once the database has been closed (shutting down): a late request is told to come back, not a 500.
  'driver has already been destroyed',
];

/**
 * True when the error says the database cannot be reached or cannot serve now (a retry may succeed):
 * a dropped or refused PostgreSQL connection, SQLSTATE class 08 (connection exception), 57P01-57P03
 * (administrator shutdown, crash shutdown, cannot connect now), 53300 (too many connections),
 * 57014 (our statement_timeout cancelled a query, e.g. one stuck behind a lock), 40P01 and 40001 (the
 * transaction was rolled back whole to break a deadlock or a serialization conflict), pg's own query
 * timeout, or a SQLite database still locked by another writer after busy_timeout.
 */
export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 3) return false;
  const { code, message, cause, errors } = error as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string') {
    if (CONNECTION_ERROR_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300' || code === '57014') return true;
    // The server rolled the transaction back to break a deadlock, or for serializability: nothing of it stayed.
    if (code === '40P01' || code === '40001') return true;
    if (code.startsWith('SQLITE_BUSY')) return true;
  }
  if (typeof message === 'string' && CONNECTION_ERROR_MESSAGES.some((known) => message.startsWith(known))) return true;
  // Node reports a refused connection to every address of a host as an AggregateError.
  if (Array.isArray(errors) && errors.some((inner) => isDatabaseUnavailable(inner, depth + 1))) return true;
  return isDatabaseUnavailable(cause, depth + 1);
}
