import { checkReserved, type LoginLockout } from '../abuse/login-lockout.ts';
import { AppError, isAppError } from '../errors.ts';
import type { JobOptions, PasswordHasher } from '../passwords/index.ts';
import { findUserByNormalizedEmail, updatePasswordHash } from '../storage/users.ts';
import { normalizeEmail, parseRoles, toPublicUser, type PublicUser } from '../users/user.ts';
import { DEFAULT_CLIENT_ID } from '../clients/clients.ts';
import { startSession, type SessionClient, type SessionDeps, type SessionTokens } from './sessions.ts';

export interface LoginDeps extends SessionDeps {
  hasher: PasswordHasher;
  loginLockout: LoginLockout;
}

export interface LoginResult {
  user: PublicUser;
  tokens: SessionTokens;
}

const DEFAULT_SESSION_CLIENT: SessionClient = Object.freeze({ clientId: DEFAULT_CLIENT_ID, audience: null });

/**
 * Email and password for a new session. `sessionClient` (the client signed in through and the
 * audience asked for) has been checked by the caller: a public client named by /login, or the client
 * the token endpoint identified or authenticated.
 */
export async function login(
  deps: LoginDeps,
  input: { email: string; password: string; sessionClient?: SessionClient },
  client: { network: string },
  options: JobOptions = {},
): Promise<LoginResult> {
  const emailNormalized = normalizeEmail(input.email);
  // Counted before the password is checked: concurrent guesses cannot outrun the limit.
  const attempt = await deps.loginLockout.reserve(emailNormalized, client.network);
  const { user, verified } = await checkReserved(attempt, async (onStarted) => {
    const jobOptions = { ...options, onStarted };
    const found = await findUserByNormalizedEmail(deps.db, emailNormalized);
    // Hash the password anyway so an unknown email costs what a wrong password costs.
    if (!found) {
      await deps.hasher.verifyDummy(input.password, jobOptions);
      return { user: undefined, verified: undefined };
    }
    return { user: found, verified: await deps.hasher.verify(found.password_hash, input.password, jobOptions) };
  });
  // Disabled accounts get the same answer, after the same work, as a wrong password.
  if (!user || !verified?.matches || user.disabled_at !== null) throw invalidCredentials(input.email);
  await attempt.succeeded();

  if (verified.needsRehash) {
    // Imported (werkzeug, bcrypt), outdated or un-normalised hashes become Argon2id of the NFKC form once the
    // password is known. Best effort: a full hashing queue must not turn a verified login into a 503.
    await rehash(deps, user.id, input.password);
  }
  const tokens = await startSession(deps, { userId: Number(user.id), email: user.email, roles: parseRoles(user.roles) }, input.sessionClient ?? DEFAULT_SESSION_CLIENT);
  return { user: toPublicUser(user), tokens };
}

async function rehash(deps: LoginDeps, userId: number, password: string): Promise<void> {
  let passwordHash: string;
  try {
    passwordHash = await deps.hasher.hash(password);
  } catch (error) {
    if (isAppError(error, 'unavailable')) return; // the next login tries again
    throw error;
  }
  await updatePasswordHash(deps.db, userId, passwordHash, deps.clock.nowSeconds());
}

/** The seed echoes the email (never the password) in the failure body. */
function invalidCredentials(email: string): AppError {
  return new AppError('invalid_credentials', 'incorrect user email or password', { data: { email } });
}
