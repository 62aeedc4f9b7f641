import type { Config } from '../config.ts';
import { createClusterSharedState, isClusterWorker } from './cluster-ipc.ts';
import { createRedisSharedState } from './redis.ts';
import { createMemorySharedState, type SharedState } from './state.ts';

export type { RevocationBus, RevocationEvent, SharedState } from './state.ts';

/** A warning the shared state wants an operator to see (Redis down, falling back…); never holds a secret. */
export type SharedStateLog = (level: 'warn' | 'error' | 'info', fields: Record<string, unknown>, message: string) => void;

/**
 * Picks where counters, lockouts and revocation news live: Redis when REDIS_URL is set (shared by
 * every worker and instance), else the cluster primary when this process is one of its workers,
 * else this process's memory. The first two fall back to the last while their medium is away.
 */
export async function createSharedState(config: Readonly<Config>, log: SharedStateLog): Promise<SharedState> {
  const local = (): SharedState => (isClusterWorker() ? createClusterSharedState(log) : createMemorySharedState());
  if (config.redisUrl) return createRedisSharedState({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, fallback: local(), log });
  return local();
}
