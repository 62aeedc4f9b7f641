import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { AppError, invalidInput } from '../errors.ts';
import type { Denylist } from './denylist.ts';

/**
 * GET /revocations: what a resource server needs to refuse revoked sessions within a second without
 * a call per request. Served from this process's denylist, which hears every revocation within
 * about a second (its own, other processes' news through Redis or the cluster primary, the
 * database sync), so answering costs no query. Each process numbers what it heard in a bounded log;
 * a cursor is `<epoch>.<sequence>`, the epoch a random name of this process's log. A cursor of
 * another epoch (another instance or worker, a restart) or older than the log gets a snapshot of
 * every session still refused, which is small: only sessions revoked within ACCESS_TOKEN_TTL + margin.
 */

export interface RevokedSession {
  sid: string;
  /** When the last access token of the session expires: a verifier may forget it then. */
  exp: number;
}

export interface RevocationFeedAnswer {
  cursor: string;
  /** true: `revoked` is every session refused now (a snapshot), not what is new since the cursor. */
  reset: boolean;
  revoked: RevokedSession[];
}

export interface RevocationFeed {
  /**
   * What is new since the cursor (a snapshot without one, or for a cursor this log cannot serve).
   * With nothing new and waitMs > 0, waits until something arrives, the wait ends, the signal
   * aborts (the client left) or the feed closes. Throws invalid_input for a malformed cursor or one
   * from this log's future. When maxWaiters requests already wait, or maxWaitersPerClient of this
   * `waiter` (the confidential client), it answers at once instead of waiting: the caller polls
   * again, so it stays live, and no one client can take every slot and blind the others.
   */
  read(since: string | undefined, options?: { waitMs?: number; signal?: AbortSignal; waiter?: string }): Promise<RevocationFeedAnswer>;
  /** Requests waiting now. */
  readonly waiting: number;
  /** Requests of this client waiting now. */
  waitingOf(client: string): number;
  /** Answers every waiting request with what it has and stops listening; later reads never wait. */
  close(): void;
}

export interface RevocationFeedOptions {
  /** Revocations kept for deltas; a cursor older than that gets a snapshot (default 10 000). */
  logLimit?: number;
  /** Requests allowed to wait at once (default 1000); past it, requests are answered at once. */
  maxWaiters?: number;
  /** Requests of one client allowed to wait at once (default a tenth of maxWaiters). */
  maxWaitersPerClient?: number;
}

export const REVOCATION_FEED_LOG_LIMIT = 10_000;
export const REVOCATION_FEED_MAX_WAITERS = 1000;
const CURSOR = /^([A-Za-z0-9_-]{1,32})\.(0|[1-9]\d{0,14})$/;

interface Waiter {
  wake(): void;
}

function cursorRefused(reason: string): AppError {
  return invalidInput([{ field: 'since', message: `since ${reason}` }]);
}

export function createRevocationFeed(deps: { denylist: Denylist; clock: Clock }, options: RevocationFeedOptions = {}): RevocationFeed {
  const logLimit = options.logLimit ?? REVOCATION_FEED_LOG_LIMIT;
  const maxWaiters = options.maxWaiters ?? REVOCATION_FEED_MAX_WAITERS;
  const maxWaitersPerClient = options.maxWaitersPerClient ?? Math.max(1, Math.floor(maxWaiters / 10));
  /** Waiting requests per client, so one client cannot hold every slot. */
  const waitingByClient = new Map<string, number>();
  const epoch = randomBytes(9).toString('base64url');
  /** The log, oldest first: entry i has sequence number firstSequence + i. */
  const log: RevokedSession[] = [];
  let firstSequence = 0;
  const nextSequence = () => firstSequence + log.length;
  const waiters = new Set<Waiter>();
  let wakeScheduled = false;
  let closed = false;

  const stopListening = deps.denylist.onRevoked((sid, refusedUntil) => {
    log.push({ sid, exp: refusedUntil });
    if (log.length > logLimit) {
      // Drop in chunks, so a full log costs one splice per tenth of its length, not one per entry.
      const dropped = Math.ceil(logLimit / 10);
      log.splice(0, dropped);
      firstSequence += dropped;
    }
    // Revocations heard in one turn of the event loop (a logout of every session, a sync) go out in one answer.
    if (!wakeScheduled && waiters.size > 0) {
      wakeScheduled = true;
      setImmediate(wakeAll);
    }
  });

  function wakeAll(): void {
    wakeScheduled = false;
    for (const waiter of [...waiters]) waiter.wake();
  }

  const cursorNow = () => `${epoch}.${nextSequence()}`;

  function snapshot(): RevocationFeedAnswer {
    const now = deps.clock.nowSeconds();
    const revoked: RevokedSession[] = [];
    for (const [sid, exp] of deps.denylist.entries()) if (exp > now) revoked.push({ sid, exp });
    return { cursor: cursorNow(), reset: true, revoked };
  }

  function since(sequence: number): RevocationFeedAnswer {
    const now = deps.clock.nowSeconds();
    // The latest entry per session wins; sessions whose tokens have all expired are of no use to anyone.
    const latest = new Map<string, number>();
    for (let index = sequence - firstSequence; index < log.length; index += 1) latest.set(log[index]!.sid, log[index]!.exp);
    const revoked: RevokedSession[] = [];
    for (const [sid, exp] of latest) if (exp > now) revoked.push({ sid, exp });
    return { cursor: cursorNow(), reset: false, revoked };
  }

  function mayWait(client: string): boolean {
    return waiters.size < maxWaiters && (waitingByClient.get(client) ?? 0) < maxWaitersPerClient;
  }

  function waitForNews(waitMs: number, signal: AbortSignal | undefined, client: string): Promise<void> {
    waitingByClient.set(client, (waitingByClient.get(client) ?? 0) + 1);
    return new Promise((resolve) => {
      const waiter: Waiter = { wake: done };
      const timer = setTimeout(done, waitMs);
      function done() {
        if (!waiters.delete(waiter)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const left = (waitingByClient.get(client) ?? 1) - 1;
        if (left > 0) waitingByClient.set(client, left);
        else waitingByClient.delete(client);
        resolve();
      }
      waiters.add(waiter);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  return {
    async read(cursor, { waitMs = 0, signal, waiter = '' } = {}) {
      if (cursor === undefined) return snapshot();
      const match = CURSOR.exec(cursor);
      if (!match) throw cursorRefused('is not a cursor this service gave out');
      if (match[1] !== epoch) return snapshot();
      const sequence = Number(match[2]);
      if (sequence > nextSequence()) throw cursorRefused('is not a cursor this service gave out');
      if (sequence < firstSequence) return snapshot();
      if (sequence === nextSequence() && waitMs > 0 && !closed && !signal?.aborted && mayWait(waiter)) await waitForNews(waitMs, signal, waiter);
      // A burst larger than the log while this request waited leaves it behind the log too.
      return sequence < firstSequence ? snapshot() : since(sequence);
    },
    get waiting() {
      return waiters.size;
    },
    waitingOf(client) {
      return waitingByClient.get(client) ?? 0;
    },
    close() {
      closed = true;
      stopListening();
      wakeAll();
    },
  };
}
