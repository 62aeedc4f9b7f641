import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely';
import type { AuditEventsTable, Database } from './schema.ts';

export type AuditEventRow = Selectable<AuditEventsTable>;

/** What GET /audit and `gatehouse audit` filter on; every field narrows (AND). */
export interface AuditFilter {
  action?: string | undefined;
  actorType?: string | undefined;
  actorId?: string | undefined;
  subjectType?: string | undefined;
  subjectId?: string | undefined;
  /** Events whose actor or subject is this user. */
  userId?: string | undefined;
  outcome?: 'success' | 'failure' | undefined;
  /** Epoch milliseconds, inclusive. */
  sinceMs?: number | undefined;
  /** Epoch milliseconds, exclusive. */
  untilMs?: number | undefined;
}

type AuditQuery = SelectQueryBuilder<Database, 'audit_events', AuditEventRow>;

function filtered(db: Kysely<Database>, filter: AuditFilter): AuditQuery {
  let query = db.selectFrom('audit_events').selectAll();
  if (filter.action !== undefined) query = query.where('action', '=', filter.action);
  if (filter.actorType !== undefined) query = query.where('actor_type', '=', filter.actorType);
  if (filter.actorId !== undefined) query = query.where('actor_id', '=', filter.actorId);
  if (filter.subjectType !== undefined) query = query.where('subject_type', '=', filter.subjectType);
  if (filter.subjectId !== undefined) query = query.where('subject_id', '=', filter.subjectId);
  if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
  if (filter.sinceMs !== undefined) query = query.where('occurred_at', '>=', filter.sinceMs);
  if (filter.untilMs !== undefined) query = query.where('occurred_at', '<', filter.untilMs);
  const userId = filter.userId;
  if (userId !== undefined) {
    // Two indexed halves (audit_events_actor, audit_events_subject) rather than a scan.
    query = query.where((eb) =>
      eb.or([
        eb.and([eb('actor_type', '=', 'user'), eb('actor_id', '=', userId)]),
        eb.and([eb('subject_type', '=', 'user'), eb('subject_id', '=', userId)]),
      ]),
    );
  }
  return query;
}

/** Newest first, keyset by id: the page of events written before `beforeId` (all when undefined). */
export async function listAuditEventsBefore(db: Kysely<Database>, filter: AuditFilter, beforeId: number | undefined, limit: number): Promise<AuditEventRow[]> {
  let query = filtered(db, filter);
  if (beforeId !== undefined) query = query.where('id', '<', beforeId);
  return query.orderBy('id', 'desc').limit(limit).execute();
}

/** Oldest first, keyset by id: the events written after `afterId` (export, tail --follow). */
export async function listAuditEventsAfter(db: Kysely<Database>, filter: AuditFilter, afterId: number, limit: number): Promise<AuditEventRow[]> {
  return filtered(db, filter).where('id', '>', afterId).orderBy('id', 'asc').limit(limit).execute();
}

/**
 * Deletes events that occurred before `cutoffMs`, `chunk` rows per statement, so a first purge of a
 * large backlog never holds one long lock. Returns how many went.
 */
export async function deleteAuditEventsBefore(db: Kysely<Database>, cutoffMs: number, chunk = 5000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const ids = db.selectFrom('audit_events').select('id').where('occurred_at', '<', cutoffMs).orderBy('id').limit(chunk);
    const result = await db.deleteFrom('audit_events').where('id', 'in', ids).executeTakeFirst();
    const count = Number(result.numDeletedRows);
    deleted += count;
    if (count < chunk) return deleted;
  }
}
