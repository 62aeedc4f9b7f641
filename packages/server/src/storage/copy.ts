import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { sql, type Kysely } from 'kysely';
import { createDb, type Db, type DialectName } from './db.ts';

/** Every table, parents before children (foreign keys), with its primary key. */
const TABLES = [
  { name: 'users', primaryKey: 'id', textKey: false },
  { name: 'sessions', primaryKey: 'id', textKey: true },
  { name: 'refresh_tokens', primaryKey: 'token_hash', textKey: true },
  { name: 'signing_keys', primaryKey: 'kid', textKey: true },
  { name: 'server_secrets', primaryKey: 'name', textKey: true },
  { name: 'clients', primaryKey: 'id', textKey: true },
  { name: 'audit_events', primaryKey: 'id', textKey: false },
  { name: 'email_tokens', primaryKey: 'token_hash', textKey: true },
  { name: 'totp_factors', primaryKey: 'user_id', textKey: false },
  { name: 'recovery_codes', primaryKey: 'code_hash', textKey: true },
  { name: 'mfa_tickets', primaryKey: 'ticket_hash', textKey: true },
  { name: 'passkeys', primaryKey: 'id', textKey: false },
  { name: 'webauthn_challenges', primaryKey: 'id', textKey: true },
] as const;
/** Rows every migrated database starts with: they do not make a target "not empty", and the source's replace them. */
const SEEDED_ROWS: Partial<Record<Table['name'], { column: string; values: string[] }>> = { clients: { column: 'id', values: ['gatehouse'] } };
type Table = (typeof TABLES)[number];

export interface TableCopyReport {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceChecksum: string;
  targetChecksum: string;
}

export interface CopyOptions {
  /** Empty a target that holds rows (otherwise refused). */
  force?: boolean;
  batchSize?: number;
  onProgress?: (table: string, copied: number, total: number) => void;
}

export class CopyRefusedError extends Error {
  override name = 'CopyRefusedError';
}

export class CopyMismatchError extends Error {
  override name = 'CopyMismatchError';
  constructor(readonly tables: TableCopyReport[]) {
    super(`verification failed for ${tables.filter((table) => !matches(table)).map((table) => table.table).join(', ')}; the target was left unchanged`);
  }
}

const matches = (report: TableCopyReport) => report.sourceRows === report.targetRows && report.sourceChecksum === report.targetChecksum;

/**
 * Copies every row from one database to the other (SQLite → PostgreSQL, or back) in one target
 * transaction: both are migrated first, rows go in primary-key batches in foreign-key order, and
 * each table's row count and checksum are read back from both sides before the commit, so a
 * mismatch leaves the target as it was. Private keys and secrets are copied as stored (encrypted
 * under KEY_ENCRYPTION_SECRET when it is set): the target's instances need the same secret.
 */
export async function copyDatabase(source: Db, target: Db, options: CopyOptions = {}): Promise<TableCopyReport[]> {
  const batchSize = options.batchSize ?? 500;
  await source.migrate();
  await target.migrate();
  for (const db of [source, target]) {
    const unknown = (await listTables(db)).filter((name) => !name.startsWith('kysely_') && !TABLES.some((table) => table.name === name));
    // A table this command does not know would be left behind silently: better to stop.
    if (unknown.length) throw new CopyRefusedError(`${db.location} has tables this copy does not know: ${unknown.join(', ')}`);
  }
  const existing = await countRows(target.kysely);
  const seeded = await countSeededRows(target.kysely);
  const nonEmpty = TABLES.filter((table) => existing[table.name]! - (seeded[table.name] ?? 0) > 0);
  if (nonEmpty.length && !options.force) {
    const counts = nonEmpty.map((table) => `${table.name}: ${existing[table.name]}`).join(', ');
    throw new CopyRefusedError(`the target is not empty (${counts}); pass --force to replace its contents`);
  }

  const reading = source.dialect === 'postgres' ? source.kysely.transaction().setIsolationLevel('repeatable read') : source.kysely.transaction();
  // The source is read in one transaction too, so rows written meanwhile cannot tear the copy.
  return reading.execute(async (sourceTx) => {
    const totals = await countRows(sourceTx);
    return target.kysely.transaction().execute(async (targetTx) => {
      for (const table of [...TABLES].reverse()) if (existing[table.name]! > 0) await targetTx.deleteFrom(table.name).execute();
      for (const table of TABLES) {
        let copied = 0;
        options.onProgress?.(table.name, copied, totals[table.name]!);
        for await (const rows of readInKeyOrder(sourceTx, source.dialect, table, batchSize)) {
          await (targetTx as Kysely<any>).insertInto(table.name).values(rows).execute();
          copied += rows.length;
          options.onProgress?.(table.name, copied, totals[table.name]!);
        }
      }
      // Rows came with their ids: the next signup must get a new one.
      if (target.dialect === 'postgres') {
        await sql`select setval(pg_get_serial_sequence('users', 'id'), coalesce((select max(id) from users), 0) + 1, false)`.execute(targetTx);
        await sql`select setval(pg_get_serial_sequence('audit_events', 'id'), coalesce((select max(id) from audit_events), 0) + 1, false)`.execute(targetTx);
        await sql`select setval(pg_get_serial_sequence('passkeys', 'id'), coalesce((select max(id) from passkeys), 0) + 1, false)`.execute(targetTx);
      }
      const reports: TableCopyReport[] = [];
      for (const table of TABLES) {
        const [fromSource, fromTarget] = [await summarise(sourceTx, source.dialect, table, batchSize), await summarise(targetTx, target.dialect, table, batchSize)];
        reports.push({ table: table.name, sourceRows: fromSource.rows, targetRows: fromTarget.rows, sourceChecksum: fromSource.checksum, targetChecksum: fromTarget.checksum });
      }
      if (!reports.every(matches)) throw new CopyMismatchError(reports);
      return reports;
    });
  });
}

