import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { AppError } from '../errors.ts';

/**
 * zxcvbn-ts (with its common and English dictionaries, which include the ≈49k-entry common/breached
 * password list) on one worker thread, started on the first check and shared by the whole process.
 * On the event loop it would cost ≈60 MB from start and block every request for 20–400 ms per check;
 * here the service starts without it, and a signup storm only delays other signups.
 */
export interface StrengthEstimate {
  /** Fewer than MIN_GUESSES guesses: refuse. */
  guessable: boolean;
  /** The whole password is an entry of the common/breached password list. */
  commonPassword: boolean;
  /** zxcvbn's warning, then its suggestions: plain English sentences, empty when not guessable. */
  feedback: string[];
}

/**
 * 10^10 guesses: zxcvbn's score 4, "strong protection from offline slow-hash attacks". Score 3 (10^8)
 * still passes `Password1234567!` (10^8.0): at Argon2id's ≈20 ms per guess a 100-core attacker with a
 * stolen database spends 5.6 hours on 10^8 guesses, 23 days on 10^10.
 */
export const MIN_GUESSES = 1e10;
/**
 * zxcvbn's time grows faster than linearly with length (crafted inputs: ≈0.4 s at 64 characters,
 * ≈0.7 s at 100, on this project's 2-core machine), so it sees the first 64 characters only. That can refuse, never wrongly accept:
 * a prefix that takes 10^10 guesses makes the whole password take at least as many.
 */
export const ESTIMATED_PREFIX_LENGTH = 64;
/** l33t variants tried per password; the library's 100 made one crafted check take ≈3 s (20: ≈0.5 s). */
const L33T_MAX_SUBSTITUTIONS = 20;
/** Checks waiting for the worker; past it the caller gets 503, like the hashing queue. */
const MAX_PENDING_CHECKS = 64;

// Plain CommonJS evaluated in the worker: no file to locate, the same in the bundle and in tests.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// On Linux the nice value is per thread: this lowers the worker only, never the event loop.
if (process.platform === 'linux') { try { require('node:os').setPriority(19); } catch {} }
const { ZxcvbnFactory } = require(workerData.paths.core);
const common = require(workerData.paths.common);
const en = require(workerData.paths.en);
const zxcvbn = new ZxcvbnFactory({
  translations: en.translations,
  graphs: common.adjacencyGraphs,
  dictionary: { ...common.dictionary, ...en.dictionary },
  l33tMaxSubstitutions: workerData.l33tMaxSubstitutions,
  // zxcvbn gives feedback only below score 3: put that boundary at our minimum, so every refusal has one.
  timeEstimationValues: {
    scoring: { 0: 1e3, 1: 1e6, 2: workerData.minGuesses, 3: workerData.minGuesses * 100 },
    attackTime: { onlineThrottlingXPerHour: 100, onlineNoThrottlingXPerSecond: 10, offlineSlowHashingXPerSecond: 1e4, offlineFastHashingXPerSecond: 1e10 },
  },
});
const commonPasswords = new Set(common.dictionary['passwords-common']);
parentPort.on('message', ({ id, password, userInputs }) => {
  try {
    const result = zxcvbn.check(password, userInputs);
    const commonPassword = commonPasswords.has(password.toLowerCase());
    const feedback = [result.feedback.warning, ...result.feedback.suggestions].filter(Boolean);
    parentPort.postMessage({ id, estimate: { guessable: result.score <= 2, commonPassword, feedback } });
  } catch (error) {
    parentPort.postMessage({ id, error: String((error && error.message) || error) });
  }
});
`;

interface PendingCheck {
  resolve(estimate: StrengthEstimate): void;
  reject(error: Error): void;
}

let worker: Worker | undefined;
const pending = new Map<number, PendingCheck>();
let nextId = 0;

/** Estimates how many guesses the password takes; userInputs (email, name…) count as a dictionary. */
export function estimateStrength(password: string, userInputs: string[]): Promise<StrengthEstimate> {
  if (pending.size >= MAX_PENDING_CHECKS) {
    return Promise.reject(new AppError('unavailable', 'password strength checks are queued beyond their bound', { retryAfterSeconds: 1 }));
  }
  const target = worker ?? startWorker();
  const id = nextId++;
  const prefix = [...password].slice(0, ESTIMATED_PREFIX_LENGTH).join('');
  return new Promise<StrengthEstimate>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    // Referenced only while a check waits: an idle worker never keeps the process alive.
    if (pending.size === 1) target.ref();
    target.postMessage({ id, password: prefix, userInputs });
  });
}

function startWorker(): Worker {
  const resolvePath = createRequire(import.meta.url).resolve;
  const paths = {
    core: resolvePath('@zxcvbn-ts/core'),
    common: resolvePath('@zxcvbn-ts/language-common'),
    en: resolvePath('@zxcvbn-ts/language-en'),
  };
  const started = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { paths, minGuesses: MIN_GUESSES, l33tMaxSubstitutions: L33T_MAX_SUBSTITUTIONS },
  });
  started.unref();
  started.on('message', (reply: { id: number; estimate?: StrengthEstimate; error?: string }) => {
    const check = pending.get(reply.id);
    pending.delete(reply.id);
    if (pending.size === 0) started.unref();
    if (reply.estimate) check?.resolve(reply.estimate);
    else check?.reject(new AppError('unavailable', 'password strength check failed', {}, { cause: new Error(reply.error) }));
  });
  // A worker that failed to load or crashed fails its waiting checks (503) and is replaced on the next one.
  const fail = (cause: unknown) => {
    if (worker === started) worker = undefined;
    for (const check of pending.values()) {
      check.reject(new AppError('unavailable', 'password strength estimator stopped', { retryAfterSeconds: 1 }, { cause }));
    }
    pending.clear();
  };
  started.on('error', fail);
  started.on('exit', (exitCode) => fail(new Error(`password strength worker exited with code ${exitCode}`)));
  worker = started;
  return started;
}
