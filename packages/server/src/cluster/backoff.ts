/**
 * How long the primary waits before replacing a worker that died: 1 s, doubling per death up
 * to 30 s, so a worker that crashes at start does not spin a core; back to 1 s once a worker
 * has lived long enough to count as healthy.
 */
export interface RestartBackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A worker that lived this long resets the schedule: its death is news, not a loop. */
  stableAfterMs: number;
}

export const DEFAULT_RESTART_BACKOFF: Readonly<RestartBackoffOptions> = Object.freeze({ initialMs: 1_000, maxMs: 30_000, stableAfterMs: 60_000 });

export interface RestartBackoff {
  /** The delay before the next fork, given how long the worker that just died had lived. */
  nextDelayMs(lifetimeMs: number): number;
}

export function createRestartBackoff(options: RestartBackoffOptions = DEFAULT_RESTART_BACKOFF): RestartBackoff {
  // Deaths in a row, each within stableAfterMs of its fork; a long-lived worker's death starts a new run.
  let deathsInRow = 0;
  return {
    nextDelayMs(lifetimeMs) {
      deathsInRow = lifetimeMs >= options.stableAfterMs ? 1 : deathsInRow + 1;
      return Math.min(options.maxMs, options.initialMs * 2 ** Math.min(deathsInRow - 1, 30));
    },
  };
}
