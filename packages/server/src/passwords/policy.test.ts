import { describe, expect, it } from 'vitest';
import { loadCommonPasswords } from './common-passwords.ts';
import { createPasswordPolicy } from './policy.ts';
import type { PasswordRule } from './policy.ts';

const defaultPolicy = createPasswordPolicy({ minLength: 15, maxLength: 1024, breachedCheck: true });
const identity = { email: 'Ada.Lovelace@example.com', name: 'Ada Lovelace Byron' };

function ruleBroken(password: string, policy = defaultPolicy): PasswordRule | undefined {
  return policy.check(password, identity)?.rule;
}

describe('acceptable passwords', () => {
  it.each([
    'correct horse battery staple',
    'tr0ub4dor&3 is not long enough alone',
    'the quick brown fox jumps',
    'зелёный чай без сахара',
    'ada lovelace wrote the first program',
  ])('accepts %j', (password) => {
    expect(defaultPolicy.check(password, identity)).toBeNull();
  });

  it('accepts the seed password test123 when the breached check is off', () => {
    const seedPolicy = createPasswordPolicy({ minLength: 6, maxLength: 1024, breachedCheck: false });
    expect(seedPolicy.check('test123', {})).toBeNull();
  });

  it('imposes no composition rules: all lowercase letters are fine', () => {
    expect(defaultPolicy.check('abcdefghijklmnq', {})).toBeNull();
  });
});

describe('length', () => {
  it('rejects passwords shorter than the minimum, naming the minimum', () => {
    expect(defaultPolicy.check('fourteen chars', identity)).toEqual({
      rule: 'too_short',
      message: 'password must be at least 15 characters',
    });
  });

  it('counts Unicode code points, not UTF-16 units', () => {
    const policy = createPasswordPolicy({ minLength: 4, maxLength: 5, breachedCheck: false });
    expect(policy.check('🔑🔒🗝', {})?.rule).toBe('too_short'); // 3 code points, 6 UTF-16 units
    expect(policy.check('🔑🔒🗝🚪', {})).toBeNull();
    expect(policy.check('🔑🔒🗝🚪🏠', {})).toBeNull();
    expect(policy.check('🔑🔒🗝🚪🏠x', {})?.rule).toBe('too_long');
  });

  it('rejects passwords longer than the maximum instead of truncating', () => {
    const policy = createPasswordPolicy({ minLength: 15, maxLength: 128, breachedCheck: true });
    expect(policy.check('correct horse battery staple '.repeat(5), {})).toEqual({
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
    ['passwordpassword', 'common'],
    ['1qaz2wsx3edc4rfv', 'common'],
  ])('%j breaks %s', (password, rule) => {
    expect(ruleBroken(password)).toBe(rule);
  });

  it("matches the email's local part", () => {
    const policy = createPasswordPolicy({ minLength: 6, maxLength: 1024, breachedCheck: false });
    expect(policy.check('Ada.Lovelace', identity)?.rule).toBe('matches_identity');
  });

  it('checks NUL before length', () => {
    expect(ruleBroken('\u0000')).toBe('contains_nul');
  });

  it('checks length before patterns', () => {
    expect(ruleBroken('aaaa')).toBe('too_short');
  });

  it('explains every rule to a human', () => {
    const messages = ['aaaaaaaaaaaaaaa', '123456789012345', 'qwertyuiopqwerty', 'ada lovelace byron', 'passwordpassword', 'a\u0000'].map(
      (password) => defaultPolicy.check(password, identity)?.message,
    );
    expect(messages).toEqual([
      'password is a single character repeated',
      'password is a sequence of consecutive characters',
      'password is a row of keys on the keyboard',
      'password must not be your email address or name',
      'password is a commonly used password',
      'password must not contain a NUL character',
    ]);
  });
});

describe('common password list', () => {
  it('holds tens of thousands of lowercase entries', () => {
    const commonPasswords = loadCommonPasswords();
    expect(commonPasswords.size).toBeGreaterThan(30_000);
    expect(commonPasswords.has('test123')).toBe(true);
    expect(commonPasswords.has('correct horse battery staple')).toBe(false);
  });

  it('compares case-insensitively', () => {
    expect(ruleBroken('PasswordPassword')).toBe('common');
  });

  it('is skipped when the breached check is off', () => {
    const policy = createPasswordPolicy({ minLength: 15, maxLength: 1024, breachedCheck: false });
    expect(policy.check('passwordpassword', {})).toBeNull();
  });
});
