import { createMemoryCounterStore } from '../abuse/counter-store.ts';
import { createMemoryLockoutStore } from '../abuse/lockout-store.ts';
import { IPC_TAG, isSharedMessage, type PrimaryToWorker, type SharedOperation, type WorkerToPrimary } from '../shared/cluster-ipc.ts';

/** A worker as the host sees it: node:cluster's Worker has this shape. */
export interface WorkerChannel {
  isConnected(): boolean;
  send(message: PrimaryToWorker, callback: (error: Error | null) => void): boolean;
}

/**
 * The primary's side of the workers' shared state: one set of memory stores for every worker.
 * Each operation runs to completion on the primary's single thread before the next message is
 * read, so a reservation is atomic across workers exactly as it is within one process.
 */
export interface SharedStateHost {
  /** Handles one message a worker sent; ignores anything that is not ours. */
  handle(from: WorkerChannel, message: unknown): void;
  /** The worker will hear revocations made by the others. */
  attach(worker: WorkerChannel): void;
  detach(worker: WorkerChannel): void;
}

export function createSharedStateHost(): SharedStateHost {
  const counters = createMemoryCounterStore();
  const lockouts = createMemoryLockoutStore();
  const workers = new Set<WorkerChannel>();

  function apply(operation: SharedOperation): Promise<unknown> {
    switch (operation.op) {
      case 'increment':
        return counters.increment(operation.key, operation.windowSeconds, operation.now);
      case 'reserve':
        return lockouts.reserve(operation.key, operation.policy, operation.now);
      case 'release':
        return lockouts.release(operation.key, operation.policy, operation.now, operation.lockSetUntil);
      case 'reset':
        return lockouts.reset(operation.key);
      default:
        return Promise.reject(new Error('unknown operation'));
    }
  }

  // A worker that died meanwhile cannot hear the answer; nothing else to do.
  const ignoreSendError = () => {};

  function send(worker: WorkerChannel, message: PrimaryToWorker): void {
    if (!worker.isConnected()) return;
    try {
      worker.send(message, ignoreSendError);
    } catch {
      // The channel closed between the check and the send.
    }
  }

  return {
    handle(from, message) {
      if (!isSharedMessage(message)) return;
      const request = message as WorkerToPrimary;
      if (request.kind === 'revocation') {
        for (const worker of workers) if (worker !== from) send(worker, { tag: IPC_TAG, kind: 'revocation', event: request.event });
        return;
      }
      if (request.kind !== 'request') return;
      apply(request.operation).then(
        (result) => send(from, { tag: IPC_TAG, kind: 'reply', id: request.id, result }),
        (error: unknown) => send(from, { tag: IPC_TAG, kind: 'reply', id: request.id, error: error instanceof Error ? error.message : 'failed' }),
      );
    },
    attach(worker) {
      workers.add(worker);
    },
    detach(worker) {
      workers.delete(worker);
    },
  };
}
