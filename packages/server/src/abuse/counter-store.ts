/**
 * Fixed-window counters for the per-client request budget. In memory for one process;
 * the scale-out issue adds a shared implementation of the same interface.
 */
export interface CounterStore {
  /** Adds one to key's counter in a window that starts on the first hit; returns the count and when the window ends. */
  increment(key: string, windowSeconds: number, now: number): Promise<{ count: number; resetAt: number }>;
}

/**
 * Bounded: past maxKeys the oldest windows go first, so a flood of addresses cannot exhaust memory.
 * Losing a window only hands a client a fresh minute of budget; lockouts live in their own store.
 */
export function createMemoryCounterStore(options: { maxKeys: number } = { maxKeys: 100_000 }): CounterStore {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return {
    async increment(key, windowSeconds, now) {
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        windows.delete(key); // re-insert at the end: Map order doubles as age order
        window = { count: 0, resetAt: now + windowSeconds };
        windows.set(key, window);
        if (windows.size > options.maxKeys) windows.delete(windows.keys().next().value as string);
      }
      window.count += 1;
      return { count: window.count, resetAt: window.resetAt };
    },
  };
}
