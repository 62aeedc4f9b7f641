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
}

const MAX_REASON = 64;
const MAX_DETAILS = 8192;

/**
 * The audit log's writer: record() stamps the event and queues it; a timer (or a full batch) writes
 * the queue in one multi-row INSERT, off the request's path. A database outage keeps events queued
 * (bounded) and retries on the next tick; events dropped past the bound are counted and logged.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog & { stats(): { queued: number; dropped: number; written: number } } {
  const { db, clock, log } = options;
  const flushIntervalMs = options.flushIntervalMs ?? 200;
  const batchSize = options.batchSize ?? 200;
  const queueMax = options.queueMax ?? 10_000;
  const listeners = new Set<(event: AuditEventInput) => void>();
  let queue: Array<Insertable<AuditEventsTable>> = [];
  let dropped = 0;
  let written = 0;
  let writing: Promise<void> | undefined;
  let closed = false;
  let failing = false;

  const timer = setInterval(() => void writeQueued(), flushIntervalMs);
  timer.unref();

  function toRow(event: AuditEventInput): Insertable<AuditEventsTable> {
    const details = event.details === undefined ? null : JSON.stringify(event.details);
    return {
      occurred_at: clock.now().getTime(),
      action: event.action,
      outcome: event.outcome ?? 'success',
      reason: event.reason?.slice(0, MAX_REASON) ?? null,
      actor_type: event.actor.type,
      actor_id: 'id' in event.actor && event.actor.id !== undefined ? event.actor.id : null,
      subject_type: event.subject?.type ?? null,
      subject_id: event.subject?.id ?? null,
      ip: event.context?.ip ?? null,
      user_agent: event.context?.userAgent ?? null,
      request_id: event.context?.requestId ?? null,
      details: details !== null && details.length > MAX_DETAILS ? JSON.stringify({ truncated: true }) : details,
    };
  }

  async function writeQueued(): Promise<void> {
    if (writing) return writing;
    if (queue.length === 0) return;
    writing = (async () => {
      while (queue.length > 0) {
        const batch = queue.slice(0, batchSize);
        try {
          await db.insertInto('audit_events').values(batch).execute();
        } catch (error) {
          if (!failing) log('warn', { queued: queue.length, code: (error as { code?: unknown }).code }, 'audit events could not be written; kept in memory and retried');
          failing = true;
          return;
        }
        if (failing) log('warn', { queued: queue.length }, 'audit events are written again');
        failing = false;
        queue = queue.slice(batch.length);
        written += batch.length;
      }
    })().finally(() => {
      writing = undefined;
    });
    return writing;
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
      queue.push(toRow(event));
      if (queue.length > queueMax) {
        const excess = queue.length - queueMax;
        queue = queue.slice(excess);
        if (dropped === 0 || dropped % 1000 === 0) log('error', { dropped: dropped + excess, queueMax }, 'audit queue full: oldest events dropped');
        dropped += excess;
      }
      if (queue.length >= batchSize) void writeQueued();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async flush() {
      await writeQueued();
      // A batch taken before this call may have been in flight: write what is left.
      if (queue.length > 0 && !failing) await writeQueued();
    },
    async close() {
      clearInterval(timer);
      await writeQueued().catch(() => undefined);
      closed = true;
    },
    stats: () => ({ queued: queue.length, dropped, written }),
  };
}
