/** `gatehouse audit tail [--follow] | export`: the audit log on stdout, as lines to read or JSON lines. */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { CommandIo } from '../clients/commands.ts';
import { loadConfig } from '../config.ts';
import { isAppError } from '../errors.ts';
import { createDb } from '../storage/db.ts';
import { listAuditEventsAfter, listAuditEventsBefore, type AuditFilter } from '../storage/audit.ts';
import { parseAuditTime, toAuditEvent } from './list.ts';
import type { AuditEvent } from './events.ts';

export interface AuditCommandIo extends CommandIo {
  /** Ends `tail --follow` (the process's SIGINT/SIGTERM by default). */
  signal?: AbortSignal;
  /** How often `tail --follow` asks for new events. */
  pollIntervalMs?: number;
}

const OPTIONS = {
  follow: { type: 'boolean' },
  action: { type: 'string' },
  user: { type: 'string' },
  limit: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  json: { type: 'boolean' },
} as const;
const ALLOWED: Record<string, Array<keyof typeof OPTIONS>> = {
  tail: ['follow', 'action', 'user', 'limit', 'json'],
  // JSON lines whatever the flags: --json is accepted for consistency.
  export: ['since', 'until', 'action', 'user', 'json'],
};
const TAIL_DEFAULT = 20;
const TAIL_MAX = 1000;
/** Rows per keyset page: memory stays bounded by one page whatever the table's size. */
const PAGE_SIZE = 1000;
const DEFAULT_POLL_MS = 1000;

class UsageError extends Error {}

/** Returns the exit code: 0 done, 2 with the usage for a malformed command. */
export async function runAuditCommand(argv: string[], usage: string, io: AuditCommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch {
    parsed = undefined;
  }
  const [subcommand = '', ...rest] = parsed?.positionals ?? [];
  const allowed = ALLOWED[subcommand];
  const given = Object.keys(parsed?.values ?? {}) as Array<keyof typeof OPTIONS>;
  if (!parsed || !allowed || rest.length > 0 || given.some((name) => !allowed.includes(name))) {
    io.stderr.write(`${usage}\n`);
    return 2;
  }
  const values = parsed.values;
  let filter: AuditFilter;
  let limit = TAIL_DEFAULT;
  try {
    filter = {
      action: values.action,
      userId: values.user === undefined ? undefined : positiveInteger(values.user, '--user').toString(),
      sinceMs: values.since === undefined ? undefined : parseTime(values.since, '--since'),
      untilMs: values.until === undefined ? undefined : parseTime(values.until, '--until'),
    };
    if (values.limit !== undefined) limit = positiveInteger(values.limit, '--limit');
    if (limit > TAIL_MAX) throw new UsageError(`--limit is at most ${TAIL_MAX}`);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`gatehouse: ${error.message}\n${usage}\n`);
    return 2;
  }

  const config = loadConfig(io.env);
  const database = await createDb(config.databaseUrl);
  try {
    await database.migrate();
    const db = database.kysely;
    if (subcommand === 'export') {
      // Oldest first, page after page: a year of events never sits in memory at once.
      for (let afterId = 0; ; ) {
        const rows = await listAuditEventsAfter(db, filter, afterId, PAGE_SIZE);
        if (rows.length > 0) await write(io, rows.map((row) => `${JSON.stringify(toAuditEvent(row))}\n`).join(''));
        if (rows.length < PAGE_SIZE) return 0;
        afterId = Number(rows.at(-1)!.id);
      }
    }

    const format = values.json === true ? (event: AuditEvent) => `${JSON.stringify(event)}\n` : describe;
    // One boundary for both parts: the newest event of the whole table, read first. The latest events up to it are
    // printed (oldest first, as tail does), and --follow prints what comes after it. Reading the boundary after the
    // latest page left a gap: an event written between the two reads was in neither (seen as a flaky test).
    const newest = Number((await listAuditEventsBefore(db, {}, undefined, 1))[0]?.id ?? 0);
    const latest = (await listAuditEventsBefore(db, filter, newest + 1, limit)).reverse();
    if (latest.length > 0) await write(io, latest.map((row) => format(toAuditEvent(row))).join(''));
    if (values.follow !== true) return 0;

    let afterId = newest;
    const signal = io.signal ?? processStopSignal();
    while (!signal.aborted) {
      const rows = await listAuditEventsAfter(db, filter, afterId, PAGE_SIZE);
      if (rows.length > 0) {
        await write(io, rows.map((row) => format(toAuditEvent(row))).join(''));
        afterId = Number(rows.at(-1)!.id);
      }
      if (rows.length < PAGE_SIZE) await sleep(io.pollIntervalMs ?? DEFAULT_POLL_MS, undefined, { signal }).catch(() => undefined);
    }
    return 0;
  } finally {
    await database.close();
  }
}

/** One event as a line to read: time, action, outcome, who, to whom, from where, then the details as JSON. */
function describe(event: AuditEvent): string {
  const parts = [
    event.occurred_at,
    event.action,
    event.outcome === 'success' ? 'success' : `failure(${event.reason ?? 'unknown'})`,
    `actor=${event.actor.type}${event.actor.id === null ? '' : `:${event.actor.id}`}`,
  ];
  if (event.subject) parts.push(`subject=${event.subject.type}:${event.subject.id}`);
  if (event.ip) parts.push(`ip=${event.ip}`);
  if (event.request_id) parts.push(`request=${event.request_id}`);
  if (event.user_agent) parts.push(`agent=${JSON.stringify(event.user_agent)}`);
  if (event.details) parts.push(JSON.stringify(event.details));
  return `${parts.join('  ')}\n`;
}

/** Waits for a full pipe to drain (export to a slow reader) instead of buffering the table in memory. */
async function write(io: CommandIo, text: string): Promise<void> {
  const stdout = io.stdout as { write(text: string): unknown; once?: (event: 'drain', listener: () => void) => unknown };
  if (stdout.write(text) === false && typeof stdout.once === 'function') {
    await new Promise<void>((resolve) => stdout.once!('drain', resolve));
  }
}

function positiveInteger(text: string, flag: string): number {
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw new UsageError(`${flag} must be a positive integer (got "${text}")`);
  return Number(text);
}

function parseTime(text: string, flag: string): number {
  try {
    return parseAuditTime(text, flag);
  } catch (error) {
    if (isAppError(error, 'invalid_input')) throw new UsageError(`${flag} must be an ISO 8601 date or date-time (got "${text}")`);
    throw error;
  }
}

function processStopSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}
