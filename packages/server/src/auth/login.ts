import { checkReserved, type LoginLockout } from '../abuse/login-lockout.ts';
import { AppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import { findUserByNormalizedEmail, updatePasswordHash } from '../storage/users.ts';
import { normalizeEmail, parseRoles, toPublicUser, type PublicUser } from '../users/user.ts';
import { startSession, type SessionDeps, type SessionTokens } from './sessions.ts';

export interface LoginDeps extends SessionDeps {
  hasher: PasswordHasher;
  loginLockout: LoginLockout;
}

export interface LoginResult {
  user: PublicUser;
  tokens: SessionTokens;
}

export async function login(
  deps: LoginDeps,
  input: { email: string; password: string },
  client: { network: string },
  options: JobOptions = {},
): Promise<LoginResult> {
  const emailNormalized = normalizeEmail(input.email);
  // Counted before the password is checked: concurrent guesses cannot outrun the limit.
  const attempt = await deps.loginLockout.reserve(emailNormalized, client.network);
  const user = await findUserByNormalizedEmail(deps.db, emailNormalized);
  if (!user) {
    // Hash the password anyway so an unknown email costs what a wrong password costs.
    await checkReserved(attempt, () => deps.hasher.verifyDummy(input.password, options));
    throw invalidCredentials(input.email);
  }
  const verified = await checkReserved(attempt, () => deps.hasher.verify(user.password_hash, input.password, options));
  // Disabled accounts get the same answer, after the same work, as a wrong password.
  if (!verified.matches || user.disabled_at !== null) throw invalidCredentials(input.email);
  await attempt.succeeded();

  if (verified.needsRehash) {
    // Imported (werkzeug, bcrypt), outdated or un-normalised hashes become Argon2id of the NFKC form once the password is known.
    await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(input.password), deps.clock.nowSeconds());
  }
  const tokens = await startSession(deps, { userId: Number(user.id), email: user.email, roles: parseRoles(user.roles) });
  return { user: toPublicUser(user), tokens };
}

/** The seed echoes the email (never the password) in the failure body. */
function invalidCredentials(email: string): AppError {
  return new AppError('invalid_credentials', 'incorrect user email or password', { data: { email } });
}
