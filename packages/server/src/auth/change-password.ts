import { AppError, invalidInput } from '../errors.ts';
import type { PasswordHasher, PasswordPolicy } from '../passwords/index.ts';
import { findUserById, updatePasswordHash } from '../storage/users.ts';
import { revokeAndDeny, type RevocationDeps } from './revocation.ts';

export interface ChangePasswordDeps extends RevocationDeps {
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
}

/** Verifies the current password, stores the new one, and ends every other session of the user. */
export async function changePassword(
  deps: ChangePasswordDeps,
  auth: { userId: number; sessionId: string },
  input: { current_password: string; new_password: string },
): Promise<void> {
  const user = await findUserById(deps.db, auth.userId);
  if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
  if (!(await deps.hasher.verify(user.password_hash, input.current_password))) {
    throw new AppError('wrong_password', 'current password is incorrect');
  }
  const problem = await deps.passwordPolicy.check(input.new_password, { email: user.email, name: user.name });
  if (problem) throw invalidInput([{ field: 'new_password', message: problem.message.replace(/^password/, 'new_password') }]);
  if (input.new_password === input.current_password) {
    throw invalidInput([{ field: 'new_password', message: 'new_password must differ from current_password' }]);
  }
  await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(input.new_password), deps.clock.nowSeconds());
  await revokeAndDeny(deps, { userId: user.id, exceptSessionId: auth.sessionId }, 'password_change');
}
