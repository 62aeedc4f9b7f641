import cluster from 'node:cluster';
import { createMemoryCounterStore, type CounterStore } from '../abuse/counter-store.ts';
import { createMemoryLockoutStore, type LockoutPolicy, type LockoutStore, type Reservation } from '../abuse/lockout-store.ts';
import type { SharedStateLog } from './index.ts';
import type { RevocationEvent, SharedState } from './state.ts';

/**
 * Workers of one cluster share counters, lockouts and revocation news through their primary:
 * each operation is one IPC message to the primary, which applies it to its own memory stores.
 * The primary's single thread runs one operation at a time, so each is atomic across workers.
 */

/** Marks our messages apart from anything else on the channel. */
export const IPC_TAG = 'gatehouse:shared';

export type SharedOperation =
  | { op: 'increment'; key: string; windowSeconds: number; now: number }
  | { op: 'reserve'; key: string; policy: LockoutPolicy; now: number }
  | { op: 'release'; key: string; policy: LockoutPolicy; now: number; lockSetUntil?: number }
  | { op: 'reset'; key: string };

export type WorkerToPrimary =
  | { tag: typeof IPC_TAG; kind: 'request'; id: number; operation: SharedOperation }
  | { tag: typeof IPC_TAG; kind: 'revocation'; event: RevocationEvent };

export type PrimaryToWorker =
  | { tag: typeof IPC_TAG; kind: 'reply'; id: number; result?: unknown; error?: string }
  | { tag: typeof IPC_TAG; kind: 'revocation'; event: RevocationEvent };

export function isSharedMessage(message: unknown): message is { tag: typeof IPC_TAG; kind: string } {
  return typeof message === 'object' && message !== null && (message as { tag?: unknown }).tag === IPC_TAG;
}

/** The channel to the primary: `process` in a worker; anything with the same shape in tests. */
export interface PrimaryChannel {
  readonly connected: boolean;
  send(message: WorkerToPrimary, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface ClusterSharedStateOptions {
  channel: PrimaryChannel;
  /** An operation the primary has not answered by then runs on this worker's own memory instead. */
  timeoutMs: number;
  /** Operations awaiting an answer; past it, new ones run locally rather than queue without bound. */
  maxPending: number;
}

/** True in a node:cluster worker that its primary can hear. */
export function isClusterWorker(): boolean {
  return cluster.isWorker && typeof process.send === 'function';
}

export function createClusterSharedState(log: SharedStateLog, options?: Partial<ClusterSharedStateOptions>): SharedState {
  const channel = options?.channel ?? (process as unknown as PrimaryChannel);
  const timeoutMs = options?.timeoutMs ?? 1_000;
  const maxPending = options?.maxPending ?? 10_000;

  // Used only while the primary is unreachable: per worker, as if it ran alone.
  const localCounters = createMemoryCounterStore();
  const localLockouts = createMemoryLockoutStore();
  const pending = new Map<number, { settle: (reply: PrimaryToWorker & { kind: 'reply' }) => void }>();
  const listeners: Array<(event: RevocationEvent) => void> = [];
  let nextId = 1;
  let degraded = false;

  function degrade(reason: string): void {
    if (degraded) return;
    degraded = true;
    log('warn', { reason }, 'the cluster primary does not answer; counters and lockouts are per worker until it does');
  }

  function recover(): void {
    if (!degraded) return;
    degraded = false;
    log('info', {}, 'the cluster primary answers again; counters and lockouts are shared across workers');
  }

  function call<T>(operation: SharedOperation, local: () => Promise<T>): Promise<T> {
    if (!channel.connected) {
      degrade('disconnected');
      return local();
    }
    if (pending.size >= maxPending) {
      degrade('too many pending operations');
      return local();
    }
    const id = nextId++;
    return new Promise<T>((resolve) => {
      const fallBack = (reason: string) => {
        if (!pending.delete(id)) return; // answered already
        clearTimeout(timer);
        degrade(reason);
        resolve(local());
      };
      const timer = setTimeout(() => fallBack('timeout'), timeoutMs);
      pending.set(id, {
        settle(reply) {
          pending.delete(id);
          clearTimeout(timer);
          if (reply.error !== undefined) {
            degrade(reply.error);
            resolve(local());
            return;
          }
          recover();
          resolve(reply.result as T);
        },
      });
      try {
        channel.send({ tag: IPC_TAG, kind: 'request', id, operation }, (error) => {
          if (error) fallBack('send failed');
        });
      } catch {
        fallBack('send failed');
      }
    });
  }

  const onMessage = (message: unknown) => {
    if (!isSharedMessage(message)) return;
    const reply = message as PrimaryToWorker;
    if (reply.kind === 'reply') {
      pending.get(reply.id)?.settle(reply);
      return;
    }
    if (reply.kind === 'revocation') {
      for (const listener of listeners) {
        try {
          listener(reply.event);
        } catch (error) {
          log('error', { err: error instanceof Error ? error.message : String(error) }, 'a revocation listener failed');
        }
      }
    }
  };
  channel.on('message', onMessage);

  const counters: CounterStore = {
    increment: (key, windowSeconds, now) =>
      call({ op: 'increment', key, windowSeconds, now }, () => localCounters.increment(key, windowSeconds, now)),
  };
  const lockouts: LockoutStore = {
    reserve: (key, policy, now) => call<Reservation>({ op: 'reserve', key, policy, now }, () => localLockouts.reserve(key, policy, now)),
    release: (key, policy, now, lockSetUntil) =>
      call<void>({ op: 'release', key, policy, now, ...(lockSetUntil === undefined ? {} : { lockSetUntil }) }, () => localLockouts.release(key, policy, now, lockSetUntil)),
    reset: (key) => call<void>({ op: 'reset', key }, () => localLockouts.reset(key)),
  };

  return {
    kind: 'cluster',
    counters,
    lockouts,
    revocations: {
      publish(event) {
        // Best effort: the other workers also re-read the database at their next sync.
        if (!channel.connected) return;
        try {
          channel.send({ tag: IPC_TAG, kind: 'revocation', event }, (error) => {
            if (error) log('warn', { reason: error.message }, 'could not tell the other workers of a revocation; they see it at their next sync');
          });
        } catch (error) {
          log('warn', { reason: error instanceof Error ? error.message : String(error) }, 'could not tell the other workers of a revocation; they see it at their next sync');
        }
      },
      subscribe(listener) {
        listeners.push(listener);
      },
    },
    status: () => ({ 'cluster-primary': degraded ? 'down' : 'up' }),
    async close() {
      channel.off('message', onMessage);
      listeners.length = 0;
    },
  };
}
