/** `gatehouse users import FILE` and `gatehouse users export`: moving accounts in and out, hashes kept as they are. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import { createAuditLog } from '../audit/audit-log.ts';
import type { CommandIo } from '../clients/commands.ts';
import { systemClock } from '../clock.ts';
import { writeAuditEvent } from '../audit/audit-log.ts';
import { loadConfig } from '../config.ts';
import { createDb, isDatabaseUnavailable, type Db } from '../storage/db.ts';
import { listUserRowsAfter } from '../storage/user-import.ts';
import { ImportFileError, ImportInterruptedError, importUsers, type ImportCounts, type ImportFormat } from './import.ts';
import { createImportProgress } from './import-progress.ts';
import { parseRoles } from './user.ts';

/** The streams a command writes to; `isTTY` on stderr turns on the progress bar. */
export interface ImportCommandIo extends CommandIo {
  stderr: CommandIo['stderr'] & { isTTY?: boolean };
  stdout: CommandIo['stdout'] & { once?(event: 'drain', listener: () => void): unknown };
}

const OPTIONS = {
  format: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'with-hashes': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;
const FORMAT_BY_EXTENSION: Record<string, ImportFormat> = { '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.json': 'jsonl' };
const EXPORT_PAGE_SIZE = 1000;
const READ_CHUNK_BYTES = 64 * 1024;

/** Exit codes: 0 every row in (or skipped as already registered), 3 some lines refused, 1 failed, 2 malformed command. */
export async function runImportExportCommand(argv: string[], usage: string, io: ImportCommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch {
    parsed = undefined;
  }
  const [subcommand, ...rest] = parsed?.positionals ?? [];
  const values = parsed?.values ?? {};
  if (subcommand === 'import' && rest.length === 1 && values['with-hashes'] === undefined) {
    const file = rest[0]!;
    const format = values.format ?? FORMAT_BY_EXTENSION[extname(file).toLowerCase()];
    if (format === 'jsonl' || format === 'csv') return runImport(file, format, values['dry-run'] === true, values.json === true, io);
    if (values.format === undefined) io.stderr.write(`gatehouse: cannot tell the format of ${file} from its name: add --format jsonl or --format csv\n`);
  }
  if (subcommand === 'export' && rest.length === 0 && values.format === undefined && values['dry-run'] === undefined) {
    return runExport(values['with-hashes'] === true, io);
  }
  io.stderr.write(`${usage}\n`);
  return 2;
}

async function runImport(file: string, format: ImportFormat, dryRun: boolean, json: boolean, io: ImportCommandIo): Promise<number> {
  const config = loadConfig(io.env);
  const clock = io.clock ?? systemClock;
  let totalBytes: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
    totalBytes = info.size;
  } catch (error) {
    const code = (error as { code?: string }).code;
    io.stderr.write(`gatehouse: cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'ENOTFILE' ? 'not a file' : (code ?? 'unreadable')}\n`);
    return 1;
  }

  const opened = await openDatabase(config.databaseUrl, !dryRun, io);
  if (!opened) return 1;
  const database = opened;
  const progress = createImportProgress({ stderr: io.stderr, json, totalBytes });
  const startedAt = performance.now();
  let counts: ImportCounts;
  try {
    counts = await importUsers(
      { db: database.kysely, clock, roles: config.roles },
      createReadStream(file, { highWaterMark: READ_CHUNK_BYTES }),
      { format, dryRun },
      { onRefused: (refusal) => progress.refused(refusal), onProgress: (current, finished) => progress.update(current, finished) },
    );
  } catch (error) {
    progress.stop();
    if (error instanceof ImportFileError) {
      io.stderr.write(`gatehouse: ${file}: ${error.message}; nothing imported\n`);
      await database.close();
      return 1;
    }
    if (error instanceof ImportInterruptedError) {
      const { imported, skippedExisting, refused } = error.counts;
      const reason = isDatabaseUnavailable(error.cause) ? `database unavailable (${databaseErrorCode(error.cause)})` : error.message;
      io.stderr.write(`gatehouse: import stopped after line ${error.counts.lines}: ${reason}; ${imported} users imported before it stayed in (${skippedExisting} skipped, ${refused} refused): run the same import again to finish it\n`);
      if (!dryRun) await recordImport(database, clock, { file, format, counts: error.counts, outcome: 'failure' });
      await database.close();
      return 1;
    }
    await database.close();
    throw error;
  }
  progress.stop();
  const seconds = (performance.now() - startedAt) / 1000;
  if (!dryRun) await recordImport(database, clock, { file, format, counts, outcome: 'success' });
  await database.close();

  const summary = {
    file,
    format,
    dry_run: dryRun,
    records: counts.records,
    imported: counts.imported,
    skipped_existing: counts.skippedExisting,
    refused: counts.refused,
    refused_by_code: counts.refusedByCode,
    seconds: Math.round(seconds * 100) / 100,
  };
  if (json) io.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    const verb = dryRun ? 'dry run: would import' : 'imported';
    io.stdout.write(`${verb} ${counts.imported} users from ${file} (${counts.records} records, ${counts.skippedExisting} already registered and skipped, ${counts.refused} refused) in ${summary.seconds} s\n`);
  }
  return counts.refused > 0 ? 3 : 0;
}

