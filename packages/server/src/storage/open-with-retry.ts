import { setTimeout as sleep } from 'node:timers/promises';
import { createDb, databaseLocation, isDatabaseUnavailable, type Db, type DbOptions, type MigrationOutcome } from './db.ts';

export interface DatabaseRetryNotice {
  /** Where the database should be (never credentials). */
  location: string;
  attempt: number;
  /** How long until the next attempt. */
  delayMs: number;
  /** The driver's error code (ECONNREFUSED, 57P03, SQLITE_CANTOPEN…) and message. */
  code: string | undefined;
  reason: string;
}

export interface DatabaseRetryOptions {
  /** Told before each wait, so the operator sees why the service is not up yet. */
  onRetry?: (notice: DatabaseRetryNotice) => void;
  /** Aborting (SIGTERM) ends the wait at once; the call then rejects. */
  signal?: AbortSignal;
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * SQLite errors meaning the file's directory cannot be reached now (a volume not mounted yet, a
 * network share away), as opposed to a path that can never work.
 */
const SQLITE_UNREACHABLE_CODES = new Set(['SQLITE_CANTOPEN', 'EACCES', 'EIO', 'EROFS', 'ENODEV', 'ESTALE']);

/** True for start-up failures that waiting may cure; a bad URL, wrong password or missing database fail at once. */
export function isRetryableAtStart(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (SQLITE_UNREACHABLE_CODES.has(code) || code.startsWith('SQLITE_IOERR'));
}

/**
 * Opens and migrates the database, waiting for it while it is unreachable: 1 s, doubling to 30 s,
 * for as long as it takes. A crash loop instead would hammer a recovering server and bury the cause
 * in restarts; one log line per attempt names where the service is looking and why it failed.
 */
export async function openDatabaseWithRetry(
  databaseUrl: string,
  options: DbOptions & { retry?: DatabaseRetryOptions } = {},
): Promise<{ database: Db; migration: MigrationOutcome }> {
  const { retry = {}, ...dbOptions } = options;
  const initialDelayMs = retry.initialDelayMs ?? 1000;
  const maxDelayMs = retry.maxDelayMs ?? 30_000;
  const location = await databaseLocation(databaseUrl);
  for (let attempt = 1; ; attempt++) {
    let database: Db | undefined;
    try {
      database = await createDb(databaseUrl, dbOptions);
      return { database, migration: await database.migrate() };
    } catch (error) {
      await database?.close().catch(() => {});
      if (!isRetryableAtStart(error) || retry.signal?.aborted) throw error;
      const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 30));
      const { code, message } = error as { code?: unknown; message?: unknown };
      retry.onRetry?.({
        location,
        attempt,
        delayMs,
        code: typeof code === 'string' ? code : undefined,
        reason: typeof message === 'string' ? message : String(error),
      });
      await sleep(delayMs, undefined, retry.signal ? { signal: retry.signal } : {}).catch(() => {
        throw new Error(`stopped while waiting for the database at ${location}`, { cause: error });
      });
    }
  }
}
