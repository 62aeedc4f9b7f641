import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { CounterStore } from './counter-store.ts';

const WINDOW_SECONDS = 60;

export interface IpRateLimiter {
  /** Counts one request of this client network against the shared budget; throws rate_limited past it. */
  consume(clientNetwork: string): Promise<void>;
}

/**
 * One budget per client IP shared by /signup, /login and /token/refresh, in fixed
 * one-minute windows: a client cannot multiply its budget by switching routes.
 */
export function createIpRateLimiter(deps: { store: CounterStore; clock: Clock; limitPerMinute: number }): IpRateLimiter {
  return {
    async consume(clientNetwork) {
      const now = deps.clock.nowSeconds();
      const { count, resetAt } = await deps.store.increment(`ip:${clientNetwork}`, WINDOW_SECONDS, now);
      if (count > deps.limitPerMinute) {
        throw new AppError('rate_limited', 'too many requests from this address', { retryAfterSeconds: Math.max(1, resetAt - now) });
      }
    },
  };
}
