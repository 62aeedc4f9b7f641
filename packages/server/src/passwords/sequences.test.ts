import { describe, expect, it } from 'vitest';
import { isConsecutiveSequence, isKeyboardPattern, isRepeatedCharacter } from './sequences.ts';

describe('isRepeatedCharacter', () => {
  it.each(['aaaaaaaaaaaaaaa', '111111', '🔑🔑🔑🔑'])('matches %j', (password) => {
    expect(isRepeatedCharacter(password)).toBe(true);
  });

  it.each(['a', 'aaaaaaaaaaaaaab', 'abababab'])('does not match %j', (password) => {
    expect(isRepeatedCharacter(password)).toBe(false);
  });
});

describe('isConsecutiveSequence', () => {
  it.each(['123456789012345', '1234567890123', '987654321098765', 'abcdefghijklmno', 'zyxwvutsrqponml', 'xyzabcdefghijkl', '890123'])(
    'matches %j',
    (password) => {
      expect(isConsecutiveSequence(password)).toBe(true);
    },
  );

  it.each(['12', '1234567899', '135791357913579', 'abcdefghijklmnz', 'abc123', '123abc', 'abcba', 'correct horse battery staple'])(
    'does not match %j',
    (password) => {
      expect(isConsecutiveSequence(password)).toBe(false);
    },
  );
});

describe('isKeyboardPattern', () => {
  it.each([
    'qwertyuiop',
    'qwertyuiopqwerty',
    'asdfghjklasdfgh',
    'poiuytrewqpoiuy',
    'tyuiopqwertyuio',
    'zxcvbnm,./zxcvb',
    '`1234567890-=`1',
    '!@#$%^&*()_+!@#',
    'qwqwqwqwqwqwqwqw',
  ])('matches %j', (password) => {
    expect(isKeyboardPattern(password)).toBe(true);
  });

  it.each(['qw', 'qwertyasdfgh', 'qazwsxedcrfvtgb', 'correct horse battery staple', 'qwertyuiopqwertz'])('does not match %j', (password) => {
    expect(isKeyboardPattern(password)).toBe(false);
  });

  it('stays fast on the longest allowed passwords', () => {
    expect(isKeyboardPattern('q'.repeat(4095) + 'w')).toBe(false);
  });
});
