import { createMemoryCounterStore, type CounterStore } from '../abuse/counter-store.ts';
import { createMemoryLockoutStore, type LockoutStore } from '../abuse/lockout-store.ts';

/** A revocation as every process hears of it: the sessions, and when they were revoked. */
export interface RevocationEvent {
  sessionIds: string[];
  revokedAt: number;
}

/**
 * Tells the other processes (workers, instances) of revocations made here, so each refuses the
 * sessions' access tokens at once. Best effort: the database stays the source of truth and every
 * process also re-reads it periodically, so a lost message only delays a refusal, never loses it.
 */
export interface RevocationBus {
  /** Never throws; a failure to tell the others is logged and left to the periodic sync. */
  publish(event: RevocationEvent): void;
  /** Revocations made by other processes (a process does not hear its own). */
  subscribe(listener: (event: RevocationEvent) => void): void;
}

/** What the processes of a deployment share, wherever it lives (memory, the cluster primary, Redis). */
export interface SharedState {
  /** `memory` (one process), `cluster` (workers through their primary) or `redis`. */
  readonly kind: 'memory' | 'cluster' | 'redis';
  counters: CounterStore;
  lockouts: LockoutStore;
  revocations: RevocationBus;
  /** For /readyz: each shared dependency and its state, e.g. { redis: 'up' } or { redis: 'down' }. */
  status(): Record<string, 'up' | 'down'>;
  close(): Promise<void>;
}

/** The state of a single process: nothing to tell anyone. */
export function createMemorySharedState(): SharedState {
  return {
    kind: 'memory',
    counters: createMemoryCounterStore(),
    lockouts: createMemoryLockoutStore(),
    revocations: { publish() {}, subscribe() {} },
    status: () => ({}),
    close: async () => {},
  };
}
