import { isCommonPassword, loadCommonPasswords } from './common-passwords.ts';
import { isConsecutiveSequence, isKeyboardPattern, isRepeatedCharacter } from './sequences.ts';

/** NIST SP 800-63B-4 rules for a password used as the only factor: length and blocklists, no composition rules. */
export type PasswordRule =
  | 'too_short'
  | 'too_long'
  | 'contains_nul'
  | 'invalid_unicode'
  | 'common'
  | 'repeated_character'
  | 'sequence'
  | 'keyboard_pattern'
  | 'matches_identity';

export interface PasswordPolicyOptions {
  minLength: number; // Unicode code points
  maxLength: number; // Unicode code points
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
  check(password: string, identity: PasswordIdentity): PasswordProblem | null;
}

const LONE_SURROGATE = /\p{Cs}/u;

export function createPasswordPolicy(options: PasswordPolicyOptions): PasswordPolicy {
  const { minLength, maxLength, breachedCheck } = options;
  if (!(Number.isInteger(minLength) && minLength >= 1 && Number.isInteger(maxLength) && maxLength >= minLength)) {
    throw new RangeError(`invalid password length bounds: minLength ${minLength}, maxLength ${maxLength}`);
  }
  // Load the list now, at startup, rather than inside the first signup request.
  if (breachedCheck) loadCommonPasswords();

  return {
    check(password, identity) {
      if (password.includes('\u0000')) return problem('contains_nul', 'password must not contain a NUL character');
      // A lone surrogate reaches the hasher as U+FFFD, so distinct passwords would share one hash.
      if (LONE_SURROGATE.test(password)) return problem('invalid_unicode', 'password must be valid Unicode text');
      // Code points, not UTF-16 units: an emoji is one character to the user.
      const length = [...password].length;
      if (length < minLength) return problem('too_short', `password must be at least ${minLength} characters`);
      if (length > maxLength) return problem('too_long', `password must be at most ${maxLength} characters`);

      const lowercase = password.toLowerCase();
      // Specific patterns first: "password is a keyboard pattern" tells the user more than "commonly used".
      if (isRepeatedCharacter(lowercase)) return problem('repeated_character', 'password is a single character repeated');
      if (isConsecutiveSequence(lowercase)) return problem('sequence', 'password is a sequence of consecutive characters');
      if (isKeyboardPattern(lowercase)) return problem('keyboard_pattern', 'password is a row of keys on the keyboard');
      if (matchesIdentity(lowercase, identity)) return problem('matches_identity', 'password must not be your email address or name');
      if (breachedCheck && isCommonPassword(lowercase)) return problem('common', 'password is a commonly used password');
      return null;
    },
  };
}

function matchesIdentity(lowercasePassword: string, identity: PasswordIdentity): boolean {
  const candidate = lowercasePassword.trim();
  const email = identity.email?.trim().toLowerCase() ?? '';
  const emailLocalPart = email.includes('@') ? email.slice(0, email.lastIndexOf('@')).trim() : '';
  const name = identity.name?.trim().toLowerCase() ?? '';
  return [email, emailLocalPart, name].some((identityValue) => identityValue !== '' && identityValue === candidate);
}

function problem(rule: PasswordRule, message: string): PasswordProblem {
  return { rule, message };
}