async function openDatabase(databaseUrl: string, migrate: boolean, io: ImportCommandIo): Promise<Db | undefined> {
  let database: Db | undefined;
  try {
    database = await createDb(databaseUrl);
    // A dry run writes nothing, migrations included; it reads the users table, so it checks the connection too.
    if (migrate) await database.migrate();
    else await database.ping();
    return database;
  } catch (error) {
    await database?.close().catch(() => undefined);
    io.stderr.write(`gatehouse: database unavailable (${databaseErrorCode(error)}); nothing imported\n`);
    return undefined;
  }
}

function databaseErrorCode(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') return code;
  const nested = (error as { errors?: unknown[] } | null)?.errors?.[0];
  if (nested) return databaseErrorCode(nested);
  return typeof message === 'string' ? message.split('\n')[0]! : 'unknown error';
}

/** One audit event for the whole import, the operator as actor: counts, never rows or hashes. */
async function recordImport(database: Db, clock: typeof systemClock, event: { file: string; format: ImportFormat; counts: ImportCounts; outcome: 'success' | 'failure' }): Promise<void> {
  const audit = createAuditLog({ db: database.kysely, clock, log: () => undefined });
  const { records, imported, skippedExisting, refused, refusedByCode } = event.counts;
  audit.record({
    action: 'admin.users_import',
    outcome: event.outcome,
    ...(event.outcome === 'failure' ? { reason: 'interrupted' } : {}),
    actor: { type: 'operator' },
    details: { file: event.file, format: event.format, records, imported, skipped_existing: skippedExisting, refused, refused_by_code: refusedByCode },
  });
  await audit.close();
}

/** Every account as JSON lines, a page at a time; the hash only when asked for (it is a credential). */
async function runExport(withHashes: boolean, io: ImportCommandIo): Promise<number> {
  const config = loadConfig(io.env);
  let database: Db | undefined;
  try {
    database = await createDb(config.databaseUrl);
    let afterId = 0;
    let exported = 0;
    for (;;) {
      const page = await listUserRowsAfter(database.kysely, afterId, EXPORT_PAGE_SIZE);
      for (const row of page) {
        const user = {
          id: Number(row.id),
          email: row.email,
          name: row.name,
          roles: parseRoles(row.roles),
          disabled: row.disabled_at !== null,
          disabled_at: row.disabled_at === null ? null : isoTime(row.disabled_at),
          created_at: isoTime(row.created_at),
          updated_at: isoTime(row.updated_at),
          ...(withHashes ? { password_hash: row.password_hash } : {}),
        };
        if (io.stdout.write(`${JSON.stringify(user)}\n`) === false && io.stdout.once) {
          await new Promise<void>((resolve) => io.stdout.once!('drain', resolve));
        }
      }
      exported += page.length;
      if (page.length < EXPORT_PAGE_SIZE) {
        // Who took every account out, and whether with the hashes (credentials an attacker could crack offline).
        await writeAuditEvent(database.kysely, io.clock ?? systemClock, {
          action: 'admin.users_export',
          actor: { type: 'operator' },
          details: { users: exported, with_hashes: withHashes },
        });
        return 0;
      }
      afterId = Number(page[page.length - 1]!.id);
    }
  } catch (error) {
    if (!isDatabaseUnavailable(error)) throw error;
    io.stderr.write(`gatehouse: database unavailable (${databaseErrorCode(error)})\n`);
    return 1;
  } finally {
    await database?.close();
  }
}

function isoTime(epochSeconds: number): string {
  return new Date(Number(epochSeconds) * 1000).toISOString();
}
