import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Options as Argon2Options } from '@node-rs/argon2';
import { AppError } from '../errors.ts';
import type { LegacyHashCheck } from './legacy.ts';

/**
 * Password hashing (Argon2, and the legacy scrypt/PBKDF2/bcrypt checks) on a small pool of worker
 * threads that run at the lowest CPU priority (nice 19, Linux). A login storm then takes only the CPU
 * the event loop leaves idle: authenticated requests keep their latency, logins get everything else.
 * The wait queue is bounded: past `queueMax` a job is refused at once (503 + Retry-After), so a storm
 * cannot grow latency or memory (each queued job holds a password) without limit.
 */
export interface HashingPool {
  hash(password: string, options: Argon2Options, jobOptions?: JobOptions): Promise<string>;
  verify(job: VerifyJob, jobOptions?: JobOptions): Promise<boolean>;
  stats(): HashingPoolStats;
  /** Called, at most once per QUEUE_FULL_REPORT_INTERVAL_MS, while jobs are refused; returns an unsubscribe. */
  onQueueFull(listener: (report: QueueFullReport) => void): () => void;
  /** Told of each job a thread finished (metrics: hashing duration and queue wait); returns an unsubscribe. */
  onJobDone(listener: (timing: HashingJobTiming) => void): () => void;
  close(): Promise<void>;
}

export interface HashingJobTiming {
  /** argon2_hash, argon2_verify, or the legacy check that ran (scrypt_verify, pbkdf2_verify, bcrypt_verify). */
  kind: string;
  /** Time in the queue before a thread took the job. */
  waitMs: number;
  /** Time on the thread. */
  runMs: number;
}

export interface HashingPoolOptions {
  /** Worker threads; one per core by default (HASH_POOL_SIZE). */
  threads?: number;
  /** Jobs allowed to wait for a thread (HASH_QUEUE_MAX, default 64). */
  queueMax?: number;
}

export interface JobOptions {
  /** Aborts when the client has gone: a queued job is then dropped without running. */
  signal?: AbortSignal | undefined;
  /** Called when a thread takes the job: from then on the password has been (or is being) checked. */
  onStarted?: (() => void) | undefined;
}

export interface HashingPoolStats {
  threads: number;
  busy: number;
  queued: number;
  /** Jobs refused because the queue was full, since start. */
  rejected: number;
  /** Queued jobs dropped because their client went away, since start. */
  dropped: number;
  /** Jobs handed to a worker thread, since start. */
  started: number;
}

export interface QueueFullReport extends HashingPoolStats {
  /** Refusals since the previous report. */
  refusedSinceLastReport: number;
  retryAfterSeconds: number;
}

export type VerifyJob = ({ kind: 'argon2_verify'; storedHash: string } | LegacyHashCheck) & { password: string };
type Message = { kind: 'argon2_hash'; password: string; options: Argon2Options } | VerifyJob;

