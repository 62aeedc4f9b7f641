import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { LockoutPolicy, LockoutStore, Reservation } from './lockout-store.ts';

const FIRST_LOCK_SECONDS = 60;
const MAX_LOCK_SECONDS = 3600;
/** A run of failures is forgotten after a day without another one. */
const MEMORY_SECONDS = 24 * 3600;
const ACCOUNT_WINDOW_SECONDS = 3600;

/**
 * The second step of a login (POST /login/mfa): whoever reaches it has the password. Ten wrong codes in a
 * row from anywhere lock it for 15 minutes, doubling per further wrong code up to a day; only a right code
 * or a password change from a session opened with a second factor clears the run, and it is kept for 30
 * days. Codes checked behind a session count on the same run (scope mfa shares it). So a guesser with the
 * password and many networks gets about 30 tries in the first day and 1 a day after, not 100 an hour:
 * with 3 codes valid at a time out of 10^6, about 10^-4 a month instead of 20 %.
 */
export const SECOND_STEP_STREAK: StreakPolicy = Object.freeze({ maxFailures: 10, firstLockSeconds: 900, maxLockSeconds: 86_400, memorySeconds: 30 * 86_400 });

/** A reserved attempt: settle it with succeeded() once the password was right; a failure needs nothing more. */
export interface LoginAttempt {
  /**
   * Set when this attempt reached a limit: if it fails, that budget is locked for `seconds` (an audit
   * `user.lockout`). 'account' (every network) wins over 'network' (this client's own) when both are.
   */
  lockoutIfFailed?: { budget: 'network' | 'account' | 'streak'; seconds: number };
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
  /**
   * Forgets the account's budgets shared by every network (the hourly count and the streak), as a
   * success would: for when the secret being guessed against was replaced (a password reset or change).
   */
  forget(account: string): Promise<void>;
}

/**
 * A third budget: consecutive failures on the account from every network together, forgotten only by a
 * success (or forget()), never by time alone within memorySeconds. After maxFailures in a row the account
 * is locked for firstLockSeconds, doubling with each further failure up to maxLockSeconds. Where the
 * hourly budget lets a patient guesser from many networks try maxFailuresPerAccount every hour for ever,
 * this one leaves them a handful of tries a day.
 */
export interface StreakPolicy {
  maxFailures: number;
  firstLockSeconds: number;
  maxLockSeconds: number;
  memorySeconds: number;
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
  streak?: StreakPolicy;
  /** The streak's key prefix when it is shared with another lockout (every check of one secret on one run); default scope. */
  streakScope?: string;
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
  const streak: LockoutPolicy | undefined = deps.streak ? { kind: 'doubling', ...deps.streak } : undefined;
  const accountKeyOf = (account: string) => `${scope}:account:${account}`;
  const streakKeyOf = (account: string) => `${deps.streakScope ?? scope}:streak:${account}`;

  return {
    async reserve(account, network) {
      const now = deps.clock.nowSeconds();
      // Distinct prefixes and a separator no email or address can hold: no key can pose as another.
      const clientKey = `${scope}:client:${account}\u0000${network}`;
      const accountKey = accountKeyOf(account);
      const streakKey = streakKeyOf(account);
      // The client's own budget first: attempts it refuses never reach the account-wide count,
      // so one network hammering a victim cannot exhaust the budget every other network shares.
      const byClient = await deps.store.reserve(clientKey, perClient, now);
      if (!byClient.allowed) throw locked(byClient.retryAfterSeconds);
      // A given-back attempt takes back the lock its own reservation set, and only that one.
      const lockSetBy = (reservation: Reservation): number | undefined =>
        reservation.allowed && reservation.lockSecondsIfFailed !== undefined ? now + reservation.lockSecondsIfFailed : undefined;
      const byAccount = await deps.store.reserve(accountKey, perAccount, now);
      if (!byAccount.allowed) {
        // Refused by the account-wide lock: not this client's failure (the owner waiting it out must not lock themselves).
        await deps.store.release(clientKey, perClient, now, lockSetBy(byClient));
        throw locked(byAccount.retryAfterSeconds);
      }
      const byStreak = streak ? await deps.store.reserve(streakKey, streak, now) : undefined;
      if (byStreak && !byStreak.allowed) {
        await Promise.all([deps.store.release(clientKey, perClient, now, lockSetBy(byClient)), deps.store.release(accountKey, perAccount, now, lockSetBy(byAccount))]);
        throw locked(byStreak.retryAfterSeconds);
      }
      // The widest budget this attempt would lock, if it fails: the streak, then the account, then the network.
      const streakLock = byStreak?.allowed ? byStreak.lockSecondsIfFailed : undefined;
      const lockoutIfFailed: LoginAttempt['lockoutIfFailed'] =
        streakLock !== undefined
          ? { budget: 'streak', seconds: streakLock }
          : byAccount.lockSecondsIfFailed !== undefined
            ? { budget: 'account', seconds: byAccount.lockSecondsIfFailed }
            : byClient.lockSecondsIfFailed !== undefined
              ? { budget: 'network', seconds: byClient.lockSecondsIfFailed }
              : undefined;
      return {
        ...(lockoutIfFailed ? { lockoutIfFailed } : {}),
        async succeeded() {
          await Promise.all([deps.store.reset(clientKey), deps.store.reset(accountKey), ...(streak ? [deps.store.reset(streakKey)] : [])]);
        },
        async abandoned() {
          const releasedAt = deps.clock.nowSeconds();
          await Promise.all([
            deps.store.release(clientKey, perClient, releasedAt, lockSetBy(byClient)),
            deps.store.release(accountKey, perAccount, releasedAt, lockSetBy(byAccount)),
            ...(streak && byStreak ? [deps.store.release(streakKey, streak, releasedAt, lockSetBy(byStreak))] : []),
          ]);
        },
      };
    },
    async forget(account) {
      await Promise.all([deps.store.reset(accountKeyOf(account)), ...(streak ? [deps.store.reset(streakKeyOf(account))] : [])]);
    },
  };
}

/** The audit reason of a lockout: which budget it locked. */
export function lockoutReason(budget: NonNullable<LoginAttempt['lockoutIfFailed']>['budget']): 'network_limit' | 'account_limit' | 'streak_limit' {
  return budget === 'streak' ? 'streak_limit' : budget === 'account' ? 'account_limit' : 'network_limit';
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
