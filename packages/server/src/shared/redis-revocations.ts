import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SharedStateLog } from './index.ts';
import type { RevocationBus, RevocationEvent } from './state.ts';

/** A logout-all of a user with many sessions goes out in several messages, each well under the size bound. */
const SESSIONS_PER_MESSAGE = 200;
/** Anything longer is not ours (200 ids of at most 128 characters, plus the envelope). */
const MAX_MESSAGE_LENGTH = 64 * 1024;
const MAX_SESSION_ID_LENGTH = 128;

interface RevocationMessage extends RevocationEvent {
  /** Who published it: a process ignores its own news (its denylist already has it). */
  origin: string;
}

/**
 * Revocation news over Redis pub/sub: PUBLISH on `${keyPrefix}revocations` through the command
 * connection, and a dedicated subscriber connection (a subscribed connection can do nothing else).
 * Pub/sub keeps nothing for a process that is disconnected; the database sync catches it up.
 */
export function createRedisRevocationBus(options: {
  publisher: Redis;
  subscriber: Redis;
  keyPrefix: string;
  log: SharedStateLog;
  /** Whether publishing may be tried now (false while Redis is known to be away). */
  isUp: () => boolean;
  /** A publish failed: Redis is probably away. */
  onFailure: (error: unknown) => void;
}): RevocationBus {
  const channel = `${options.keyPrefix}revocations`;
  const origin = randomUUID();
  const listeners: Array<(event: RevocationEvent) => void> = [];

  options.subscriber.on('message', (receivedOn: string, message: string) => {
    if (receivedOn !== channel) return;
    const event = parseMessage(message, origin);
    if (!event) return;
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        options.log('error', { error: errorName(error) }, 'a revocation listener failed');
      }
    }
  });
  // Re-subscribed by ioredis after each reconnect (autoResubscribe); the offline queue holds this one command until the first connect.
  options.subscriber.subscribe(channel).catch((error: unknown) => options.log('error', { error: errorName(error) }, 'could not subscribe to revocation news'));

  return {
    publish(event) {
      if (!options.isUp()) return; // the outage was logged once; the database sync carries the news
      for (let start = 0; start < event.sessionIds.length; start += SESSIONS_PER_MESSAGE) {
        const message: RevocationMessage = { origin, sessionIds: event.sessionIds.slice(start, start + SESSIONS_PER_MESSAGE), revokedAt: event.revokedAt };
        options.publisher.publish(channel, JSON.stringify(message)).catch(options.onFailure);
      }
    },
    subscribe(listener) {
      listeners.push(listener);
    },
  };
}

/** The event of a well-formed message from another process; undefined for our own or anything malformed. */
export function parseMessage(message: string, ownOrigin: string): RevocationEvent | undefined {
  if (message.length > MAX_MESSAGE_LENGTH) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { origin, sessionIds, revokedAt } = parsed as Record<string, unknown>;
  if (typeof origin !== 'string' || origin === ownOrigin) return undefined;
  if (!Number.isSafeInteger(revokedAt) || (revokedAt as number) < 0) return undefined;
  if (!Array.isArray(sessionIds) || sessionIds.length > SESSIONS_PER_MESSAGE) return undefined;
  if (!sessionIds.every((id) => typeof id === 'string' && id.length > 0 && id.length <= MAX_SESSION_ID_LENGTH)) return undefined;
  return { sessionIds: sessionIds as string[], revokedAt: revokedAt as number };
}

export function errorName(error: unknown): string {
  if (error && typeof error === 'object') {
    const { code, name } = error as { code?: unknown; name?: unknown };
    if (typeof code === 'string') return code;
    if (typeof name === 'string') return name;
  }
  return 'unknown';
}
