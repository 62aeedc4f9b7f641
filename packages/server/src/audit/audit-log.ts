import type { Insertable, Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import type { AuditEventsTable, Database } from '../storage/schema.ts';
import type { AuditEventInput, AuditLog } from './events.ts';

export interface AuditLogOptions {
  db: Kysely<Database>;
  clock: Clock;
  /** Warnings (a failed write, events dropped): never the events themselves. */
  log: (level: 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
  /** How long an event may wait before its batch is written. */
  flushIntervalMs?: number;
  /** A batch is written as soon as this many wait. */
  batchSize?: number;
  /** Events kept while the database cannot take them; past it the oldest are dropped (and counted). */
  queueMax?: number;
  /** While writes fail, retries back off from flushIntervalMs up to this. */
  maxRetryDelayMs?: number;
}

export interface AuditLogStats {
  queued: number;
  dropped: number;
  written: number;
  /** The last write failed: events wait in memory for the database. */
  failing: boolean;
}

interface QueuedEvent {
  event: AuditEventInput;
  /** Epoch ms by the injected clock when recorded (not when written). */
  occurredAt: number;
}

const MAX_REASON = 64;
const MAX_ID = 128;
const MAX_TEXT = 256;
// Above anything a request can make: the largest admin change (64 roles of 64 characters, before and
// after, with the user's name and email) is about 9 KB. Past it, only the keys survive (a bug or abuse).
const MAX_DETAILS = 65_536;
/** Detail keys that name a credential: their values are replaced, whoever put them there. */
const SECRET_KEY = /password|secret|token|hash|private|credential/i;
const REDACTED = '[redacted]';

/**
 * The audit log's writer: record() stamps the event and queues it; a timer (or a full batch) writes
 * the queue in one multi-row INSERT, off the request's path. A database outage keeps events queued
 * (bounded) and retries with a backoff; events dropped past the bound are counted and logged.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog & { stats(): AuditLogStats } {
  const { db, clock, log } = options;
  const flushIntervalMs = options.flushIntervalMs ?? 200;
  const batchSize = options.batchSize ?? 200;
  const queueMax = options.queueMax ?? 10_000;
  const maxRetryTicks = Math.max(1, Math.round((options.maxRetryDelayMs ?? 30_000) / flushIntervalMs));
  const listeners = new Set<(event: AuditEventInput) => void>();
  // Events as recorded, stamped: turned into rows (JSON, bounds, redaction) by the writer, not on the request's path.
  let queue: QueuedEvent[] = [];
  let dropped = 0;
  let droppedSinceWarning = 0;
  let written = 0;
  let writing: Promise<void> | undefined;
  let closed = false;
  let failing = false;
  // Ticks, not the clock: a test's frozen clock must not stop the retries.
  let retryEveryTicks = 1;
  let ticksToRetry = 0;

  const timer = setInterval(() => {
    // While the database is away, not every tick: a dead pool would otherwise be asked five times a second.
    if (failing && --ticksToRetry > 0) return;
    void writeQueued();
  }, flushIntervalMs);
  timer.unref();

  function toRow(queued: QueuedEvent): Insertable<AuditEventsTable> {
    try {
      return auditRow(queued.event, queued.occurredAt);
    } catch (error) {
      // Details that cannot be serialised (a cycle, a BigInt): the event is kept without them.
      log('warn', { action: queued.event.action, code: errorCode(error) }, 'audit event details could not be stored');
      return auditRow({ ...queued.event, details: { unserialisable: true } }, queued.occurredAt);
    }
  }

  async function writeQueued(): Promise<void> {
    if (writing) return writing;
    if (queue.length === 0) return;
    writing = (async () => {
      while (queue.length > 0) {
        const batch = queue.slice(0, batchSize);
        try {
          await db.insertInto('audit_events').values(batch.map(toRow)).execute();
        } catch (error) {
          if (!failing) log('warn', { queued: queue.length, code: errorCode(error) }, 'audit events could not be written; kept in memory and retried');
          failing = true;
          retryEveryTicks = Math.min(retryEveryTicks * 2, maxRetryTicks);
          ticksToRetry = retryEveryTicks;
          return;
        }
        if (failing) log('warn', { queued: queue.length, dropped: droppedSinceWarning }, 'audit events are written again');
        failing = false;
        droppedSinceWarning = 0;
        retryEveryTicks = 1;
        // The queue may have been trimmed (oldest dropped) while this batch was in flight: drop what was written by identity.
        const sent = new Set(batch);
        queue = queue.filter((row) => !sent.has(row));
        written += batch.length;
      }
    })().finally(() => {
      writing = undefined;
    });
    return writing;
  }

  async function flush(): Promise<void> {
    await writeQueued();
    // A batch taken before this call may have been in flight: write what is left.
    if (queue.length > 0 && !failing) await writeQueued();
  }

  return {
    record(event) {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch {
          // A listener's failure must not lose the event or fail the request.
        }
      }
      if (closed) return;
      queue.push({ event, occurredAt: clock.now().getTime() });
      if (queue.length > queueMax) {
        const excess = queue.length - queueMax;
        queue = queue.slice(excess);
        if (dropped === 0 || Math.floor((dropped + excess) / 1000) > Math.floor(dropped / 1000)) {
          log('error', { dropped: dropped + excess, queueMax }, 'audit queue full: oldest events dropped');
        }
        dropped += excess;
        droppedSinceWarning += excess;
      }
      if (queue.length >= batchSize && !failing) void writeQueued();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush().catch(() => undefined);
      closed = true;
      if (queue.length > 0) log('error', { lost: queue.length }, 'audit events could not be written before closing');
    },
    stats: () => ({ queued: queue.length, dropped, written, failing }),
  };
}

/**
 * Writes one event at once, for the CLI: a command's event is stored before it reports done (its
 * process then exits, so a batch would be lost). Throws if the database refuses it.
 */
export async function writeAuditEvent(db: Kysely<Database>, clock: Clock, event: AuditEventInput): Promise<void> {
  await db.insertInto('audit_events').values(auditRow(event, clock.now().getTime())).execute();
}

/** The stored row: stamped now, bounded, with credential-looking detail keys redacted and NULs removed (PostgreSQL refuses them in text). */
export function auditRow(event: AuditEventInput, occurredAt: number): Insertable<AuditEventsTable> {
  const details = event.details === undefined ? null : JSON.stringify(redact(event.details, 0));
  return {
    occurred_at: occurredAt,
    action: event.action,
    outcome: event.outcome ?? 'success',
    reason: text(event.reason, MAX_REASON),
    actor_type: event.actor.type,
    actor_id: 'id' in event.actor ? text(event.actor.id, MAX_ID) : null,
    subject_type: event.subject?.type ?? null,
    subject_id: text(event.subject?.id, MAX_ID),
    ip: text(event.context?.ip, MAX_TEXT),
    user_agent: text(event.context?.userAgent, MAX_TEXT),
    request_id: text(event.context?.requestId, MAX_ID),
    details: details !== null && details.length > MAX_DETAILS ? JSON.stringify({ truncated: true, keys: Object.keys(event.details ?? {}).slice(0, 50) }) : details,
  };
}

function text(value: string | null | undefined, max: number): string | null {
  if (value === undefined || value === null) return null;
  return value.replaceAll('\u0000', '').slice(0, max);
}

function isScalarFlag(value: unknown): boolean {
  return value === null || typeof value === 'number' || typeof value === 'boolean';
}

function redact(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.replaceAll('\u0000', '');
  if (value === null || typeof value !== 'object') return value;
  if (depth > 4) return '[nested]';
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const result: Record<string, unknown> = {};
  // A number, a boolean or null under such a key is a count or a flag (unknown_hash_format: 3), never a credential.
  for (const [key, item] of Object.entries(value)) result[key] = SECRET_KEY.test(key) && !isScalarFlag(item) ? REDACTED : redact(item, depth + 1);
  return result;
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code ?? (error instanceof Error ? error.name : 'unknown');
}
