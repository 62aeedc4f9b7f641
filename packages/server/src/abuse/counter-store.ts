/**
 * Counters with expiry for rate limits and lockouts. In memory for one instance;
 * the scale-out issue adds a Redis implementation of the same interface.
 */
export interface CounterStore {
  /** Adds one to key's counter in a window that starts on the first hit; returns the count and when the window ends. */
  increment(key: string, windowSeconds: number, now: number): Promise<{ count: number; resetAt: number }>;
  get<T>(key: string, now: number): Promise<T | undefined>;
  set<T>(key: string, value: T, expiresAt: number): Promise<void>;
  delete(key: string): Promise<void>;
}

interface Entry {
  value: unknown;
  expiresAt: number;
}

/** Bounded: past maxKeys the oldest entries go first, so a flood of addresses cannot exhaust memory. */
export function createMemoryCounterStore(options: { maxKeys: number } = { maxKeys: 100_000 }): CounterStore {
  const entries = new Map<string, Entry>();

  function live(key: string, now: number): Entry | undefined {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= now) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  function put(key: string, entry: Entry): void {
    entries.delete(key); // re-insert at the end: Map order doubles as age order
    entries.set(key, entry);
    if (entries.size > options.maxKeys) {
      const oldest = entries.keys().next().value;
      if (oldest !== undefined) entries.delete(oldest);
    }
  }

  return {
    async increment(key, windowSeconds, now) {
      const entry = live(key, now);
      if (!entry) {
        put(key, { value: 1, expiresAt: now + windowSeconds });
        return { count: 1, resetAt: now + windowSeconds };
      }
      entry.value = (entry.value as number) + 1;
      return { count: entry.value as number, resetAt: entry.expiresAt };
    },
    async get<T>(key: string, now: number) {
      return live(key, now)?.value as T | undefined;
    },
    async set(key, value, expiresAt) {
      put(key, { value, expiresAt });
    },
    async delete(key) {
      entries.delete(key);
    },
  };
}
