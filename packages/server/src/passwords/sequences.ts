/**
 * Whole-password pattern checks. Each takes the password already lowercased and reports
 * whether the entire password (not a part of it) is the pattern.
 */

const DIGITS = '0123456789';
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

// US QWERTY rows, unshifted and shifted (the shifted ones lowercased, as the password is).
const KEYBOARD_ROWS = [
  '`1234567890-=',
  'qwertyuiop[]\\',
  "asdfghjkl;'",
  'zxcvbnm,./',
  '~!@#$%^&*()_+',
  'qwertyuiop{}|',
  'asdfghjkl:"',
  'zxcvbnm<>?',
];
const KEYBOARD_ROWS_BOTH_DIRECTIONS = KEYBOARD_ROWS.flatMap((row) => [row, [...row].reverse().join('')]);
const LONGEST_KEYBOARD_ROW = Math.max(...KEYBOARD_ROWS.map((row) => row.length));

export function isRepeatedCharacter(password: string): boolean {
  const characters = [...password];
  return characters.length >= 2 && characters.every((character) => character === characters[0]);
}

/** An ascending or descending run of digits or letters; 0 follows 9 and a follows z, so "8901234…" counts. */
export function isConsecutiveSequence(password: string): boolean {
  const characters = [...password];
  if (characters.length < 3) return false;
  const alphabet = [DIGITS, LETTERS].find((candidate) => candidate.includes(characters[0]!));
  if (alphabet === undefined) return false;
  const positions = characters.map((character) => alphabet.indexOf(character));
  if (positions.includes(-1)) return false;
  const step = cyclicDifference(positions[1]!, positions[0]!, alphabet.length);
  if (step !== 1 && step !== alphabet.length - 1) return false;
  return positions.every((position, index) => index === 0 || cyclicDifference(position, positions[index - 1]!, alphabet.length) === step);
}

/**
 * A contiguous piece of one keyboard row, either direction, possibly repeated:
 * "qwertyuiop", "poiuytrewq", "asdfghjklasdfgh", and rotations like "tyuiopqwertyuio".
 */
export function isKeyboardPattern(password: string): boolean {
  const characters = [...password];
  if (characters.length < 3) return false;
  // The repeating block of a keyboard pattern is at most one row long, so only short periods need checking.
  const longestPeriod = Math.min(characters.length, LONGEST_KEYBOARD_ROW);
  for (let period = 2; period <= longestPeriod; period++) {
    if (!hasPeriod(characters, period)) continue;
    const block = characters.slice(0, period).join('');
    if (anyRotationIsOnKeyboardRow(block)) return true;
  }
  return false;
}

function cyclicDifference(later: number, earlier: number, alphabetLength: number): number {
  return (later - earlier + alphabetLength) % alphabetLength;
}

function hasPeriod(characters: string[], period: number): boolean {
  for (let index = period; index < characters.length; index++) {
    if (characters[index] !== characters[index - period]) return false;
  }
  return true;
}

// A block repeated cyclically can start anywhere in it: "tyuiopqwer" repeats the row piece "qwertyuiop".
function anyRotationIsOnKeyboardRow(block: string): boolean {
  for (let start = 0; start < block.length; start++) {
    const rotation = block.slice(start) + block.slice(0, start);
    if (KEYBOARD_ROWS_BOTH_DIRECTIONS.some((row) => row.includes(rotation))) return true;
  }
  return false;
}
