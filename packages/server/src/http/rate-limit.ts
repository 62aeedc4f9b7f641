import type { FastifyRequest } from 'fastify';
import { clientNetwork } from '../abuse/client-network.ts';
import type { Deps } from '../deps.ts';

/**
 * The network a request is counted under: request.ip is the socket address, or behind the
 * proxies listed in TRUST_PROXY the rightmost untrusted X-Forwarded-For address; IPv6
 * clients count per IPV6_PREFIX_LENGTH network.
 */
export function requestClientNetwork(request: FastifyRequest, deps: Pick<Deps, 'config'>): string {
  return clientNetwork(request.ip, deps.config.limits.ipv6PrefixLength);
}

/** onRequest hook for the credential routes: counts before the body is even read. */
export function createRateLimitHook(deps: Pick<Deps, 'ipRateLimiter' | 'config'>) {
  return async function rateLimit(request: FastifyRequest): Promise<void> {
    await deps.ipRateLimiter.consume(requestClientNetwork(request, deps));
  };
}
