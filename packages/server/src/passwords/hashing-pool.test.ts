import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../errors.ts';
import { createHashingPool, type HashingPool, type QueueFullReport } from './hashing-pool.ts';

const CHEAP = { algorithm: 2, memoryCost: 1024, timeCost: 1, parallelism: 1 } as const;
// Slow enough (tens of milliseconds) that a test can act while one job holds the only thread.
const SLOW = { algorithm: 2, memoryCost: 32 * 1024, timeCost: 3, parallelism: 1 } as const;

/** Nice values of this process's threads, from /proc (field 19 of each task's stat). */
function threadNiceValues(): number[] {
  return readdirSync('/proc/self/task').flatMap((task) => {
    try {
      const fields = readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return [Number(fields[16])];
    } catch {
      return []; // the thread ended while we looked
    }
  });
}

/** Settles a promise into what happened to it, without an unhandled rejection while the test waits. */
function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

describe('hashing pool', () => {
  let pool: HashingPool;
  afterEach(() => pool.close());

  it('hashes and verifies more jobs than it has workers', async () => {
    pool = createHashingPool({ threads: 2 });
    const passwords = Array.from({ length: 7 }, (_, index) => `password number ${index}`);
    const hashes = await Promise.all(passwords.map((password) => pool.hash(password, CHEAP)));
    expect(new Set(hashes).size).toBe(7);
    const checks = await Promise.all(
      hashes.map((storedHash, index) => pool.verify({ kind: 'argon2_verify', storedHash, password: passwords[(index + 1) % 7]! })),
    );
    expect(checks).toEqual(Array(7).fill(false));
    expect(await pool.verify({ kind: 'argon2_verify', storedHash: hashes[3]!, password: passwords[3]! })).toBe(true);
  });

  it('turns a binding error into a rejection, not a crash', async () => {
    pool = createHashingPool({ threads: 1 });
    await expect(pool.verify({ kind: 'argon2_verify', storedHash: '$argon2id$not-a-hash', password: 'x' })).rejects.toThrow();
    expect(typeof (await pool.hash('still alive', CHEAP))).toBe('string');
  });

  it.runIf(process.platform === 'linux')('runs its workers at nice 19 while the event loop keeps its priority', async () => {
    const before = threadNiceValues().filter((nice) => nice === 19).length;
    pool = createHashingPool({ threads: 2 });
    await Promise.all([pool.hash('a', CHEAP), pool.hash('b', CHEAP)]);
    expect(threadNiceValues().filter((nice) => nice === 19).length - before).toBeGreaterThanOrEqual(2);
    const mainThread = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    expect(Number(mainThread[16])).toBe(0);
  });
});

describe('bounded queue', () => {
  let pool: HashingPool;
  afterEach(() => pool.close());

  it('refuses the job past threads + queueMax at once, with a Retry-After, while the others finish', async () => {
    const queueMax = 3;
    pool = createHashingPool({ threads: 1, queueMax });
    const accepted = Array.from({ length: queueMax + 1 }, (_, index) => outcome(pool.hash(`accepted ${index}`, CHEAP)));
    expect(pool.stats()).toMatchObject({ threads: 1, busy: 1, queued: queueMax, rejected: 0 });

    const refused = await outcome(pool.hash('one too many', CHEAP));
    // Refused before the first job could finish: the refusal does not wait for a thread.
    expect(pool.stats()).toMatchObject({ busy: 1, queued: queueMax, started: 1 });
    expect(refused.error).toBeInstanceOf(AppError);
    expect(refused.error).toMatchObject({ code: 'unavailable' });
    expect((refused.error as AppError).details.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(pool.stats().rejected).toBe(1);

    const results = await Promise.all(accepted);
    expect(results.every((result) => typeof result.value === 'string')).toBe(true);
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0, rejected: 1, started: queueMax + 1 });
    // Room again once the backlog is gone.
    expect(typeof (await pool.hash('after the storm', CHEAP))).toBe('string');
  });

  it('sets Retry-After from the measured job time, the backlog and the threads', async () => {
    const queueMax = 40;
    pool = createHashingPool({ threads: 1, queueMax });
    await pool.hash('measure once', SLOW); // tens of milliseconds per job on any machine
    for (let index = 0; index <= queueMax; index += 1) void outcome(pool.hash(`backlog ${index}`, SLOW));
    const refused = await outcome(pool.hash('refused', SLOW));
    // 41 jobs ahead × ≥ 25 ms each ÷ 1 thread ≥ 1.03 s, rounded up; a fixed 1 s would fail. Capped at a minute.
    const retryAfter = (refused.error as AppError).details.retryAfterSeconds!;
    expect(retryAfter).toBeGreaterThanOrEqual(2);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // afterEach closes the pool, which refuses the backlog instead of computing it.
  });

  it('reports a full queue to listeners at most once per interval, with the depth', async () => {
    pool = createHashingPool({ threads: 1, queueMax: 1 });
    const reports: QueueFullReport[] = [];
    const unsubscribe = pool.onQueueFull((report) => reports.push(report));
    const accepted = [outcome(pool.hash('a', CHEAP)), outcome(pool.hash('b', CHEAP))];
    const refused = await Promise.all([1, 2, 3].map((index) => outcome(pool.hash(`refused ${index}`, CHEAP))));
    expect(refused.every((result) => result.error instanceof AppError)).toBe(true);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ threads: 1, busy: 1, queued: 1, rejected: 1, refusedSinceLastReport: 1 });
    unsubscribe();
    await Promise.all(accepted);
  });
});

describe('client gone', () => {
  let pool: HashingPool;
  afterEach(() => pool.close());

  it('drops a queued job whose signal aborts: it never runs', async () => {
    pool = createHashingPool({ threads: 1, queueMax: 4 });
    const running = outcome(pool.hash('holds the thread', SLOW));
    const controller = new AbortController();
    const abandoned = outcome(pool.hash('abandoned', CHEAP, { signal: controller.signal }));
    const kept = outcome(pool.hash('kept', CHEAP));
    expect(pool.stats()).toMatchObject({ busy: 1, queued: 2 });

    controller.abort();
    const dropped = await abandoned;
    expect(dropped.error).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/client closed/) });
    expect(pool.stats()).toMatchObject({ queued: 1, dropped: 1 });
    await Promise.all([running, kept]);
    // The slow job and the kept one ran; the abandoned one never reached a thread.
    expect(pool.stats()).toMatchObject({ started: 2, dropped: 1, queued: 0 });
    expect((await kept).value).toMatch(/^\$argon2id\$/);
  });

  it('refuses a job whose signal has already aborted without queueing it', async () => {
    pool = createHashingPool({ threads: 1 });
    const error = (await outcome(pool.hash('late', CHEAP, { signal: AbortSignal.abort() }))).error;
    expect(error).toMatchObject({ code: 'unavailable' });
    expect(pool.stats()).toMatchObject({ started: 0, queued: 0 });
  });

  it('lets a job that already has a thread finish when its signal aborts', async () => {
    pool = createHashingPool({ threads: 1 });
    const controller = new AbortController();
    const hashing = pool.hash('already running', CHEAP, { signal: controller.signal });
    controller.abort();
    expect(typeof (await hashing)).toBe('string');
    expect(pool.stats()).toMatchObject({ started: 1, dropped: 0 });
  });
});
