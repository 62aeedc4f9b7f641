import { describe, expect, it } from 'vitest';
import { fixedClock } from '../clock.ts';
import { createLoginLockout } from './login-lockout.ts';
import { createMemoryLockoutStore } from './lockout-store.ts';

function lockoutUnderTest() {
  const clock = fixedClock();
  const lockout = createLoginLockout({
    store: createMemoryLockoutStore(),
    clock,
    maxFailures: 3,
    maxFailuresPerAccount: 100,
    streak: { maxFailures: 5, firstLockSeconds: 900, maxLockSeconds: 86_400, memorySeconds: 30 * 86_400 },
  });
  return { clock, lockout };
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'allowed',
    (error: { code?: string; details?: unknown }) => error.code,
  );
}

describe('login lockout: attempts given back', () => {
  it('an attempt given back past the limit takes back the lock its reservation set', async () => {
    const { clock, lockout } = lockoutUnderTest();
    for (let attempt = 0; attempt < 3; attempt += 1) await lockout.reserve('a@example.com', 'net-1');
    expect(await refusal(lockout.reserve('a@example.com', 'net-1'))).toBe('rate_limited');
    clock.advanceSeconds(60);
    // The fourth attempt would lock this network for 120 s; it is never evaluated (the client left while queued).
    const fourth = await lockout.reserve('a@example.com', 'net-1');
    expect(fourth.lockoutIfFailed).toEqual({ budget: 'network', seconds: 120 });
    await fourth.abandoned();
    expect(await refusal(lockout.reserve('a@example.com', 'net-1'))).toBe('allowed');
  });

  it('an attempt given back late does not lift the lock a later, evaluated attempt set', async () => {
    const { clock, lockout } = lockoutUnderTest();
    const early = await lockout.reserve('b@example.com', 'net-1'); // left waiting
    for (let attempt = 0; attempt < 2; attempt += 1) await lockout.reserve('b@example.com', 'net-1');
    clock.advanceSeconds(60);
    const evaluated = await lockout.reserve('b@example.com', 'net-1');
    expect(evaluated.lockoutIfFailed).toEqual({ budget: 'network', seconds: 120 });
    clock.advanceSeconds(10);
    await early.abandoned();
    expect(await refusal(lockout.reserve('b@example.com', 'net-1'))).toBe('rate_limited');
  });

  it('a refusal by a wider budget gives back the narrower ones', async () => {
    const { lockout } = lockoutUnderTest();
    // Two networks bring the account's streak to its limit of 5: the fifth attempt locks it.
    for (let attempt = 0; attempt < 2; attempt += 1) await lockout.reserve('c@example.com', 'net-1');
    for (let attempt = 0; attempt < 3; attempt += 1) await lockout.reserve('c@example.com', 'net-2');
    // net-3 is refused by the streak; its own count comes back, so once the streak is cleared it has all three tries.
    expect(await refusal(lockout.reserve('c@example.com', 'net-3'))).toBe('rate_limited');
    await lockout.forget('c@example.com');
    for (let attempt = 0; attempt < 3; attempt += 1) expect(await refusal(lockout.reserve('c@example.com', 'net-3'))).toBe('allowed');
    expect(await refusal(lockout.reserve('c@example.com', 'net-3'))).toBe('rate_limited');
  });
});
