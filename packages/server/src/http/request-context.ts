import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../audit/events.ts';

const MAX_USER_AGENT = 256;

/**
 * Where a request came from, for the audit log: the client address as TRUST_PROXY resolves it
 * (request.ip, never X-Forwarded-For read directly), the User-Agent cut to 256 characters (it is
 * the client's own claim, recorded as such), and Fastify's request id.
 */
export function requestContext(request: FastifyRequest): RequestContext {
  const userAgent = request.headers['user-agent'];
  return {
    ip: request.ip ?? null,
    userAgent: typeof userAgent === 'string' && userAgent !== '' ? userAgent.slice(0, MAX_USER_AGENT) : null,
    requestId: String(request.id),
  };
}
