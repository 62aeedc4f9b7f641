import type { Kysely } from 'kysely';
import { AppError } from '../errors.ts';
import { listAuditEventsBefore, type AuditEventRow, type AuditFilter } from '../storage/audit.ts';
import type { Database } from '../storage/schema.ts';
import type { AuditEvent } from './events.ts';

export interface AuditPage {
  events: AuditEvent[];
  next_cursor: string | null;
}

/** Cursors are opaque to clients; they wrap the id of the last event of a page. */
export function encodeAuditCursor(lastId: number): string {
  return Buffer.from(`a:${lastId}`).toString('base64url');
}

export function decodeAuditCursor(cursor: string): number {
  const match = /^a:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new AppError('invalid_input', 'bad cursor', { fieldErrors: [{ field: 'cursor', message: 'cursor is not a valid cursor' }] });
  return Number(match[1]);
}

/** An ISO 8601 date (or date and time) as epoch milliseconds; a clear invalid_input naming the field otherwise. */
export function parseAuditTime(value: string, field: string): number {
  const date = /^(\d{4})-(\d{2})-(\d{2})([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.exec(value);
  const ms = date ? Date.parse(value) : NaN;
  // Date.parse rolls 2026-02-30 over into March: the calendar date must exist as written.
  const [year, month, day] = date ? [Number(date[1]), Number(date[2]), Number(date[3])] : [0, 0, 0];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  const exists = calendar.getUTCFullYear() === year && calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day;
  if (!Number.isFinite(ms) || !exists) throw new AppError('invalid_input', `bad ${field}`, { fieldErrors: [{ field, message: `${field} must be an ISO 8601 date or date-time` }] });
  return ms;
}

/** A page of events, newest first; next_cursor continues with older ones. */
export async function listAuditPage(db: Kysely<Database>, filter: AuditFilter, options: { limit: number; cursor?: string | undefined }): Promise<AuditPage> {
  const beforeId = options.cursor === undefined ? undefined : decodeAuditCursor(options.cursor);
  // One extra row tells whether another page exists without a COUNT.
  const rows = await listAuditEventsBefore(db, filter, beforeId, options.limit + 1);
  const events = rows.slice(0, options.limit).map(toAuditEvent);
  const last = events.at(-1);
  return { events, next_cursor: rows.length > options.limit && last ? encodeAuditCursor(last.id) : null };
}

export function toAuditEvent(row: AuditEventRow): AuditEvent {
  return {
    id: Number(row.id),
    occurred_at: new Date(Number(row.occurred_at)).toISOString(),
    action: row.action as AuditEvent['action'],
    outcome: row.outcome,
    reason: row.reason,
    actor: { type: row.actor_type as AuditEvent['actor']['type'], id: row.actor_id },
    subject: row.subject_type === null || row.subject_id === null ? null : { type: row.subject_type as NonNullable<AuditEvent['subject']>['type'], id: row.subject_id },
    ip: row.ip,
    user_agent: row.user_agent,
    request_id: row.request_id,
    details: parseDetails(row.details),
  };
}

function parseDetails(text: string | null): Record<string, unknown> | null {
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
