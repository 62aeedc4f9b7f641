import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { CounterStore } from './counter-store.ts';

const FIRST_LOCK_SECONDS = 60;
const MAX_LOCK_SECONDS = 3600;
/** A run of failures is forgotten after a day without another one. */
const MEMORY_SECONDS = 24 * 3600;

interface LockoutState {
  consecutiveFailures: number;
  lockedUntil: number;
}

export interface LoginLockout {
  /** Throws rate_limited while the account is locked, before any password is checked. */
  assertNotLocked(emailNormalized: string): Promise<void>;
  recordFailure(emailNormalized: string): Promise<void>;
  recordSuccess(emailNormalized: string): Promise<void>;
}

/**
 * Per-account lockout keyed by normalised email, whether or not the account exists,
 * so the lockout itself does not reveal which emails are registered. After
 * maxFailures consecutive failures each further failure locks the account for a
 * window that doubles from one minute up to an hour; a success resets everything.
 */
export function createLoginLockout(deps: { store: CounterStore; clock: Clock; maxFailures: number }): LoginLockout {
  const key = (email: string) => `login:${email}`;

  return {
    async assertNotLocked(email) {
      const now = deps.clock.nowSeconds();
      const state = await deps.store.get<LockoutState>(key(email), now);
      if (state && state.lockedUntil > now) {
        throw new AppError('rate_limited', 'account temporarily locked', { retryAfterSeconds: state.lockedUntil - now });
      }
    },
    async recordFailure(email) {
      const now = deps.clock.nowSeconds();
      const previous = await deps.store.get<LockoutState>(key(email), now);
      const consecutiveFailures = (previous?.consecutiveFailures ?? 0) + 1;
      const excess = consecutiveFailures - deps.maxFailures;
      const lockedUntil = excess >= 0 ? now + lockSeconds(excess) : 0;
      await deps.store.set<LockoutState>(key(email), { consecutiveFailures, lockedUntil }, Math.max(now + MEMORY_SECONDS, lockedUntil));
    },
    async recordSuccess(email) {
      await deps.store.delete(key(email));
    },
  };
}

/** 60 s, 120 s, 240 s … capped at an hour. */
export function lockSeconds(failuresBeyondLimit: number): number {
  return Math.min(MAX_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** Math.min(failuresBeyondLimit, 16));
}
