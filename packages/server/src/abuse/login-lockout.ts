import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { LockoutPolicy, LockoutStore } from './lockout-store.ts';

const FIRST_LOCK_SECONDS = 60;
const MAX_LOCK_SECONDS = 3600;
/** A run of failures is forgotten after a day without another one. */
const MEMORY_SECONDS = 24 * 3600;
const ACCOUNT_WINDOW_SECONDS = 3600;

/** A reserved attempt: settle it with succeeded() once the password was right; a failure needs nothing more. */
export interface LoginAttempt {
  /**
   * Set when this attempt reached a limit: if it fails, that budget is locked for `seconds` (an audit
   * `user.lockout`). 'account' (every network) wins over 'network' (this client's own) when both are.
   */
  lockoutIfFailed?: { budget: 'network' | 'account'; seconds: number };
  succeeded(): Promise<void>;
  /** The password was never checked (hashing refused it, the client left): the attempt does not count. */
  abandoned(): Promise<void>;
}

export interface LoginLockout {
  /**
   * Counts a login attempt on the account from this client network before its password is
   * checked; throws rate_limited (429 with Retry-After) when either budget is spent.
   */
  reserve(emailNormalized: string, clientNetwork: string): Promise<LoginAttempt>;
}

/**
 * Two budgets per account, keyed by normalised email whether or not the account exists
 * (so the lockout itself does not reveal which emails are registered):
 * - per account and client network: after maxFailures consecutive failures that client is
 *   locked out of the account for 1 minute, doubling per further failure up to an hour;
 * - per account, every client together: at most maxFailuresPerAccount failures in an hour.
 * One network can then lock a victim out only for itself; locking the account for everyone
 * takes maxFailuresPerAccount failures every hour from at least
 * maxFailuresPerAccount / maxFailures networks. A success resets both.
 */
export function createLoginLockout(deps: {
  store: LockoutStore;
  clock: Clock;
  maxFailures: number;
  maxFailuresPerAccount: number;
  /** Key prefix, so other password checks (e.g. password change) get budgets of their own. */
  scope?: string;
}): LoginLockout {
  const scope = deps.scope ?? 'login';
  const perClient: LockoutPolicy = {
    kind: 'doubling',
    maxFailures: deps.maxFailures,
    firstLockSeconds: FIRST_LOCK_SECONDS,
    maxLockSeconds: MAX_LOCK_SECONDS,
    memorySeconds: MEMORY_SECONDS,
  };
  const perAccount: LockoutPolicy = { kind: 'window', maxFailures: deps.maxFailuresPerAccount, windowSeconds: ACCOUNT_WINDOW_SECONDS };

  return {
    async reserve(account, network) {
      const now = deps.clock.nowSeconds();
      // Distinct prefixes and a separator no email or address can hold: no key can pose as another.
      const clientKey = `${scope}:client:${account}\u0000${network}`;
      const accountKey = `${scope}:account:${account}`;
      // The client's own budget first: attempts it refuses never reach the account-wide count,
      // so one network hammering a victim cannot exhaust the budget every other network shares.
      const byClient = await deps.store.reserve(clientKey, perClient, now);
      if (!byClient.allowed) throw locked(byClient.retryAfterSeconds);
      const byAccount = await deps.store.reserve(accountKey, perAccount, now);
      if (!byAccount.allowed) {
        // Refused by the account-wide lock: not this client's failure (the owner waiting it out must not lock themselves).
        await deps.store.release(clientKey, perClient, now);
        throw locked(byAccount.retryAfterSeconds);
      }
      const lockSeconds = byAccount.lockSecondsIfFailed ?? byClient.lockSecondsIfFailed;
      return {
        ...(lockSeconds !== undefined ? { lockoutIfFailed: { budget: byAccount.lockSecondsIfFailed !== undefined ? 'account' : 'network', seconds: lockSeconds } } : {}),
        async succeeded() {
          await Promise.all([deps.store.reset(clientKey), deps.store.reset(accountKey)]);
        },
        async abandoned() {
          const releasedAt = deps.clock.nowSeconds();
          await Promise.all([deps.store.release(clientKey, perClient, releasedAt), deps.store.release(accountKey, perAccount, releasedAt)]);
        },
      };
    },
  };
}

function locked(retryAfterSeconds: number): AppError {
  return new AppError('rate_limited', 'account temporarily locked', { retryAfterSeconds: Math.max(1, retryAfterSeconds) });
}

/**
 * Runs what follows a reservation. If it fails before any password check reached a hashing
 * thread (queue full, client gone while queued, database down), the attempt was never
 * evaluated and gives its slot back, so a login storm or an outage does not lock out the
 * users caught in it. Once a check has started, the attempt counts whatever happens next: a
 * client that hangs up mid-check must not get its guess for free.
 */
export async function checkReserved<T>(attempt: LoginAttempt, check: (onStarted: () => void) => Promise<T>): Promise<T> {
  let started = false;
  try {
    return await check(() => {
      started = true;
    });
  } catch (error) {
    if (!started) await attempt.abandoned();
    throw error;
  }
}
