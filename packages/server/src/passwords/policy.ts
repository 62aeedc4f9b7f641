import { isConsecutiveSequence, isKeyboardPattern, isRepeatedCharacter } from './sequences.ts';
import { estimateStrength } from './strength-estimator.ts';

/**
 * NIST SP 800-63B-4 rules for a password used as the only factor: length, blocklists and a
 * strength estimate (zxcvbn-ts), no composition rules.
 */
export type PasswordRule =
  | 'too_short'
  | 'too_long'
  | 'contains_nul'
  | 'invalid_unicode'
  | 'repeated_character'
  | 'sequence'
  | 'keyboard_pattern'
  | 'matches_identity'
  | 'common'
  | 'guessable';

export interface PasswordPolicyOptions {
  minLength: number; // Unicode code points
  maxLength: number; // Unicode code points
  /** The common/breached password list and the strength estimator built on it (PASSWORD_BREACHED_CHECK). */
  breachedCheck: boolean;
}

export interface PasswordProblem {
  rule: PasswordRule;
  message: string;
}

export interface PasswordIdentity {
  email?: string;
  name?: string;
}

export interface PasswordPolicy {
  /** The first problem found, or null when the password is acceptable. */
  check(password: string, identity: PasswordIdentity): Promise<PasswordProblem | null>;
}

const LONE_SURROGATE = /\p{Cs}/u;

export function createPasswordPolicy(options: PasswordPolicyOptions): PasswordPolicy {
  const { minLength, maxLength, breachedCheck } = options;
  if (!(Number.isInteger(minLength) && minLength >= 1 && Number.isInteger(maxLength) && maxLength >= minLength)) {
    throw new RangeError(`invalid password length bounds: minLength ${minLength}, maxLength ${maxLength}`);
  }

  return {
    async check(password, identity) {
      const problem = checkWithoutEstimator(password, identity, minLength, maxLength);
      if (problem || !breachedCheck) return problem;
      const estimate = await estimateStrength(password, userInputs(identity));
      if (!estimate.guessable) return null;
      const rule = estimate.commonPassword ? 'common' : 'guessable';
      return { rule, message: `password is too easy to guess - ${estimate.feedback.join(' ')}`.trim() };
    },
  };
}

/** The cheap rules, answered on the spot; they hold even with the breached check off (the seed's setting). */
function checkWithoutEstimator(password: string, identity: PasswordIdentity, minLength: number, maxLength: number): PasswordProblem | null {
  if (password.includes('\u0000')) return problem('contains_nul', 'password must not contain a NUL character');
  // A lone surrogate reaches the hasher as U+FFFD, so distinct passwords would share one hash.
  if (LONE_SURROGATE.test(password)) return problem('invalid_unicode', 'password must be valid Unicode text');
  // Code points, not UTF-16 units: an emoji is one character to the user.
  const length = [...password].length;
  if (length < minLength) return problem('too_short', `password must be at least ${minLength} characters`);
  if (length > maxLength) return problem('too_long', `password must be at most ${maxLength} characters`);

  const lowercase = password.toLowerCase();
  // Specific patterns first: "password is a keyboard pattern" tells the user more than "too easy to guess".
  if (isRepeatedCharacter(lowercase)) return problem('repeated_character', 'password is a single character repeated');
  if (isConsecutiveSequence(lowercase)) return problem('sequence', 'password is a sequence of consecutive characters');
  if (isKeyboardPattern(lowercase)) return problem('keyboard_pattern', 'password is a row of keys on the keyboard');
  if (matchesIdentity(lowercase, identity)) return problem('matches_identity', 'password must not be your email address or name');
  return null;
}

function matchesIdentity(lowercasePassword: string, identity: PasswordIdentity): boolean {
  const candidate = lowercasePassword.trim();
  return identityValues(identity).some((identityValue) => identityValue === candidate);
}

/** The email, its local part and the name, lowercased and trimmed, without empty ones. */
function identityValues(identity: PasswordIdentity): string[] {
  const email = identity.email?.trim().toLowerCase() ?? '';
  const emailLocalPart = email.includes('@') ? email.slice(0, email.lastIndexOf('@')).trim() : '';
  const name = identity.name?.trim().toLowerCase() ?? '';
  return [email, emailLocalPart, name].filter((value) => value !== '');
}

// zxcvbn matches each input as a dictionary word inside the password, so the parts count too: "lovelace1815".
function userInputs(identity: PasswordIdentity): string[] {
  const values = identityValues(identity);
  const parts = values.flatMap((value) => value.split(/[\s.@_+-]+/u)).filter((part) => part.length >= 3);
  return [...new Set([...values, ...parts])];
}

function problem(rule: PasswordRule, message: string): PasswordProblem {
  return { rule, message };
}
