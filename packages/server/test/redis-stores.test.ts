import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCounterStore } from '../src/abuse/counter-store.ts';
import { createMemoryLockoutStore, type LockoutPolicy } from '../src/abuse/lockout-store.ts';
import { createRedisSharedState } from '../src/shared/redis.ts';
import { createMemorySharedState, type RevocationEvent, type SharedState } from '../src/shared/state.ts';
import { testRedis } from './helpers.ts';
import { freePort } from './service-process.ts';

const redisUnderTest = testRedis();

/** A fallback that fails the test if it is ever used: these tests are about Redis itself. */
function failingFallback(): SharedState {
  const fail = async (): Promise<never> => {
    throw new Error('the fallback was used: Redis did not answer');
  };
  return {
    kind: 'memory',
    counters: { increment: fail },
    lockouts: { reserve: fail, release: fail, reset: fail },
    revocations: { publish() {}, subscribe() {} },
    status: () => ({}),
    close: async () => {},
  };
}

type LogLine = { level: string; fields: Record<string, unknown>; message: string };

async function openState(keyPrefix: string, lines: LogLine[] = []): Promise<SharedState> {
  return createRedisSharedState({
    url: redisUnderTest!.url,
    keyPrefix,
    fallback: failingFallback(),
    log: (level, fields, message) => lines.push({ level, fields, message }),
    // Generous: this machine is shared with other test runs, and a timeout here would hide behind the fallback.
    commandTimeoutMs: 5000,
  });
}

async function deleteKeys(raw: Redis, keyPrefix: string): Promise<void> {
  // Never FLUSH: the Redis is shared. Only this test's own prefix goes.
  for await (const keys of raw.scanStream({ match: `${keyPrefix}*`, count: 500 })) if ((keys as string[]).length > 0) await raw.del(...(keys as string[]));
}

// Short durations and small steps, so that sequences land exactly on a lock's end, a window's end or
// an entry's expiry (where `<` against `<=` shows), and pass the limit more than once.
const seconds = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 6 }), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 600 }), weight: 1 });
const doublingPolicy = fc.record({
  kind: fc.constant('doubling' as const),
  maxFailures: fc.integer({ min: 1, max: 3 }),
  firstLockSeconds: seconds,
  maxLockSeconds: seconds,
  memorySeconds: seconds,
});
const windowPolicy = fc.record({ kind: fc.constant('window' as const), maxFailures: fc.integer({ min: 1, max: 3 }), windowSeconds: seconds });
const operation = fc.record({
  op: fc.oneof(
    { arbitrary: fc.constant('reserve' as const), weight: 5 },
    { arbitrary: fc.constant('release' as const), weight: 2 },
    { arbitrary: fc.constant('reset' as const), weight: 1 },
    { arbitrary: fc.constant('increment' as const), weight: 2 },
  ),
  key: fc.integer({ min: 0, max: 2 }),
  advanceSeconds: fc.oneof(
    { arbitrary: fc.constant(0), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 4 }), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: 3000 }), weight: 1 },
  ),
});

