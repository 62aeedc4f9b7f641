/**
 * `gatehouse users import`: rows streamed from the file, checked one by one (bad ones refused with
 * their line number, the rest going on), inserted a batch per statement; emails already registered
 * are skipped by the unique index, so a rerun of the same file imports nothing twice.
 */
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Database } from '../storage/schema.ts';
import { findRegisteredEmails, insertUsersSkippingExisting, type ImportedUserRow } from '../storage/user-import.ts';
import { ImportFileError, readCsv, readJsonLines, validateRecord, type ImportFormat, type ImportRow, type Refusal, type RefusalCode } from './import-rows.ts';
import { SeenEmails } from './seen-emails.ts';

export { ImportFileError, type ImportFormat, type Refusal, type RefusalCode } from './import-rows.ts';

export interface ImportDeps {
  db: Kysely<Database>;
  clock: Clock;
  /** ROLES: every role of an imported row must be one of these. */
  roles: readonly string[];
}

export interface ImportOptions {
  format: ImportFormat;
  /** Check every row, and which emails are registered already, without writing. */
  dryRun: boolean;
  /** Rows per INSERT (9 parameters each; SQLite takes 32,766 per statement, PostgreSQL 65,535). */
  batchSize?: number;
}

export interface ImportCounts {
  /** Records read (blank lines not counted). */
  records: number;
  /** Inserted (in a dry run: would be). */
  imported: number;
  /** Emails already registered: skipped, not refused. */
  skippedExisting: number;
  refused: number;
  refusedByCode: Partial<Record<RefusalCode, number>>;
  bytesRead: number;
  /** The last physical line read. */
  lines: number;
}

export interface ImportHooks {
  onRefused?(refusal: Refusal): void;
  /** After every chunk of the file (64 KiB) is handled, and once more (`finished`) when every row is written. */
  onProgress?(counts: Readonly<ImportCounts>, finished: boolean): void;
}

/** The import stopped (the database went away): what went in before stays in, a rerun finishes it. */
export class ImportInterruptedError extends Error {
  constructor(
    readonly counts: ImportCounts,
    override readonly cause: unknown,
  ) {
    super(`import stopped after line ${counts.lines}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

const DEFAULT_BATCH_SIZE = 500;

export async function importUsers(deps: ImportDeps, chunks: AsyncIterable<Buffer>, options: ImportOptions, hooks: ImportHooks = {}): Promise<ImportCounts> {
  const allowedRoles = new Set(deps.roles);
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const seen = new SeenEmails();
  const counts: ImportCounts = { records: 0, imported: 0, skippedExisting: 0, refused: 0, refusedByCode: {}, bytesRead: 0, lines: 0 };
  const refuse = (refusal: Refusal) => {
    counts.refused += 1;
    counts.refusedByCode[refusal.code] = (counts.refusedByCode[refusal.code] ?? 0) + 1;
    counts.lines = Math.max(counts.lines, refusal.line);
    hooks.onRefused?.(refusal);
  };

  // One batch is written while the next is read: at most two batches in memory.
  let writing: Promise<void> = Promise.resolve();
  const writeBatch = async (rows: ImportRow[]) => {
    const now = deps.clock.nowSeconds();
    if (options.dryRun) {
      const registered = await findRegisteredEmails(deps.db, rows.map((row) => row.emailNormalized));
      counts.skippedExisting += registered.size;
      counts.imported += rows.length - registered.size;
      return;
    }
    const inserted = await insertUsersSkippingExisting(deps.db, rows.map((row) => toInsertedRow(row, now)), now);
    counts.imported += inserted.size;
    counts.skippedExisting += rows.length - inserted.size;
  };
  const submit = async (rows: ImportRow[]) => {
    await writing;
    writing = writeBatch(rows);
    writing.catch(() => undefined); // awaited by the next submit or at the end; not unhandled meanwhile
  };

  const source = options.format === 'csv' ? readCsv(chunks) : readJsonLines(chunks);
  let batch: ImportRow[] = [];
  try {
    for await (const { items, bytesRead } of source) {
      for (const item of items) {
        counts.records += 1;
        if ('code' in item) {
          refuse(item);
          continue;
        }
        counts.lines = Math.max(counts.lines, item.line);
        const row = validateRecord(item.line, item.fields, allowedRoles);
        if ('code' in row) {
          refuse(row);
          continue;
        }
        const firstLine = seen.firstLineOf(row.emailNormalized, row.line);
        if (firstLine !== undefined) {
          refuse({ line: row.line, code: 'duplicate_email', message: `${row.email} is already on line ${firstLine} of this file` });
          continue;
        }
        batch.push(row);
        if (batch.length >= batchSize) {
          await submit(batch);
          batch = [];
        }
      }
      counts.bytesRead = bytesRead;
      hooks.onProgress?.(counts, false);
    }
    if (batch.length > 0) await submit(batch);
    await writing;
  } catch (error) {
    if (error instanceof ImportFileError) throw error;
    throw new ImportInterruptedError(counts, error);
  }
  hooks.onProgress?.(counts, true);
  return counts;
}

function toInsertedRow(row: ImportRow, now: number): ImportedUserRow {
  return {
    email: row.email,
    emailNormalized: row.emailNormalized,
    name: row.name,
    passwordHash: row.passwordHash,
    roles: row.roles,
    createdAt: row.createdAt ?? now,
    // `disabled: true` without a date: disabled from the import on.
    disabledAt: row.disabledAt ?? (row.disabled ? now : null),
  };
}
