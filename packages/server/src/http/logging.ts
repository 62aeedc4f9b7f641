import type { FastifyRequest } from 'fastify';
import { redactUrl } from './url-secrets.ts';

/** Secrets never reach a log line, whatever object a log call is given. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-access-token"]',
  'req.headers.cookie',
  'password',
  '*.password',
  '*.current_password',
  '*.new_password',
  '*.token',
  '*.refresh_token',
];

/**
 * Fastify's default `req` serializer with the query string's credentials redacted: Fastify
 * itself logs `{ req }` when a reply fails after an error handler, and a URL may carry a token.
 */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: typeof request.url === 'string' ? redactUrl(request.url) : undefined,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket ? request.socket.remotePort : undefined,
  };
}
