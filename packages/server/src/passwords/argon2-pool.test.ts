import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createArgon2Pool, type Argon2Pool } from './argon2-pool.ts';

const CHEAP = { algorithm: 2, memoryCost: 1024, timeCost: 1, parallelism: 1 } as const;

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

describe('argon2 pool', () => {
  let pool: Argon2Pool;
  afterEach(() => pool.close());

  it('hashes and verifies more jobs than it has workers', async () => {
    pool = createArgon2Pool(2);
    const passwords = Array.from({ length: 7 }, (_, index) => `password number ${index}`);
    const hashes = await Promise.all(passwords.map((password) => pool.hash(password, CHEAP)));
    expect(new Set(hashes).size).toBe(7);
    const checks = await Promise.all(hashes.map((hash, index) => pool.verify(hash, passwords[(index + 1) % 7]!)));
    expect(checks).toEqual(Array(7).fill(false));
    expect(await pool.verify(hashes[3]!, passwords[3]!)).toBe(true);
  });

  it('turns a binding error into a rejection, not a crash', async () => {
    pool = createArgon2Pool(1);
    await expect(pool.verify('$argon2id$not-a-hash', 'x')).rejects.toThrow();
    expect(typeof (await pool.hash('still alive', CHEAP))).toBe('string');
  });

  it.runIf(process.platform === 'linux')('runs its workers at nice 19 while the event loop keeps its priority', async () => {
    const before = threadNiceValues().filter((nice) => nice === 19).length;
    pool = createArgon2Pool(2);
    await Promise.all([pool.hash('a', CHEAP), pool.hash('b', CHEAP)]);
    expect(threadNiceValues().filter((nice) => nice === 19).length - before).toBeGreaterThanOrEqual(2);
    const mainThread = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    expect(Number(mainThread[16])).toBe(0);
  });
});