async function listTables(db: Db): Promise<string[]> {
  const query =
    db.dialect === 'postgres'
      ? sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`
      : sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`;
  return (await query.execute(db.kysely)).rows.map((row) => row.name);
}

async function countSeededRows(db: Kysely<any>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [table, seeded] of Object.entries(SEEDED_ROWS)) {
    const row = await db.selectFrom(table).select(sql<number>`count(*)`.as('count')).where(seeded.column, 'in', seeded.values).executeTakeFirstOrThrow();
    counts[table] = Number(row.count);
  }
  return counts;
}

async function countRows(db: Kysely<any>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const row = await db.selectFrom(table.name).select(sql<number>`count(*)`.as('count')).executeTakeFirstOrThrow();
    counts[table.name] = Number(row.count);
  }
  return counts;
}

/** Rows in primary-key order, by byte order for text keys on both dialects (PostgreSQL's collation would differ from SQLite's). */
async function* readInKeyOrder(db: Kysely<any>, dialect: DialectName, table: Table, batchSize: number): AsyncGenerator<Record<string, unknown>[]> {
  const key = dialect === 'postgres' && table.textKey ? sql`${sql.ref(table.primaryKey)} collate "C"` : sql.ref(table.primaryKey);
  let last: unknown;
  for (;;) {
    let query = db.selectFrom(table.name).selectAll();
    if (last !== undefined) query = query.where(sql<boolean>`${key} > ${last}`);
    const rows = (await query.orderBy(key).limit(batchSize).execute()) as Record<string, unknown>[];
    if (rows.length) yield rows;
    if (rows.length < batchSize) return;
    last = rows.at(-1)![table.primaryKey];
  }
}

/** Row count and SHA-256 over each row's canonical JSON (keys sorted, integers as numbers) in key order. */
async function summarise(db: Kysely<any>, dialect: DialectName, table: Table, batchSize: number): Promise<{ rows: number; checksum: string }> {
  const hash = createHash('sha256');
  let rows = 0;
  for await (const batch of readInKeyOrder(db, dialect, table, batchSize)) {
    for (const row of batch) hash.update(`${canonicalRow(row)}\n`);
    rows += batch.length;
  }
  return { rows, checksum: hash.digest('hex') };
}

function canonicalRow(row: Record<string, unknown>): string {
  const normalised = Object.keys(row)
    .sort()
    .map((column) => {
      const value = row[column];
      return [column, typeof value === 'bigint' ? Number(value) : value];
    });
  return JSON.stringify(normalised);
}

const USAGE = 'usage: gatehouse db copy --from <sqlite:path | postgres://…> --to <sqlite:path | postgres://…> [--force] [--batch-size N]';
const DATABASE_URL = /^(sqlite:.+|postgres(ql)?:\/\/.+)$/;

/** `gatehouse db copy`: returns the exit code (0 copied and verified, 1 refused or mismatch, 2 usage). */
export async function runDbCopy(argv: string[], io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream } = process): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: { from: { type: 'string' }, to: { type: 'string' }, force: { type: 'boolean', default: false }, 'batch-size': { type: 'string' } },
    }));
  } catch (error) {
    io.stderr.write(`gatehouse: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const batchSize = values['batch-size'] === undefined ? 500 : Number(values['batch-size']);
  if (!values.from || !values.to || !DATABASE_URL.test(values.from) || !DATABASE_URL.test(values.to) || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
    io.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (values.from === values.to) {
    io.stderr.write('gatehouse: --from and --to name the same database\n');
    return 2;
  }

  const source = await createDb(values.from);
  try {
    const target = await createDb(values.to);
    try {
      io.stdout.write(`copying ${source.dialect} ${source.location} → ${target.dialect} ${target.location}\n`);
      const started = Date.now();
      const reports = await copyDatabase(source, target, { force: values.force, batchSize, onProgress: progressLine(io.stderr) });
      printReports(io.stdout, reports);
      io.stdout.write(`verified: row counts and SHA-256 checksums match on both sides (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      return 0;
    } catch (error) {
      if (error instanceof CopyMismatchError) printReports(io.stdout, error.tables);
      if (error instanceof CopyRefusedError || error instanceof CopyMismatchError) {
        io.stderr.write(`gatehouse: ${error.message}\n`);
        return 1;
      }
      throw error;
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/** Progress on a terminal only: a log file or pipe gets the summary alone. */
function progressLine(stderr: NodeJS.WriteStream): CopyOptions['onProgress'] {
  if (!stderr.isTTY) return undefined;
  return (table, copied, total) => {
    stderr.write(`\r\x1b[K${table.padEnd(16)} ${copied}/${total}${total ? ` (${Math.floor((copied / total) * 100)} %)` : ''}`);
    if (copied === total) stderr.write('\n');
  };
}

function printReports(stdout: NodeJS.WriteStream, reports: TableCopyReport[]): void {
  for (const report of reports) {
    const rows = `${report.targetRows} rows`.padStart(12);
    const state = matches(report) ? 'ok' : `MISMATCH (source ${report.sourceRows} rows, sha256 ${report.sourceChecksum})`;
    stdout.write(`${report.table.padEnd(16)}${rows}  sha256 ${report.targetChecksum}  ${state}\n`);
  }
}
