import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { CounterStore } from './counter-store.ts';

const WINDOW_SECONDS = 60;

export interface ClientRateLimiter {
  /** Counts one request of this client; throws rate_limited past its budget. */
  consume(clientId: string): Promise<void>;
}

/**
 * A per-client budget in fixed one-minute windows, in the shared counters, so every worker and
 * instance draws on one budget. Keys cannot meet the per-address ones: client ids hold no colon.
 */
export function createClientRateLimiter(deps: { store: CounterStore; clock: Clock; scope: string; limitPerMinute: number }): ClientRateLimiter {
  return {
    async consume(clientId) {
      const now = deps.clock.nowSeconds();
      const { count, resetAt } = await deps.store.increment(`${deps.scope}:${clientId}`, WINDOW_SECONDS, now);
      if (count > deps.limitPerMinute) {
        throw new AppError('rate_limited', `too many ${deps.scope} requests from this client`, { retryAfterSeconds: Math.max(1, resetAt - now) });
      }
    },
  };
}