interface Job {
  message: Message;
  queuedAt: number;
  signal: AbortSignal | undefined;
  onStarted: (() => void) | undefined;
  onAbort: (() => void) | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export const DEFAULT_QUEUE_MAX = 64;
const QUEUE_FULL_REPORT_INTERVAL_MS = 5_000;
// Until a job has been measured: about one OWASP Argon2id hash on a loaded core.
const INITIAL_JOB_ESTIMATE_MS = 100;
const MAX_RETRY_AFTER_SECONDS = 60;

// Plain CommonJS evaluated in each worker: no file to locate, the same in the bundle and in tests.
// The legacy checks compare in constant time here, so only a boolean crosses back.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
// On Linux the nice value is per thread: this lowers the worker only, never the event loop.
if (process.platform === 'linux') { try { require('node:os').setPriority(19); } catch {} }
const argon2 = require(workerData.argon2Path);
let bcrypt; // loaded on the first bcrypt row only
function sameBytes(derived, expectedHex) {
  const expected = Buffer.from(expectedHex, 'hex');
  return derived.length === expected.length && crypto.timingSafeEqual(derived, expected);
}
function run(job) {
  switch (job.kind) {
    case 'argon2_hash': return argon2.hashSync(job.password, job.options);
    case 'argon2_verify': return argon2.verifySync(job.storedHash, job.password);
    case 'scrypt_verify':
      return sameBytes(crypto.scryptSync(job.password, job.salt, job.keyBytes, { N: job.costN, r: job.blockSizeR, p: job.parallelismP, maxmem: job.maxmemBytes }), job.expectedHex);
    case 'pbkdf2_verify':
      return sameBytes(crypto.pbkdf2Sync(job.password, job.salt, job.iterations, job.keyBytes, job.digest), job.expectedHex);
    case 'bcrypt_verify':
      bcrypt ??= require(workerData.bcryptPath);
      return bcrypt.verifySync(job.password, job.storedHash);
    default: throw new Error('unknown hashing job');
  }
}
parentPort.on('message', (job) => {
  try {
    parentPort.postMessage({ result: run(job) });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;

export function createHashingPool(options: HashingPoolOptions = {}): HashingPool {
  const threads = Math.max(1, options.threads ?? availableParallelism());
  const queueMax = Math.max(0, options.queueMax ?? DEFAULT_QUEUE_MAX);
  const resolveModule = createRequire(import.meta.url).resolve;
  const workerData = { argon2Path: resolveModule('@node-rs/argon2'), bcryptPath: resolveModule('@node-rs/bcrypt') };
  const idle: Worker[] = [];
  const busy = new Map<Worker, { job: Job; startedAt: number }>();
  const jobDoneListeners = new Set<(timing: HashingJobTiming) => void>();
  const queue: Job[] = [];
  const queueFullListeners = new Set<(report: QueueFullReport) => void>();
  const counts = { rejected: 0, dropped: 0, started: 0 };
  let averageJobMs = INITIAL_JOB_ESTIMATE_MS;
  let measured = false;
  let lastReportAt = Number.NEGATIVE_INFINITY;
  let refusedSinceLastReport = 0;
  let closed = false;

  function spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    worker.unref(); // never keeps the process alive on its own
    worker.on('message', (reply: { result?: unknown; error?: string }) => {
      const running = busy.get(worker);
      busy.delete(worker);
      if (running) {
        const runMs = performance.now() - running.startedAt;
        recordJobTime(runMs);
        if (jobDoneListeners.size > 0) tellJobDone(running.job, running.startedAt, runMs);
        if (reply.error !== undefined) running.job.reject(new Error(reply.error));
        else running.job.resolve(reply.result);
      }
      release(worker);
    });
    worker.on('error', (error) => {
      busy.get(worker)?.job.reject(error);
      busy.delete(worker);
    });
    worker.on('exit', () => {
      busy.get(worker)?.job.reject(new Error('hashing worker exited'));
      busy.delete(worker);
      const index = idle.indexOf(worker);
      if (index >= 0) idle.splice(index, 1);
      if (!closed) spawn(); // keep the pool at full size after a crash
    });
    release(worker);
  }

  // An exponentially weighted average follows the machine's load without one slow job dominating.
  function recordJobTime(milliseconds: number): void {
    averageJobMs = measured ? averageJobMs * 0.8 + milliseconds * 0.2 : milliseconds;
    measured = true;
  }

  function tellJobDone(job: Job, startedAt: number, runMs: number): void {
    const timing: HashingJobTiming = { kind: job.message.kind, waitMs: startedAt - job.queuedAt, runMs };
    for (const listener of jobDoneListeners) {
      try {
        listener(timing);
      } catch {
        // A listener's failure must not fail the job it was told about.
      }
    }
  }

  function start(worker: Worker, job: Job): void {
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    busy.set(worker, { job, startedAt: performance.now() });
    counts.started += 1;
    job.onStarted?.();
    worker.postMessage(job.message);
  }

  function release(worker: Worker): void {
    const next = queue.shift();
    if (next) start(worker, next);
    else idle.push(worker);
  }

  // Time for the threads to work through everything ahead of a newcomer: by then the backlog is gone.
  function retryAfterSeconds(): number {
    const backlogSeconds = (averageJobMs * (queue.length + busy.size)) / threads / 1000;
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(backlogSeconds)));
  }

  function refuse(): AppError {
    counts.rejected += 1;
    refusedSinceLastReport += 1;
    const retryAfter = retryAfterSeconds();
    const now = performance.now();
    if (now - lastReportAt >= QUEUE_FULL_REPORT_INTERVAL_MS && queueFullListeners.size > 0) {
      lastReportAt = now;
      const report = { ...stats(), refusedSinceLastReport, retryAfterSeconds: retryAfter };
      refusedSinceLastReport = 0;
      for (const listener of queueFullListeners) listener(report);
    }
    return new AppError('unavailable', 'password hashing queue is full', { retryAfterSeconds: retryAfter });
  }

  function run<T>(message: Message, { signal, onStarted }: JobOptions): Promise<T> {
    if (closed) return Promise.reject(new Error('hashing pool is closed'));
    if (signal?.aborted) return Promise.reject(clientGone());
    const worker = idle.pop();
    if (!worker && queue.length >= queueMax) return Promise.reject(refuse());
    return new Promise<T>((resolve, reject) => {
      const job: Job = { message, queuedAt: performance.now(), signal, onStarted, onAbort: undefined, resolve: resolve as (value: unknown) => void, reject };
      if (worker) return start(worker, job);
      if (signal) {
        // Only a waiting job can be dropped; once a thread has it, the work is already paid for.
        job.onAbort = () => {
          const index = queue.indexOf(job);
          if (index < 0) return;
          queue.splice(index, 1);
          counts.dropped += 1;
          reject(clientGone());
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      queue.push(job);
    });
  }

  function stats(): HashingPoolStats {
    return { threads, busy: busy.size, queued: queue.length, ...counts };
  }

  for (let index = 0; index < threads; index += 1) spawn();

  return {
    hash: (password, argon2Options, jobOptions = {}) => run<string>({ kind: 'argon2_hash', password, options: argon2Options }, jobOptions),
    verify: (job, jobOptions = {}) => run<boolean>(job, jobOptions),
    stats,
    onQueueFull(listener) {
      queueFullListeners.add(listener);
      return () => queueFullListeners.delete(listener);
    },
    onJobDone(listener) {
      jobDoneListeners.add(listener);
      return () => jobDoneListeners.delete(listener);
    },
    async close() {
      closed = true;
      for (const job of queue.splice(0)) job.reject(new Error('hashing pool is closed'));
      await Promise.all([...idle, ...busy.keys()].map((worker) => worker.terminate()));
    },
  };
}

/**
 * The client closed its connection while its job waited. No answer can reach it, so this is not a
 * server fault: an AppError keeps it out of the 500 path and its error log.
 */
export function clientGone(): AppError {
  return new AppError('unavailable', 'client closed the connection before its password was checked');
}