describe.skipIf(!redisUnderTest)('Redis counters and lockouts [redis]', () => {
  const keyPrefix = redisUnderTest?.keyPrefix ?? '';
  let raw: Redis;
  let one: SharedState;
  let two: SharedState;
  beforeAll(async () => {
    raw = new Redis(redisUnderTest!.url);
    raw.on('error', () => {});
    one = await openState(keyPrefix);
    two = await openState(keyPrefix);
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await deleteKeys(raw, keyPrefix);
    await raw.quit();
  });

  it('gives the same verdict as the memory stores for any sequence of reserve, release, reset and increment', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        doublingPolicy,
        windowPolicy,
        seconds,
        // Start times far behind and ahead of the real clock: Redis's expiry must not decide what is live.
        fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }),
        fc.array(operation, { minLength: 1, maxLength: 60 }),
        async (doubling, window, counterWindowSeconds, start, operations) => {
          run += 1;
          const memoryLockouts = createMemoryLockoutStore();
          const memoryCounters = createMemoryCounterStore();
          const policies: LockoutPolicy[] = [doubling, window, doubling];
          let now = start;
          // Per key, the end of the last lock a reservation set: releases name it, as a given-back login attempt does.
          const lockSet = new Map<string, number>();
          for (const [index, step] of operations.entries()) {
            now += step.advanceSeconds;
            const key = `run${run}:k${step.key}`;
            const policy = policies[step.key]!;
            // Both processes' connections take turns: the state lives in Redis, not in either of them.
            const redis = index % 2 === 0 ? one : two;
            const where = `step ${index} (${step.op} ${key} at +${now - start}s)`;
            if (step.op === 'reserve') {
              const verdict = await memoryLockouts.reserve(key, policy, now);
              expect(await redis.lockouts.reserve(key, policy, now), where).toEqual(verdict);
              if (verdict.allowed && verdict.lockSecondsIfFailed !== undefined) lockSet.set(key, now + verdict.lockSecondsIfFailed);
            } else if (step.op === 'release') {
              // Every other release names no lock (a reservation below the limit, or the earlier one in a race).
              const named = index % 2 === 0 ? lockSet.get(key) : undefined;
              await Promise.all([redis.lockouts.release(key, policy, now, named), memoryLockouts.release(key, policy, now, named)]);
              // A release has no verdict of its own: the next reservation's shows whether both gave back the same slot.
              expect(await redis.lockouts.reserve(key, policy, now), `${where}, then reserve`).toEqual(await memoryLockouts.reserve(key, policy, now));
            } else if (step.op === 'reset') await Promise.all([redis.lockouts.reset(key), memoryLockouts.reset(key)]);
            else expect(await redis.counters.increment(key, counterWindowSeconds, now), where).toEqual(await memoryCounters.increment(key, counterWindowSeconds, now));
          }
        },
      ),
      { numRuns: 300 },
    );
  }, 120_000);

  it.each<[string, LockoutPolicy]>([
    ['doubling', { kind: 'doubling', maxFailures: 10, firstLockSeconds: 60, maxLockSeconds: 3600, memorySeconds: 86_400 }],
    ['window', { kind: 'window', maxFailures: 10, windowSeconds: 3600 }],
  ])('lets exactly the limit through when two processes reserve the same key at once (%s)', async (_name, policy) => {
    const key = `race:${policy.kind}`;
    const now = 1_800_000_000;
    const verdicts = await Promise.all(Array.from({ length: 200 }, (_, index) => (index % 2 === 0 ? one : two).lockouts.reserve(key, policy, now)));
    expect(verdicts.filter((verdict) => verdict.allowed)).toHaveLength(10);
    expect(new Set(verdicts.filter((verdict) => !verdict.allowed).map((verdict) => (verdict.allowed ? 0 : verdict.retryAfterSeconds)))).toEqual(
      new Set([policy.kind === 'doubling' ? 60 : 3600]),
    );
  });

  it('a given-back attempt past the limit takes back its own lock, and never a later one', async () => {
    const policy: LockoutPolicy = { kind: 'doubling', maxFailures: 3, firstLockSeconds: 60, maxLockSeconds: 3600, memorySeconds: 86_400 };
    const now = 1_800_000_000;
    for (const key of ['own', 'later']) for (let attempt = 0; attempt < 3; attempt += 1) await one.lockouts.reserve(key, policy, now);
    // The first lock ends; the fourth attempt would lock for 120 s, and is given back by the other process.
    expect(await one.lockouts.reserve('own', policy, now + 60)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    await two.lockouts.release('own', policy, now + 60, now + 60 + 120);
    expect(await one.lockouts.reserve('own', policy, now + 61)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    // Here the fourth attempt is evaluated; an attempt from before the first lock, given back only now, names no lock of its own.
    expect(await one.lockouts.reserve('later', policy, now + 60)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    await two.lockouts.release('later', policy, now + 70);
    expect(await one.lockouts.reserve('later', policy, now + 70)).toEqual({ allowed: false, retryAfterSeconds: 110 });
    // Nor does naming an ended lock lift the one that replaced it (the third failure locked until +180, the fourth until +300).
    for (let attempt = 0; attempt < 4; attempt += 1) await one.lockouts.reserve('stale', policy, now + attempt * 60);
    await two.lockouts.release('stale', policy, now + 190, now + 120 + 60);
    expect(await one.lockouts.reserve('stale', policy, now + 190)).toEqual({ allowed: false, retryAfterSeconds: 110 });
  });

  it('counts every concurrent hit of two processes exactly once', async () => {
    const now = 1_800_000_000;
    const results = await Promise.all(Array.from({ length: 200 }, (_, index) => (index % 2 === 0 ? one : two).counters.increment('race:counter', 60, now)));
    expect(results.map((result) => result.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, index) => index + 1));
    expect(new Set(results.map((result) => result.resetAt))).toEqual(new Set([now + 60]));
  });

  it('lets Redis forget an entry a second after it expires, relative to the caller’s clock', async () => {
    const longAgo = 1_600_000_000; // years behind the real clock: an absolute EXPIREAT would delete at once
    await one.counters.increment('ttl:counter', 60, longAgo);
    await one.lockouts.reserve('ttl:lockout', { kind: 'window', maxFailures: 3, windowSeconds: 600 }, longAgo);
    const counterTtl = await raw.ttl(`${keyPrefix}counter:ttl:counter`);
    const lockoutTtl = await raw.ttl(`${keyPrefix}lockout:ttl:lockout`);
    expect(counterTtl).toBeGreaterThan(55);
    expect(counterTtl).toBeLessThanOrEqual(61);
    expect(lockoutTtl).toBeGreaterThan(595);
    expect(lockoutTtl).toBeLessThanOrEqual(601);
    // A lock's entry lives at least until the lock ends, even when the failures would be forgotten sooner.
    await one.lockouts.reserve('ttl:locked', { kind: 'doubling', maxFailures: 1, firstLockSeconds: 900, maxLockSeconds: 3600, memorySeconds: 60 }, longAgo);
    expect(await raw.ttl(`${keyPrefix}lockout:ttl:locked`)).toBeGreaterThan(895);
    await one.lockouts.reset('ttl:locked');
    expect(await raw.exists(`${keyPrefix}lockout:ttl:locked`)).toBe(0);
  });

  it('keeps deployments with different prefixes apart', async () => {
    const other = await openState(`${keyPrefix}other:`);
    try {
      const policy: LockoutPolicy = { kind: 'window', maxFailures: 1, windowSeconds: 60 };
      expect(await one.lockouts.reserve('apart', policy, 1_800_000_000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
      expect(await one.lockouts.reserve('apart', policy, 1_800_000_000)).toMatchObject({ allowed: false });
      expect(await other.lockouts.reserve('apart', policy, 1_800_000_000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
    } finally {
      await other.close();
    }
  });
});

describe.skipIf(!redisUnderTest)('Redis revocation news [redis]', () => {
  const keyPrefix = redisUnderTest?.keyPrefix ?? '';
  const channel = `${keyPrefix}revocations`;
  let raw: Redis;
  let one: SharedState;
  let two: SharedState;
  const heardByOne: unknown[] = [];
  const heardByTwo: unknown[] = [];
  beforeAll(async () => {
    raw = new Redis(redisUnderTest!.url);
    raw.on('error', () => {});
    one = await openState(keyPrefix);
    two = await openState(keyPrefix);
    one.revocations.subscribe((event) => heardByOne.push(event));
    two.revocations.subscribe((event) => heardByTwo.push(event));
    // SUBSCRIBE goes out once the connection is up; wait until both subscribers are listening.
    await until(async () => ((await raw.call('PUBSUB', 'NUMSUB', channel)) as [string, number])[1] === 2);
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await raw.quit();
  });

  it("reaches the other process, not the publisher's own", async () => {
    one.revocations.publish({ sessionIds: ['session-a', 'session-b'], revokedAt: 1_800_000_000 });
    await until(() => heardByTwo.length === 1);
    expect(heardByTwo).toEqual([{ sessionIds: ['session-a', 'session-b'], revokedAt: 1_800_000_000 }]);
    // The publisher's denylist already has it; hearing it back would only cost work.
    two.revocations.publish({ sessionIds: ['session-c'], revokedAt: 1_800_000_001 });
    await until(() => heardByOne.length === 1);
    expect(heardByOne).toEqual([{ sessionIds: ['session-c'], revokedAt: 1_800_000_001 }]);
    expect(heardByTwo).toHaveLength(1);
    heardByOne.length = heardByTwo.length = 0;
  });

  it('sends a logout-all of many sessions in bounded messages, all of which arrive', async () => {
    const sessionIds = Array.from({ length: 450 }, (_, index) => `many-${index}`);
    one.revocations.publish({ sessionIds, revokedAt: 1_800_000_002 });
    await until(() => heardByTwo.length === 3);
    expect((heardByTwo as Array<{ sessionIds: string[] }>).flatMap((event) => event.sessionIds)).toEqual(sessionIds);
    heardByOne.length = heardByTwo.length = 0;
  });

  it('ignores malformed or oversized messages and keeps listening', async () => {
    const garbage = [
      'not json',
      'null',
      '[]',
      JSON.stringify({ origin: 'x', sessionIds: 'session', revokedAt: 1 }),
      JSON.stringify({ origin: 'x', sessionIds: [1, 2], revokedAt: 1 }),
      JSON.stringify({ origin: 'x', sessionIds: ['s'], revokedAt: 'soon' }),
      JSON.stringify({ origin: 'x', sessionIds: ['s'], revokedAt: -1 }),
      JSON.stringify({ sessionIds: ['s'], revokedAt: 1 }),
      JSON.stringify({ origin: 'x', sessionIds: ['s'.repeat(500)], revokedAt: 1 }),
      JSON.stringify({ origin: 'x', sessionIds: Array.from({ length: 5000 }, () => 's'), revokedAt: 1 }),
      `{"origin":"x","sessionIds":["s"],"revokedAt":1,"pad":"${'x'.repeat(100_000)}"}`,
    ];
    for (const message of garbage) await raw.publish(channel, message);
    await raw.publish(channel, JSON.stringify({ origin: 'someone-else', sessionIds: ['good'], revokedAt: 7 }));
    await until(() => heardByTwo.length === 1 && heardByOne.length === 1);
    expect(heardByTwo).toEqual([{ sessionIds: ['good'], revokedAt: 7 }]);
    expect(heardByOne).toEqual([{ sessionIds: ['good'], revokedAt: 7 }]);
    heardByOne.length = heardByTwo.length = 0;
  });
});

describe.skipIf(!redisUnderTest)('Redis unreachable at start [redis]', () => {
  it('starts at once on the fallback, warns once without the password, and counts and tells per process', async () => {
    const lines: LogLine[] = [];
    const publishedThroughFallback: RevocationEvent[] = [];
    const fallbackListeners: Array<(event: RevocationEvent) => void> = [];
    const port = await freePort(); // nothing listens there
    const started = Date.now();
    const state = await createRedisSharedState({
      url: `redis://:hunter2-secret@127.0.0.1:${port}`,
      keyPrefix: 'unused:',
      fallback: { ...createMemorySharedState(), revocations: { publish: (event) => publishedThroughFallback.push(event), subscribe: (listener) => void fallbackListeners.push(listener) } },
      log: (level, fields, message) => lines.push({ level, fields, message }),
      connectTimeoutMs: 300,
    });
    try {
      expect(Date.now() - started).toBeLessThan(5000);
      expect(state.status()).toEqual({ redis: 'down' });
      expect((await state.counters.increment('ip', 60, 1000)).count).toBe(1);
      expect((await state.counters.increment('ip', 60, 1000)).count).toBe(2);
      expect(await state.lockouts.reserve('account', { kind: 'window', maxFailures: 1, windowSeconds: 60 }, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
      expect(await state.lockouts.reserve('account', { kind: 'window', maxFailures: 1, windowSeconds: 60 }, 1000)).toMatchObject({ allowed: false });
      // Never throws; the fallback carries the news as far as it reaches (sibling workers, when it is the cluster primary).
      const heard: RevocationEvent[] = [];
      state.revocations.subscribe((event) => heard.push(event));
      state.revocations.publish({ sessionIds: ['s'], revokedAt: 1 });
      expect(publishedThroughFallback).toEqual([{ sessionIds: ['s'], revokedAt: 1 }]);
      fallbackListeners.forEach((listener) => listener({ sessionIds: ['from-a-sibling'], revokedAt: 2 }));
      expect(heard).toEqual([{ sessionIds: ['from-a-sibling'], revokedAt: 2 }]);
      // Reconnect attempts go on in the background; still a single warning.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);
      expect(JSON.stringify(lines)).not.toContain('hunter2');
      expect(lines[0]!.fields.redis).toBe(`127.0.0.1:${port}`);
    } finally {
      await state.close();
    }
  });
});

async function until(check: () => boolean | Promise<boolean>, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
