import { checkReserved, type LoginLockout } from '../abuse/login-lockout.ts';
import { AppError, invalidInput } from '../errors.ts';
import type { JobOptions, PasswordHasher, PasswordPolicy } from '../passwords/index.ts';
import { findUserById, updatePasswordHash } from '../storage/users.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';

export interface ChangePasswordDeps extends RevocationDeps {
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
  /** Its own budgets (scope password-change), keyed by user id: a stolen access token is no free password oracle. */
  passwordChangeLockout: LoginLockout;
}

/**
 * Verifies the current password, stores the new one, and ends every other session of the user.
 * Everything that can be said about the new password is said before the current one is checked,
 * so no answer depends on whether a guessed current password was right except the success itself,
 * and every check of it is counted first.
 */
export async function changePassword(
  deps: ChangePasswordDeps,
  auth: { userId: number; sessionId: string },
  input: { current_password: string; new_password: string },
  client: { network: string },
  options: JobOptions = {},
): Promise<void> {
  const user = await findUserById(deps.db, auth.userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  // The hasher stores NFKC forms, so the policy and the comparison judge those too.
  const newPassword = input.new_password.normalize('NFKC');
  const problem = await deps.passwordPolicy.check(newPassword, { email: user.email, name: user.name });
  if (problem) throw invalidInput([{ field: 'new_password', message: problem.message.replace(/^password/, 'new_password') }]);
  if (newPassword === input.current_password.normalize('NFKC')) {
    throw invalidInput([{ field: 'new_password', message: 'new_password must differ from current_password' }]);
  }
  const attempt = await deps.passwordChangeLockout.reserve(`user:${user.id}`, client.network);
  const verified = await checkReserved(attempt, (onStarted) => deps.hasher.verify(user.password_hash, input.current_password, { ...options, onStarted }));
  if (!verified.matches) {
    throw new AppError('wrong_password', 'current password is incorrect');
  }
  await attempt.succeeded();
  await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(newPassword, options), deps.clock.nowSeconds());
  await revokeAndDeny(deps, { userId: user.id, exceptSessionId: auth.sessionId }, 'password_change');
}
