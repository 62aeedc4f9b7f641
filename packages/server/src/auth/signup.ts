import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { AppError, invalidInput } from '../errors.ts';
import type { JobOptions, PasswordHasher, PasswordPolicy } from '../passwords/index.ts';
import { isUniqueViolation } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { insertUser } from '../storage/users.ts';
import { normalizeEmail, toPublicUser, type PublicUser } from '../users/user.ts';

export interface SignupDeps {
  db: Kysely<Database>;
  clock: Clock;
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
}

export interface SignupInput {
  name: string;
  email: string;
  password: string;
}

/** What only an operator may choose (the CLI): roles beyond the default. */
export interface SignupOptions extends JobOptions {
  roles?: string[];
}

export const DEFAULT_ROLES = ['user'];

export async function signup(deps: SignupDeps, input: SignupInput, options: SignupOptions = {}): Promise<PublicUser> {
  const name = input.name.normalize('NFC').trim();
  const email = input.email.normalize('NFC').trim();
  if (name.length === 0) throw invalidInput([{ field: 'name', message: 'name must not be blank' }]);

  // The policy judges the password the hasher will store: NFKC, as NIST SP 800-63B-4 asks.
  const password = input.password.normalize('NFKC');
  const problem = await deps.passwordPolicy.check(password, { email, name });
  if (problem) throw invalidInput([{ field: 'password', message: problem.message }]);

  const { roles = DEFAULT_ROLES, ...jobOptions } = options;
  const passwordHash = await deps.hasher.hash(password, jobOptions);
  try {
    const row = await insertUser(deps.db, {
      email,
      emailNormalized: normalizeEmail(email),
      name,
      passwordHash,
      roles,
      now: deps.clock.nowSeconds(),
    });
    return toPublicUser(row);
  } catch (error) {
    // The unique index decides races: of two concurrent signups exactly one wins.
    if (isUniqueViolation(error)) throw new AppError('email_taken', 'email already registered');
    throw error;
  }
}
