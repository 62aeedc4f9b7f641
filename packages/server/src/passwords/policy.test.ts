import { describe, expect, it } from 'vitest';
import { createPasswordPolicy } from './policy.ts';
import type { PasswordRule } from './policy.ts';
import { ESTIMATED_PREFIX_LENGTH, estimateStrength } from './strength-estimator.ts';

const defaultPolicy = createPasswordPolicy({ minLength: 15, maxLength: 1024, breachedCheck: true });
const identity = { email: 'Ada.Lovelace@example.com', name: 'Ada Lovelace Byron' };

async function ruleBroken(password: string, policy = defaultPolicy): Promise<PasswordRule | undefined> {
  return (await policy.check(password, identity))?.rule;
}

// Starting the estimator's worker and unpacking its dictionaries takes about a second, more on a busy machine.
const ESTIMATOR_TIMEOUT = 30_000;

describe('acceptable passwords', () => {
  it.each([
    'correct horse battery staple',
    'a brand new long passphrase',
    'purple elephants dance quietly at midnight',
    'tr0ub4dor&3 is not long enough alone',
    'the quick brown fox jumps',
    'зелёный чай без сахара',
    'ada lovelace wrote the first program',
    'tangerine owlxy',
    'analytical engine notes, 1843',
    'a moth found in relay seventy',
  ])('accepts %j', async (password) => {
    expect(await defaultPolicy.check(password, identity)).toBeNull();
  }, ESTIMATOR_TIMEOUT);

  it('accepts the seed password test123 when the breached check is off', async () => {
    const seedPolicy = createPasswordPolicy({ minLength: 6, maxLength: 1024, breachedCheck: false });
    expect(await seedPolicy.check('test123', {})).toBeNull();
  });

  it('imposes no composition rules: a long all-lowercase passphrase is fine', async () => {
    expect(await defaultPolicy.check('goto considered harmful letter', {})).toBeNull();
  }, ESTIMATOR_TIMEOUT);
});

describe('length', () => {
  it('rejects passwords shorter than the minimum, naming the minimum', async () => {
    expect(await defaultPolicy.check('fourteen chars', identity)).toEqual({
      rule: 'too_short',
      message: 'password must be at least 15 characters',
    });
  });

  it('counts Unicode code points, not UTF-16 units', async () => {
    const policy = createPasswordPolicy({ minLength: 4, maxLength: 5, breachedCheck: false });
    expect((await policy.check('🔑🔒🗝', {}))?.rule).toBe('too_short'); // 3 code points, 6 UTF-16 units
    expect(await policy.check('🔑🔒🗝🚪', {})).toBeNull();
    expect(await policy.check('🔑🔒🗝🚪🏠', {})).toBeNull();
    expect((await policy.check('🔑🔒🗝🚪🏠x', {}))?.rule).toBe('too_long');
  });

  it('rejects passwords longer than the maximum instead of truncating', async () => {
    const policy = createPasswordPolicy({ minLength: 15, maxLength: 128, breachedCheck: true });
    expect(await policy.check('correct horse battery staple '.repeat(5), {})).toEqual({
      rule: 'too_long',
      message: 'password must be at most 128 characters',
    });
  });

  it('refuses nonsensical bounds', () => {
    expect(() => createPasswordPolicy({ minLength: 0, maxLength: 10, breachedCheck: false })).toThrow(RangeError);
    expect(() => createPasswordPolicy({ minLength: 20, maxLength: 10, breachedCheck: false })).toThrow(RangeError);
  });
});

describe('each rule', () => {
  it.each<[string, PasswordRule]>([
    ['correct horse\u0000battery staple', 'contains_nul'],
    ['aaaaaaaaaaaaaaa', 'repeated_character'],
    ['AaAaAaAaAaAaAaAa', 'repeated_character'],
    ['123456789012345', 'sequence'],
    ['abcdefghijklmno', 'sequence'],
    ['ZYXWVUTSRQPONML', 'sequence'],
    ['987654321098765', 'sequence'],
    ['qwertyuiopqwerty', 'keyboard_pattern'],
    ['asdfghjklasdfgh', 'keyboard_pattern'],
    ['ada.lovelace@example.com', 'matches_identity'],
    ['  ADA.LOVELACE@EXAMPLE.COM ', 'matches_identity'],
    ['ada lovelace byron', 'matches_identity'],
    ['1qaz2wsx3edc4rfv', 'common'],
    ['PasswordPassword', 'common'],
    ['Password1234567!', 'guessable'],
  ])('%j breaks %s', async (password, rule) => {
    expect(await ruleBroken(password)).toBe(rule);
  }, ESTIMATOR_TIMEOUT);

  it("matches the email's local part", async () => {
    const policy = createPasswordPolicy({ minLength: 6, maxLength: 1024, breachedCheck: false });
    expect((await policy.check('Ada.Lovelace', identity))?.rule).toBe('matches_identity');
  });

  it('checks NUL before length', async () => {
    expect(await ruleBroken('\u0000')).toBe('contains_nul');
  });

  it('checks length before patterns', async () => {
    expect(await ruleBroken('aaaa')).toBe('too_short');
  });

  it('explains every own rule to a human', async () => {
    const passwords = ['aaaaaaaaaaaaaaa', '123456789012345', 'qwertyuiopqwerty', 'ada lovelace byron', 'a\u0000'];
    const messages = await Promise.all(passwords.map(async (password) => (await defaultPolicy.check(password, identity))?.message));
    expect(messages).toEqual([
      'password is a single character repeated',
      'password is a sequence of consecutive characters',
      'password is a row of keys on the keyboard',
      'password must not be your email address or name',
      'password must not contain a NUL character',
    ]);
  });
});

