/**
 * Failure counters and lockouts, kept apart from the request budget so that no amount of
 * traffic on other keys can flush a lockout.
 *
 * An attempt is reserved (counted as a failure) before its password is checked, in one
 * atomic step, and the count is forgotten when the attempt succeeds: concurrent guesses
 * cannot outrun the limit, because the limit is decided before any of them is evaluated.
 */
export type LockoutPolicy =
  /** After maxFailures consecutive failures, lock for firstLockSeconds, doubling per further failure up to maxLockSeconds. */
  | { kind: 'doubling'; maxFailures: number; firstLockSeconds: number; maxLockSeconds: number; memorySeconds: number }
  /** At most maxFailures failures in a fixed window opened by the first one; then locked until the window ends. */
  | { kind: 'window'; maxFailures: number; windowSeconds: number };

export type Reservation = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface LockoutStore {
  /** Refuses while the key is locked; otherwise counts this attempt as a failure now (locking the key if it reaches the limit). */
  reserve(key: string, policy: LockoutPolicy, now: number): Promise<Reservation>;
  /** The attempt was never evaluated (hashing refused it, the client left): give its slot back. */
  release(key: string, policy: LockoutPolicy, now: number): Promise<void>;
  /** The attempt succeeded: forget the key's failures and any lock. */
  reset(key: string): Promise<void>;
}

interface Entry {
  failures: number;
  lockedUntil: number;
  /** When the entry may be forgotten; never before lockedUntil. */
  expiresAt: number;
}

/** 60 s, 120 s, 240 s … capped: the lock after the n-th failure beyond the limit. */
export function doublingLockSeconds(failuresBeyondLimit: number, firstLockSeconds: number, maxLockSeconds: number): number {
  return Math.min(maxLockSeconds, firstLockSeconds * 2 ** Math.min(Math.max(failuresBeyondLimit, 0), 30));
}

/**
 * The state change of one reservation, shared by every implementation (a Redis script
 * does the same arithmetic). Returns the new entry and the verdict.
 */
export function applyReservation(entry: Entry | undefined, policy: LockoutPolicy, now: number): { entry: Entry; reservation: Reservation } {
  const live = entry && entry.expiresAt > now ? entry : undefined;
  if (live && live.lockedUntil > now) {
    return { entry: live, reservation: { allowed: false, retryAfterSeconds: live.lockedUntil - now } };
  }
  if (policy.kind === 'doubling') {
    const failures = (live?.failures ?? 0) + 1;
    const lockedUntil =
      failures >= policy.maxFailures ? now + doublingLockSeconds(failures - policy.maxFailures, policy.firstLockSeconds, policy.maxLockSeconds) : 0;
    return { entry: { failures, lockedUntil, expiresAt: Math.max(now + policy.memorySeconds, lockedUntil) }, reservation: { allowed: true } };
  }
  const windowEnd = live?.expiresAt ?? now + policy.windowSeconds;
  const failures = (live?.failures ?? 0) + 1;
  return {
    entry: { failures, lockedUntil: failures >= policy.maxFailures ? windowEnd : 0, expiresAt: windowEnd },
    reservation: { allowed: true },
  };
}

/**
 * Undoes one reservation. The reservation was allowed, so any earlier lock had ended; a lock
 * set since then by reaching the limit no longer holds once the count is below the limit.
 */
export function applyRelease(entry: Entry | undefined, policy: LockoutPolicy, now: number): Entry | undefined {
  if (!entry || entry.expiresAt <= now || entry.failures === 0) return entry;
  const failures = entry.failures - 1;
  return { ...entry, failures, lockedUntil: failures >= policy.maxFailures ? entry.lockedUntil : 0 };
}

export interface MemoryLockoutStoreOptions {
  /** Keys counting failures below their limit; past it the oldest such count is forgotten. */
  maxCountingKeys: number;
  /** Locked keys; these leave only by expiry. Past the bound, attempts on untracked keys are refused. */
  maxLockedKeys: number;
}

/**
 * In memory, for one process. Two maps: locked keys are never evicted (only expiry removes
 * them), so a flood of new keys cannot free a victim's lockout or an attacker's own. Counts
 * below the limit are bounded FIFO: an evicted count loses at most maxFailures - 1 failures
 * of one key, and the per-account budget still caps guesses on that account.
 */
export function createMemoryLockoutStore(
  // About 300 bytes per key (measured: 1 M locked keys took 303 MB of heap), so at most ~105 MB.
  options: MemoryLockoutStoreOptions = { maxCountingKeys: 100_000, maxLockedKeys: 250_000 },
): LockoutStore {
  const counting = new Map<string, Entry>();
  const locked = new Map<string, Entry>();
  let nextSweepAt = 0;

  function sweepExpiredLocks(now: number): void {
    for (const [key, entry] of locked) if (entry.expiresAt <= now) locked.delete(key);
    nextSweepAt = now + 60;
  }

  return {
    async reserve(key, policy, now) {
      const previous = locked.get(key) ?? counting.get(key);
      if (!previous && locked.size >= options.maxLockedKeys) {
        if (now >= nextSweepAt) sweepExpiredLocks(now);
        // Full of live lockouts: refuse what cannot be tracked rather than evaluate it unthrottled.
        if (locked.size >= options.maxLockedKeys) return { allowed: false, retryAfterSeconds: 60 };
      }
      const { entry, reservation } = applyReservation(previous, policy, now);
      counting.delete(key);
      locked.delete(key);
      if (entry.lockedUntil > now) {
        locked.set(key, entry);
      } else {
        counting.set(key, entry); // at the end: Map order doubles as age order
        if (counting.size > options.maxCountingKeys) counting.delete(counting.keys().next().value as string);
      }
      return reservation;
    },
    async release(key, policy, now) {
      const previous = locked.get(key) ?? counting.get(key);
      const entry = applyRelease(previous, policy, now);
      if (!entry || entry === previous) return;
      locked.delete(key);
      counting.delete(key);
      (entry.lockedUntil > now ? locked : counting).set(key, entry);
    },
    async reset(key) {
      counting.delete(key);
      locked.delete(key);
    },
  };
}
