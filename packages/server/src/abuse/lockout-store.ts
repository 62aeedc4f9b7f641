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

export type Reservation =
  /** lockSecondsIfFailed: this attempt reached the limit, so if it fails the key is locked for that long (the audit log's lockout). */
  | { allowed: true; lockSecondsIfFailed?: number }
  | { allowed: false; retryAfterSeconds: number };

export interface LockoutStore {
  /** Refuses while the key is locked; otherwise counts this attempt as a failure now (locking the key if it reaches the limit). */
  reserve(key: string, policy: LockoutPolicy, now: number): Promise<Reservation>;
  /**
   * The attempt was never evaluated (hashing refused it, the client left): give its slot back.
   * lockSetUntil: when the attempt's reservation reached the limit, the end of the lock it set
   * (reservation time + lockSecondsIfFailed), so that this lock, and no later one, goes with it.
   */
  release(key: string, policy: LockoutPolicy, now: number, lockSetUntil?: number): Promise<void>;
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
    return { entry: { failures, lockedUntil, expiresAt: Math.max(now + policy.memorySeconds, lockedUntil) }, reservation: allowed(lockedUntil, now) };
  }
  const windowEnd = live?.expiresAt ?? now + policy.windowSeconds;
  const failures = (live?.failures ?? 0) + 1;
  const lockedUntil = failures >= policy.maxFailures ? windowEnd : 0;
  return { entry: { failures, lockedUntil, expiresAt: windowEnd }, reservation: allowed(lockedUntil, now) };
}

function allowed(lockedUntil: number, now: number): Reservation {
  return lockedUntil > now ? { allowed: true, lockSecondsIfFailed: lockedUntil - now } : { allowed: true };
}

/**
 * Undoes one reservation. The lock the key holds goes too when the count falls below the limit (no
 * lock holds there), or when it is the very lock this reservation set (lockSetUntil): keeping that one
 * would lock a streak twice as long for an attempt no one evaluated. A lock set by a later reservation
 * stays: an attempt reserved long ago (before a whole lock came and went) and given back only now must
 * not lift the lock that a failure evaluated since then earned. Each lock a key sets ends later than
 * the one before, so its end names the reservation that set it.
 */
export function applyRelease(entry: Entry | undefined, policy: LockoutPolicy, now: number, lockSetUntil?: number): Entry | undefined {
  if (!entry || entry.expiresAt <= now) return undefined;
  const failures = Math.max(0, entry.failures - 1);
  const lockGoes = failures < policy.maxFailures || (lockSetUntil !== undefined && entry.lockedUntil === lockSetUntil);
  return { ...entry, failures, lockedUntil: lockGoes ? 0 : entry.lockedUntil };
}

export interface MemoryLockoutStoreOptions {
  /** Keys counting failures below their limit (or past a lock that has ended); past it the least costly are forgotten. */
  maxCountingKeys: number;
  /** Keys locked right now; these leave only when the lock ends. Past the bound, attempts on untracked keys are refused. */
  maxLockedKeys: number;
}

/**
 * In memory, for one process. Live locks sit in a map of their own that nothing evicts, so a
 * flood of new keys cannot free a victim's lockout or an attacker's own. Counts below the
 * limit are bounded; under pressure the keys with at most one failure go first, oldest first,
 * and only then older counts. A flood of fresh keys (one failure each, or none once given
 * back) therefore pushes out only its own kind, never a count that took real, hashed failures
 * to build such as an account's hourly budget: that takes two hashed failures per key.
 */
export function createMemoryLockoutStore(
  // About 300 bytes per key (measured: 1 M locked keys took 303 MB of heap), so at most ~105 MB.
  options: MemoryLockoutStoreOptions = { maxCountingKeys: 100_000, maxLockedKeys: 250_000 },
): LockoutStore {
  const fresh = new Map<string, Entry>(); // one failure; Map order doubles as age order
  const seasoned = new Map<string, Entry>(); // two or more, not locked now
  const locked = new Map<string, Entry>(); // lockedUntil > now
  let nextSweepAt = 0;

  function find(key: string): Entry | undefined {
    return locked.get(key) ?? seasoned.get(key) ?? fresh.get(key);
  }

  function forget(key: string): void {
    fresh.delete(key);
    seasoned.delete(key);
    locked.delete(key);
  }

  function put(key: string, entry: Entry, now: number): void {
    forget(key);
    if (entry.lockedUntil > now) {
      locked.set(key, entry);
      return;
    }
    (entry.failures <= 1 ? fresh : seasoned).set(key, entry);
    if (fresh.size + seasoned.size > options.maxCountingKeys) {
      // The oldest single-failure key, unless the one just counted is the only one: then the oldest count.
      const oldestFresh = fresh.keys().next().value as string | undefined;
      if (oldestFresh !== undefined && oldestFresh !== key) fresh.delete(oldestFresh);
      else seasoned.delete(seasoned.keys().next().value as string);
    }
  }

  // Locks that have ended (or expired) move out of the unevictable map; at most once a second.
  function sweepEndedLocks(now: number): void {
    if (now < nextSweepAt) return;
    nextSweepAt = now + 1;
    for (const [key, entry] of locked) {
      if (entry.lockedUntil > now) continue;
      locked.delete(key);
      if (entry.expiresAt > now) put(key, entry, now);
    }
  }

  return {
    async reserve(key, policy, now) {
      let previous = find(key);
      if (!previous && locked.size >= options.maxLockedKeys) {
        sweepEndedLocks(now);
        // Full of live lockouts: refuse what cannot be tracked rather than evaluate it unthrottled.
        if (locked.size >= options.maxLockedKeys) return { allowed: false, retryAfterSeconds: 60 };
        previous = find(key);
      }
      const { entry, reservation } = applyReservation(previous, policy, now);
      if (entry !== previous) put(key, entry, now); // a refusal changes nothing
      return reservation;
    },
    async release(key, policy, now, lockSetUntil) {
      // A count given back to zero stays among the single-failure keys, first to go under pressure:
      // an emptied slot would let the next newcomer push out a real count instead.
      const entry = applyRelease(find(key), policy, now, lockSetUntil);
      if (entry) put(key, entry, now);
    },
    async reset(key) {
      forget(key);
    },
  };
}
