import type { Claims } from './claims.ts';
import { VerifyError } from './errors.ts';
import { answerFastify, answerNode, isFastifyReply, type FastifyReplyLike, type NodeResponseLike } from './http.ts';

/** Set on each request the verifier admits, beside `auth`, so a guard can name the realm in its challenge. */
export const REALM = Symbol.for('@gatehouse/verify.realm');

/** What the verifier sets on a request it admits: `auth` (declare it on your framework's request type), and the realm. */
export interface AuthenticatedRequest {
  auth?: Claims | null;
  [REALM]?: string;
}

/**
 * A check on verified claims. It is also a middleware for Express (after `verifier.express()`) and
 * an onRequest/preHandler hook for Fastify (after the verifier's plugin or hook): it reads
 * `request.auth` and answers 403 insufficient_scope (RFC 6750) when the check fails.
 * Parameters are typed loosely on purpose, so it fits either framework's handler type unchanged.
 */
export interface Guard {
  (request: object, response: NodeResponseLike | FastifyReplyLike, next: (error?: Error) => void): void;
  /** Throws VerifyError (wrong_token_kind, insufficient_role, insufficient_scope) when the claims do not pass. */
  check(claims: Claims): void;
}

function guard(check: (claims: Claims) => void): Guard {
  const middleware = ((request: AuthenticatedRequest, response, next) => {
    const claims = request.auth;
    // A guard before the verifier is a wiring mistake; fail loudly (500), never open.
    if (!claims) return next(new Error('@gatehouse/verify: a guard ran on a request the verifier has not authenticated; put verifier.express() (or the Fastify plugin) before it'));
    try {
      check(claims);
    } catch (error) {
      if (!(error instanceof VerifyError)) return next(error as Error);
      const realm = request[REALM];
      if (isFastifyReply(response)) return answerFastify(response, error, realm);
      return answerNode(response as NodeResponseLike, error, realm);
    }
    next();
  }) as Guard;
  middleware.check = check;
  return middleware;
}

/** Only tokens of signed-in users (they have a session); a service's client token is refused. */
export function requireUser(): Guard {
  return guard((claims) => {
    if (claims.kind !== 'user') throw new VerifyError('wrong_token_kind', 'a user token is required', { description: 'a user token is required' });
  });
}

/** Only client tokens (client_credentials), optionally of the named clients; a user's token is refused. */
export function requireClient(...clientIds: string[]): Guard {
  return guard((claims) => {
    if (claims.kind !== 'client') throw new VerifyError('wrong_token_kind', 'a client token is required', { description: 'a client token is required' });
    if (clientIds.length > 0 && !clientIds.includes(claims.clientId)) {
      throw new VerifyError('wrong_token_kind', `client ${claims.clientId} is not accepted here`, { description: 'this client is not accepted here' });
    }
  });
}

/** A user token carrying at least one of the roles (so also requireUser()). */
export function requireRole(...roles: [string, ...string[]]): Guard {
  const description = `role ${roles.join(' or ')} required`;
  return guard((claims) => {
    if (claims.kind !== 'user') throw new VerifyError('wrong_token_kind', 'a user token is required', { description: 'a user token is required' });
    if (!roles.some((role) => claims.roles.includes(role))) throw new VerifyError('insufficient_role', description, { description });
  });
}

/** A token carrying every one of the scopes (client tokens carry the scopes of their client). */
export function requireScope(...scopes: [string, ...string[]]): Guard {
  const required = scopes.join(' ');
  return guard((claims) => {
    if (!scopes.every((scope) => claims.scopes.includes(scope))) {
      throw new VerifyError('insufficient_scope', `scope ${required} required`, { description: `scope ${required} required`, requiredScope: required });
    }
  });
}
