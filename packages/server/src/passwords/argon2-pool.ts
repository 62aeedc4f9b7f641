import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Options as Argon2Options } from '@node-rs/argon2';

/**
 * Argon2 on a small pool of worker threads that run at the lowest CPU priority
 * (nice 19, Linux). A login storm then takes only the CPU the event loop leaves
 * idle: authenticated requests keep their latency, logins get everything else.
 * On the libuv pool the hashes would compete with the event loop as equals.
 */
export interface Argon2Pool {
  hash(password: string, options: Argon2Options): Promise<string>;
  verify(storedHash: string, password: string): Promise<boolean>;
  close(): Promise<void>;
}

interface Job {
  message: { kind: 'hash'; password: string; options: Argon2Options } | { kind: 'verify'; storedHash: string; password: string };
  resolve(value: unknown): void;
  reject(error: Error): void;
}

// Plain CommonJS evaluated in each worker: no file to locate, the same in the bundle and in tests.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// On Linux the nice value is per thread: this lowers the worker only, never the event loop.
if (process.platform === 'linux') { try { require('node:os').setPriority(19); } catch {} }
const argon2 = require(workerData.argon2Path);
parentPort.on('message', (job) => {
  try {
    const result = job.kind === 'hash' ? argon2.hashSync(job.password, job.options) : argon2.verifySync(job.storedHash, job.password);
    parentPort.postMessage({ result });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;

export function createArgon2Pool(size: number = availableParallelism()): Argon2Pool {
  const argon2Path = createRequire(import.meta.url).resolve('@node-rs/argon2');
  const idle: Worker[] = [];
  const busy = new Map<Worker, Job>();
  const queue: Job[] = [];
  let closed = false;

  function spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { argon2Path } });
    worker.unref(); // never keeps the process alive on its own
    worker.on('message', (reply: { result?: unknown; error?: string }) => {
      const job = busy.get(worker);
      busy.delete(worker);
      if (job) {
        if (reply.error !== undefined) job.reject(new Error(reply.error));
        else job.resolve(reply.result);
      }
      release(worker);
    });
    worker.on('error', (error) => {
      busy.get(worker)?.reject(error);
      busy.delete(worker);
    });
    worker.on('exit', () => {
      busy.get(worker)?.reject(new Error('hashing worker exited'));
      busy.delete(worker);
      const index = idle.indexOf(worker);
      if (index >= 0) idle.splice(index, 1);
      if (!closed) spawn(); // keep the pool at full size after a crash
    });
    release(worker);
  }

  function release(worker: Worker): void {
    const next = queue.shift();
    if (next) {
      busy.set(worker, next);
      worker.postMessage(next.message);
    } else {
      idle.push(worker);
    }
  }

  function run<T>(message: Job['message']): Promise<T> {
    if (closed) return Promise.reject(new Error('hashing pool is closed'));
    return new Promise<T>((resolve, reject) => {
      const job: Job = { message, resolve: resolve as (value: unknown) => void, reject };
      const worker = idle.pop();
      if (worker) {
        busy.set(worker, job);
        worker.postMessage(message);
      } else {
        queue.push(job);
      }
    });
  }

  for (let index = 0; index < Math.max(1, size); index += 1) spawn();

  return {
    hash: (password, options) => run<string>({ kind: 'hash', password, options }),
    verify: (storedHash, password) => run<boolean>({ kind: 'verify', storedHash, password }),
    async close() {
      closed = true;
      for (const job of queue.splice(0)) job.reject(new Error('hashing pool is closed'));
      await Promise.all([...idle, ...busy.keys()].map((worker) => worker.terminate()));
    },
  };
}