describe('strength estimate (zxcvbn-ts)', () => {
  // Each passed the length and pattern rules before the estimator came in (issue 8).
  it.each([
    ['qwertyuiopasdfgh', 'This is similar to a commonly used password.'],
    ['Password1234567!', 'This is similar to a commonly used password.'],
    ['qwertyuiop123456', 'This is similar to a commonly used password.'],
    ['password12345678', 'This is similar to a commonly used password.'],
    ['letmeinletmein12', 'Repeated character patterns like "abcabcabc" are easy to guess.'],
  ])('refuses the near miss %j with feedback', async (password, warning) => {
    const problem = await defaultPolicy.check(password, identity);
    expect(problem?.rule).toBe('guessable');
    expect(problem?.message).toMatch(/^password is too easy to guess - [A-Z][^;]+\.$/);
    expect(problem?.message).toContain(warning);
    expect(problem?.message).toContain('Add more words that are less common.');
  }, ESTIMATOR_TIMEOUT);

  it.each(['P@ssw0rd12345678', 'l3tm31nl3tm31n12', 'iloveyou12345678', 'Summer2024Summer2024', 'monkeymonkey1234'])(
    'refuses the variant %j',
    async (password) => {
      expect(await ruleBroken(password)).toBe('guessable');
    },
    ESTIMATOR_TIMEOUT,
  );

  it('names a whole-password hit on the common password list as such', async () => {
    const policy = createPasswordPolicy({ minLength: 8, maxLength: 1024, breachedCheck: true });
    expect(await policy.check('iloveyou', {})).toEqual({
      rule: 'common',
      message: 'password is too easy to guess - This is a frequently used password. Add more words that are less common.',
    });
    expect((await policy.check('ILoveYou', {}))?.rule).toBe('common');
    expect(await policy.check('dkflbvbh', {})).toEqual({
      rule: 'common',
      message: 'password is too easy to guess - This is a commonly used password. Add more words that are less common.',
    });
  }, ESTIMATOR_TIMEOUT);

  it('counts the email, its local part and the name as easy to guess', async () => {
    const policy = createPasswordPolicy({ minLength: 15, maxLength: 1024, breachedCheck: true });
    const password = 'Ada.Lovelace2024';
    expect(await policy.check(password, {})).toBeNull();
    const problem = await policy.check(password, identity);
    expect(problem?.rule).toBe('guessable');
    expect(problem?.message).toContain('There should not be any personal or page related data.');
  }, ESTIMATOR_TIMEOUT);

  it('is skipped, with the common password list, when the breached check is off', async () => {
    const policy = createPasswordPolicy({ minLength: 8, maxLength: 1024, breachedCheck: false });
    expect(await policy.check('iloveyou', {})).toBeNull();
    expect(await policy.check('Password1234567!', {})).toBeNull();
    // The own pattern and identity rules still hold.
    expect((await policy.check('qwertyuiop', {}))?.rule).toBe('keyboard_pattern');
    expect((await policy.check('Ada.Lovelace@example.com', identity))?.rule).toBe('matches_identity');
  });

  it(`estimates the first ${ESTIMATED_PREFIX_LENGTH} characters only: a weak prefix refuses, a strong one accepts`, async () => {
    const strongPrefix = 'purple elephants dance quietly at midnight, then sleep until noon';
    expect([...strongPrefix].length).toBeGreaterThanOrEqual(ESTIMATED_PREFIX_LENGTH);
    expect(await defaultPolicy.check(strongPrefix + 'password'.repeat(100), {})).toBeNull();
    expect((await defaultPolicy.check('password'.repeat(8) + 'purple elephants dance quietly at midnight', {}))?.rule).toBe('guessable');
  }, ESTIMATOR_TIMEOUT);

  it('answers for a 1024-character password within a second', async () => {
    const longest = 'aB3$'.repeat(256);
    await estimateStrength('warm up the worker', []);
    const started = performance.now();
    const problem = await defaultPolicy.check(longest, {});
    const elapsedMilliseconds = performance.now() - started;
    expect(problem?.rule).toBe('guessable');
    expect(elapsedMilliseconds).toBeLessThan(5_000); // generous for a shared CI machine; typically ≈0.4 s
  }, ESTIMATOR_TIMEOUT);

  it('does not block the event loop while it estimates', async () => {
    await estimateStrength('warm up the worker', []);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await Promise.all(Array.from({ length: 4 }, (_, index) => estimateStrength(`${'1a2b3c4d5e6f7g8h'.repeat(4)}${index}`, [])));
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(10);
  }, ESTIMATOR_TIMEOUT);
});
