/** The one source of time. Domain code takes a Clock so tests can freeze or move time. */
export interface Clock {
  now(): Date;
  /** Integer epoch seconds, the unit every stored timestamp uses. */
  nowSeconds(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  nowSeconds: () => Math.floor(Date.now() / 1000),
};

export interface ManualClock extends Clock {
  set(date: Date): void;
  advanceSeconds(seconds: number): void;
}

/** A clock that only moves when told to; for tests. */
export function fixedClock(start: Date = new Date('2026-01-01T00:00:00Z')): ManualClock {
  let current = start.getTime();
  return {
    now: () => new Date(current),
    nowSeconds: () => Math.floor(current / 1000),
    set: (date) => {
      current = date.getTime();
    },
    advanceSeconds: (seconds) => {
      current += seconds * 1000;
    },
  };
}
