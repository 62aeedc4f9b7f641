import type { SharedStateLog } from './index.ts';
import type { SharedState } from './state.ts';

/** PLACEHOLDER until the Redis implementation lands: uses the fallback as is. */
export async function createRedisSharedState(options: { url: string; keyPrefix: string; fallback: SharedState; log: SharedStateLog }): Promise<SharedState> {
  options.log('warn', {}, 'REDIS_URL is set, but this build keeps counters per process');
  return options.fallback;
}
