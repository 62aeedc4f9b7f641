import type { FastifyRequest } from 'fastify';
import { checkAccessToken, type AccessCheckDeps } from '../auth/access-check.ts';
import { AppError } from '../errors.ts';
import type { UserAccessClaims } from '../tokens/access-tokens.ts';
import { ADMIN_ROLE } from '../users/admin.ts';

declare module 'fastify' {
  interface FastifyRequest {
    auth: UserAccessClaims | null;
  }
}

const BEARER = /^Bearer +(\S+)\s*$/i;

/** The token from x-access-token (seed) or Authorization: Bearer; if both are sent they must agree. */
export function readAccessToken(request: FastifyRequest): string {
  const seedHeader = request.headers['x-access-token'];
  const authorization = request.headers.authorization;
  const fromSeedHeader = typeof seedHeader === 'string' ? seedHeader.trim() : undefined;
  let fromAuthorization: string | undefined;
  if (typeof authorization === 'string') {
    const match = BEARER.exec(authorization);
    if (!match) throw new AppError('token_invalid', 'authorization header is not a bearer token');
    fromAuthorization = match[1];
  }
  if (Array.isArray(seedHeader)) throw new AppError('token_invalid', 'several x-access-token headers');
  if (fromSeedHeader !== undefined && fromAuthorization !== undefined && fromSeedHeader !== fromAuthorization) {
    throw new AppError('token_invalid', 'x-access-token and Authorization carry different tokens');
  }
  const token = fromSeedHeader || fromAuthorization;
  if (!token) throw new AppError('token_missing', 'no access token');
  return token;
}

/** preHandler for protected routes: a live user token for JWT_AUDIENCE (auth/access-check.ts). */
export function createAuthGuard(deps: AccessCheckDeps) {
  return async function authGuard(request: FastifyRequest): Promise<void> {
    request.auth = await checkAccessToken(deps, readAccessToken(request), 'own');
  };
}

/**
 * onRequest for admin routes: a live user token (as authGuard) whose roles include `admin`, else 403
 * `forbidden - admin role required`. The roles claim is trusted for the token's life because every
 * change that takes the role away (PATCH roles, disable, delete) revokes the user's sessions at once.
 */
export function createAdminGuard(deps: AccessCheckDeps) {
  const authGuard = createAuthGuard(deps);
  return async function adminGuard(request: FastifyRequest): Promise<void> {
    await authGuard(request);
    if (!request.auth!.roles.includes(ADMIN_ROLE)) throw new AppError('admin_required', 'admin role required');
  };
}
