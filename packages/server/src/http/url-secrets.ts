import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/** Query parameter names whose value is a credential wherever they appear (matched case-insensitively). */
const SECRET_NAME_PARTS = /token|secret|passw|pwd|api_?key|assertion|jwt|credential/i;
const SECRET_NAMES = new Set(['code', 'code_verifier', 'otp', 'key', 'sig', 'signature', 'auth', 'authorization', 'session']);

export function isSecretParameterName(name: string): boolean {
  return SECRET_NAME_PARTS.test(name) || SECRET_NAMES.has(name.toLowerCase());
}

/**
 * The URL as a log line may show it: the value of every credential-like query parameter
 * replaced. Names are compared decoded (`access%5Ftoken` is access_token); the rest is kept as sent.
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  // Everything after `?` counts, a `#` included: a request has no fragment, and the query parser reads past it.
  const pairs = url.slice(queryStart + 1).split('&');
  const redacted = pairs.map((pair) => {
    const equals = pair.indexOf('=');
    const rawName = equals === -1 ? pair : pair.slice(0, equals);
    return isSecretParameterName(decodeName(rawName)) && equals !== -1 ? `${rawName}=[redacted]` : pair;
  });
  return `${url.slice(0, queryStart + 1)}${redacted.join('&')}`;
}

function decodeName(rawName: string): string {
  const name = rawName.replaceAll('+', ' ');
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/**
 * RFC 6750 §2.3 lets a server take `?access_token=`, and §5.3 says why not to: URLs end up in
 * logs, browser history and Referer headers. No route takes it, and a request carrying one is
 * refused rather than silently served, so the client learns to send the header instead.
 */
export function refuseAccessTokenInQuery(request: FastifyRequest, reply: FastifyReply): AppError | undefined {
  if (request.url.indexOf('?') === -1) return undefined;
  for (const name of Object.keys(request.query as Record<string, unknown>)) {
    if (name.toLowerCase() === 'access_token') {
      reply.header('www-authenticate', 'Bearer error="invalid_request"');
      return new AppError('invalid_input', 'access token in the query string', {
        fieldErrors: [{ field: 'access_token', message: 'access tokens are not accepted in the URL' }],
      });
    }
  }
  return undefined;
}
