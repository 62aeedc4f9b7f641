import type { FastifyRequest } from 'fastify';
import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';
import type { AccessClaims } from '../tokens/access-tokens.ts';

declare module 'fastify' {
  interface FastifyRequest {
    auth: AccessClaims | null;
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

/** preHandler for protected routes: a verified, unrevoked token of a user who still exists and is enabled. */
export function createAuthGuard(deps: Pick<Deps, 'accessTokens' | 'denylist' | 'userStatus'>) {
  return async function authGuard(request: FastifyRequest): Promise<void> {
    const claims = await deps.accessTokens.verify(readAccessToken(request));
    if (deps.denylist.isRevoked(claims.sessionId)) throw new AppError('token_revoked', 'session revoked');
    const status = await deps.userStatus.statusOf(claims.userId);
    if (status === 'missing') throw new AppError('token_invalid', 'token subject no longer exists');
    if (status === 'disabled') throw new AppError('token_revoked', 'user is disabled');
    request.auth = claims;
  };
}
