import { describe, expect, it } from 'vitest';
import { applyReservation, createMemoryLockoutStore, doublingLockSeconds, type LockoutPolicy } from './lockout-store.ts';

const doubling: LockoutPolicy = { kind: 'doubling', maxFailures: 3, firstLockSeconds: 60, maxLockSeconds: 3600, memorySeconds: 86400 };
const window: LockoutPolicy = { kind: 'window', maxFailures: 3, windowSeconds: 3600 };

describe('lockout reservations', () => {
  it('doubling: the attempt that reaches the limit locks at once, so later ones are refused before any check', () => {
    let entry;
    const verdicts = [];
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const result = applyReservation(entry, doubling, 1000);
      entry = result.entry;
      verdicts.push(result.reservation);
    }
    expect(verdicts).toEqual([
      { allowed: true },
      { allowed: true },
      // The attempt that reaches the limit says how long its failure locks (the audit log's lockout).
      { allowed: true, lockSecondsIfFailed: 60 },
      { allowed: false, retryAfterSeconds: 60 },
      { allowed: false, retryAfterSeconds: 60 },
    ]);
    // After the lock: one more attempt, which locks for twice as long.
    const next = applyReservation(entry, doubling, 1060);
    expect(next.reservation).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    expect(applyReservation(next.entry, doubling, 1060).reservation).toEqual({ allowed: false, retryAfterSeconds: 120 });
  });

  it('doubling: an attempt given back past the limit takes back the lock it set (nothing was evaluated)', async () => {
    const store = createMemoryLockoutStore();
    for (let attempt = 0; attempt < 3; attempt += 1) await store.reserve('k', doubling, 1000);
    // The first lock (60 s) ends; the next attempt would lock for 120 s if it failed, but it is never evaluated.
    expect(await store.reserve('k', doubling, 1060)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    await store.release('k', doubling, 1060, 1060 + 120);
    // As if it had never come: the next attempt is the one that may lock for 120 s.
    expect(await store.reserve('k', doubling, 1061)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    expect(await store.reserve('k', doubling, 1061)).toEqual({ allowed: false, retryAfterSeconds: 120 });
  });

  it('doubling: an attempt given back late does not lift a lock that a later, evaluated attempt set', async () => {
    const store = createMemoryLockoutStore();
    // The first attempt is reserved and left waiting (queued for hashing, say); the next two reach the limit.
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true });
    await store.reserve('k', doubling, 1000);
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
    // That lock ends; another attempt is evaluated and locks for 120 s.
    expect(await store.reserve('k', doubling, 1060)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    // Only now is the first attempt given back: the count drops by one, but the 120 s lock was not its own.
    await store.release('k', doubling, 1070);
    expect(await store.reserve('k', doubling, 1070)).toEqual({ allowed: false, retryAfterSeconds: 110 });
  });

  it('doubling: a release naming a lock that has since been replaced lifts nothing past the limit', async () => {
    const store = createMemoryLockoutStore();
    for (let attempt = 0; attempt < 4; attempt += 1) await store.reserve('k', doubling, 1000 + attempt * 60);
    // The third failure locked until 1180; the fourth, at 1180, locks until 1300. A release naming the lock that ended at 1180 is stale.
    await store.release('k', doubling, 1190, 1120 + 60);
    expect(await store.reserve('k', doubling, 1190)).toEqual({ allowed: false, retryAfterSeconds: 110 });
  });

  it('an attempt given back below the limit leaves no lock: the count no longer reaches it', async () => {
    const store = createMemoryLockoutStore();
    await store.reserve('k', doubling, 1000);
    await store.reserve('k', doubling, 1000); // left waiting
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
    await store.release('k', doubling, 1000);
    // Two counted: the next attempt is the third, and the one that locks.
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('doubling windows are capped', () => {
    expect([0, 1, 2, 5, 6, 40].map((n) => doublingLockSeconds(n, 60, 3600))).toEqual([60, 120, 240, 1920, 3600, 3600]);
  });

  it('window: maxFailures per window, refused until the window that opened with the first failure ends', () => {
    let entry = applyReservation(undefined, window, 1000).entry;
    entry = applyReservation(entry, window, 1100).entry;
    entry = applyReservation(entry, window, 1200).entry;
    expect(applyReservation(entry, window, 1300).reservation).toEqual({ allowed: false, retryAfterSeconds: 3300 });
    expect(applyReservation(entry, window, 4600).reservation).toEqual({ allowed: true });
  });
});

describe('memory lockout store', () => {
  it('never evicts a locked key, whatever the traffic on other keys', async () => {
    const store = createMemoryLockoutStore({ maxCountingKeys: 100, maxLockedKeys: 10_000 });
    for (let attempt = 0; attempt < 3; attempt += 1) await store.reserve('victim', doubling, 1000);
    for (let index = 0; index < 100_000; index += 1) await store.reserve(`flood-${index}`, doubling, 1000);
    expect(await store.reserve('victim', doubling, 1000)).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('forgets single-failure keys first: a flood of fresh keys cannot push out a count built from real failures', async () => {
    const store = createMemoryLockoutStore({ maxCountingKeys: 100, maxLockedKeys: 10_000 });
    await store.reserve('account', window, 1000);
    await store.reserve('account', window, 1000);
    for (let index = 0; index < 100_000; index += 1) await store.reserve(`flood-${index}`, window, 1000);
    // Still two failures counted: the third locks it.
    expect(await store.reserve('account', window, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 3600 });
    expect(await store.reserve('account', window, 1000)).toEqual({ allowed: false, retryAfterSeconds: 3600 });
  });

  it('forgets the oldest counts past its bound when every key has several failures', async () => {
    const store = createMemoryLockoutStore({ maxCountingKeys: 2, maxLockedKeys: 10 });
    for (const key of ['a', 'b', 'c']) for (let attempt = 0; attempt < 2; attempt += 1) await store.reserve(key, window, 1000);
    // 'a' was the oldest count when 'c' came: it starts again from zero and takes three more failures to lock.
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await store.reserve('a', window, 1000)).allowed).toBe(true);
    expect((await store.reserve('a', window, 1000)).allowed).toBe(false);
  });

  it('attempts given back (none hashed) push out only their own kind', async () => {
    const store = createMemoryLockoutStore({ maxCountingKeys: 2, maxLockedKeys: 10 });
    await store.reserve('kept', window, 1000);
    await store.reserve('kept', window, 1000);
    for (let index = 0; index < 1000; index += 1) {
      await store.reserve(`given-back-${index}`, window, 1000);
      await store.release(`given-back-${index}`, window, 1000);
    }
    await store.reserve('kept', window, 1000);
    expect((await store.reserve('kept', window, 1000)).allowed).toBe(false);
  });

  it('release undoes exactly one reservation, lifting a lock that reservation set', async () => {
    const store = createMemoryLockoutStore();
    for (let attempt = 0; attempt < 3; attempt += 1) await store.reserve('k', doubling, 1000);
    expect((await store.reserve('k', doubling, 1000)).allowed).toBe(false);
    await store.release('k', doubling, 1000);
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true, lockSecondsIfFailed: 60 });
    expect((await store.reserve('k', doubling, 1000)).allowed).toBe(false);
  });

  it('refuses attempts on untracked keys while full of live lockouts, and has room again once those locks end', async () => {
    const store = createMemoryLockoutStore({ maxCountingKeys: 100, maxLockedKeys: 2 });
    for (const key of ['x', 'y']) for (let attempt = 0; attempt < 3; attempt += 1) await store.reserve(key, doubling, 1000);
    expect(await store.reserve('new', doubling, 1000)).toEqual({ allowed: false, retryAfterSeconds: 60 });
    // The locks end after 60 s; their counts stay remembered (evictable), and new keys fit again.
    expect(await store.reserve('new', doubling, 1061)).toEqual({ allowed: true });
    expect(await store.reserve('x', doubling, 1061)).toEqual({ allowed: true, lockSecondsIfFailed: 120 });
    expect(await store.reserve('x', doubling, 1061)).toEqual({ allowed: false, retryAfterSeconds: 120 });
  });

  it('reset forgets failures and lock', async () => {
    const store = createMemoryLockoutStore();
    for (let attempt = 0; attempt < 3; attempt += 1) await store.reserve('k', doubling, 1000);
    await store.reset('k');
    expect(await store.reserve('k', doubling, 1000)).toEqual({ allowed: true });
  });
});
