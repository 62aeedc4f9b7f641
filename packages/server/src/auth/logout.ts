import { revokeAndDeny, type RevocationDeps } from './revocation.ts';

export async function logout(deps: RevocationDeps, auth: { userId: number; sessionId: string }, options: { all: boolean }): Promise<void> {
  // The auth guard already refused revoked sessions, so the current one is among those revoked here.
  if (options.all) await revokeAndDeny(deps, { userId: auth.userId }, 'logout_all');
  else await revokeAndDeny(deps, { sessionId: auth.sessionId }, 'logout');
}
