import { Redis, type RedisOptions } from 'ioredis';
import type { CounterStore } from '../abuse/counter-store.ts';
import type { LockoutStore } from '../abuse/lockout-store.ts';
import type { SharedStateLog } from './index.ts';
import { createRedisRevocationBus, errorName } from './redis-revocations.ts';
import { createRedisStores } from './redis-scripts.ts';
import type { RevocationBus, SharedState } from './state.ts';

export interface RedisSharedStateOptions {
  url: string;
  /** Of every key and channel, so deployments (or test runs) can share one Redis. */
  keyPrefix: string;
  /** Counts while Redis is away: this process's memory, or the cluster primary. Closed with this state. */
  fallback: SharedState;
  log: SharedStateLog;
  /** How long a command may take before the fallback answers instead. */
  commandTimeoutMs?: number;
  /** How long start waits for the first connection before going on with the fallback. */
  connectTimeoutMs?: number;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 500;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const QUIT_TIMEOUT_MS = 500;

/**
 * Reconnects 50 ms, 100 ms, 200 ms … then every second, forever: a Redis that comes back is
 * used again within about a second, and one that stays away costs one attempt a second.
 */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(1000, 50 * 2 ** Math.min(attempt - 1, 10));
}

/**
 * Counters, lockouts and revocation news in Redis, shared by every worker and instance.
 * While Redis is away (down, unreachable, too slow), counters and lockouts fall back to the
 * fallback's stores, with one warning per outage, and revocation news rides on the periodic
 * database sync; when Redis answers again everything moves back to it, with one info line.
 */
export async function createRedisSharedState(options: RedisSharedStateOptions): Promise<SharedState> {
  const { fallback, log } = options;
  const where = describeLocation(options.url);
  const common: RedisOptions = {
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    retryStrategy: reconnectDelayMs,
    connectionName: 'gatehouse',
  };
  const commands = new Redis(options.url, {
    ...common,
    // A command either runs now or fails now (and the fallback answers): never queued, resent or left hanging.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
  });
  // Only SUBSCRIBE ever runs here: it waits in the offline queue for the first connection, and ioredis re-subscribes after each reconnect.
  const subscriber = new Redis(options.url, { ...common, maxRetriesPerRequest: null });

  /** For status() and the log: whether Redis answered last time. */
  let up = false;
  /** Whether commands go to Redis: from each 'ready' until the connection closes or we drop it. */
  let connectionTrusted = false;
  /** Counts 'ready's, so a late failure from an earlier connection does not drop the current one. */
  let connectionNumber = 0;
  let warned = false;
  let closing = false;
  function markUp(): void {
    if (up || closing) return;
    up = true;
    if (warned) log('info', { redis: where }, 'Redis is back: counters, lockouts and revocation news are shared again');
    warned = false;
  }
  function markDown(error: unknown): void {
    if (closing) return;
    up = false;
    if (warned) return;
    warned = true;
    log(
      'warn',
      { redis: where, error: errorName(error) },
      'Redis is unreachable: counters and lockouts are kept per process until it is back; revocations reach other instances through the database sync',
    );
  }
  const usable = () => connectionTrusted && commands.status === 'ready';
  // Every connection has an error handler: a Redis that drops must never end the process. Reconnecting is ioredis's job.
  commands.on('error', (error: unknown) => markDown(error));
  subscriber.on('error', () => {});
  commands.on('ready', () => {
    connectionNumber += 1;
    connectionTrusted = true;
    markUp();
  });
  commands.on('close', () => {
    connectionTrusted = false;
    markDown({ code: 'connection closed' });
  });

  const redis = createRedisStores(commands, options.keyPrefix);

  function commandFailed(error: unknown, onConnection: number): void {
    markDown(error);
    if (isReplyError(error)) return; // Redis answered: the connection is fine
    if (!connectionTrusted || onConnection !== connectionNumber) return; // already dropped
    // A timeout leaves a connection that looks ready: skip it until a new one is ready (the old socket closes within seconds).
    connectionTrusted = false;
    commands.disconnect(true);
  }

  /** Redis when it is there, else the fallback; a failure sends this call to the fallback. */
  async function viaRedis<T>(inRedis: () => Promise<T>, inFallback: () => Promise<T>): Promise<T> {
    if (!usable()) return inFallback();
    const onConnection = connectionNumber;
    let result: T;
    try {
      result = await inRedis();
    } catch (error) {
      commandFailed(error, onConnection);
      return inFallback();
    }
    markUp();
    return result;
  }

  const counters: CounterStore = {
    increment: (key, windowSeconds, now) =>
      viaRedis(
        () => redis.counters.increment(key, windowSeconds, now),
        () => fallback.counters.increment(key, windowSeconds, now),
      ),
  };
  const lockouts: LockoutStore = {
    reserve: (key, policy, now) =>
      viaRedis(
        () => redis.lockouts.reserve(key, policy, now),
        () => fallback.lockouts.reserve(key, policy, now),
      ),
    release: (key, policy, now, lockSetUntil) =>
      viaRedis(
        () => redis.lockouts.release(key, policy, now, lockSetUntil),
        () => fallback.lockouts.release(key, policy, now, lockSetUntil),
      ),
    reset: (key) =>
      viaRedis(
        () => redis.lockouts.reset(key),
        () => fallback.lockouts.reset(key),
      ),
  };
  const redisRevocations = createRedisRevocationBus({ publisher: commands, subscriber, keyPrefix: options.keyPrefix, log, isUp: usable, onFailure: (error) => commandFailed(error, connectionNumber) });
  // While Redis is away, the fallback carries the news as far as it reaches (the sibling workers, through the cluster primary).
  const revocations: RevocationBus = {
    publish: (event) => (usable() ? redisRevocations : fallback.revocations).publish(event),
    subscribe(listener) {
      redisRevocations.subscribe(listener);
      fallback.revocations.subscribe(listener);
    },
  };

  if (!(await becameReady(commands, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS))) markDown({ code: 'not connected at start' });

  return {
    kind: 'redis',
    counters,
    lockouts,
    revocations,
    status: () => ({ ...fallback.status(), redis: up && usable() ? 'up' : 'down' }),
    async close() {
      closing = true;
      await Promise.all([quit(commands), quit(subscriber)]);
      await fallback.close();
    },
  };
}

/** Resolves true once the connection is ready, false if it is not within the time given. */
function becameReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

/**
 * QUIT when connected, so replies already on their way arrive first; but a hung Redis must not
 * hold up shutdown, so after QUIT_TIMEOUT_MS (or at once when not connected) the socket is just dropped.
 */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    await Promise.race([client.quit().catch(() => {}), timedOut]);
    clearTimeout(timer);
  }
  client.disconnect();
}

/** Redis answered, with an error of its own (a script error, out of memory): the connection itself is fine. */
function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}

/** host:port for log lines: never the URL, which may carry a password. */
function describeLocation(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
