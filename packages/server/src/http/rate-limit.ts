import type { FastifyRequest } from 'fastify';
import type { Deps } from '../deps.ts';

/**
 * onRequest hook for the credential routes: counts before the body is even read.
 * request.ip is the socket address unless TRUST_PROXY lets X-Forwarded-For speak.
 */
export function createRateLimitHook(deps: Pick<Deps, 'ipRateLimiter'>) {
  return async function rateLimit(request: FastifyRequest): Promise<void> {
    await deps.ipRateLimiter.consume(request.ip);
  };
}
