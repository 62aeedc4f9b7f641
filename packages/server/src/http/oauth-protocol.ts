/**
 * The OAuth side of the HTTP layer: form bodies (RFC 6749 appendix B) and the OAuth error
 * format (RFC 6749 section 5.2), for /oauth/token, /revoke and /introspect only. The envelope
 * routes keep http/errors.ts; this maps the same domain error codes to OAuth's.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isAudienceProblem } from '../auth/token-request.ts';
import { AppError, type ErrorCode, type FieldError } from '../errors.ts';
import { isDatabaseUnavailable } from '../storage/db.ts';
import { envelope } from './envelope.ts';
import { handleError, publicFrameworkMessage, toFieldError } from './errors.ts';

export const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded';

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  | 'temporarily_unavailable';

/** A protocol refusal the domain has no code for (an unknown grant_type, two client authentications). */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

export const OAuthErrorSchema = Type.Object({
  error: Type.String({ description: 'An RFC 6749 section 5.2 (or RFC 7009, RFC 8707) error code' }),
  error_description: Type.Optional(Type.String({ description: 'For developers; never a hint an attacker could use' })),
});

/** An error answer of an OAuth route: what it means, and an example of its body. */
export function OAuthErrorResponse(description: string, exampleError: OAuthErrorCode) {
  return Type.Object(OAuthErrorSchema.properties, { description, examples: [{ error: exampleError, error_description: 'what was wrong' }] });
}

/**
 * The password grant for an account with two-factor authentication (RFC 6749 has no second step):
 * invalid_grant, told only after the right password, pointing at the flow that has one.
 */
export const MFA_REQUIRED_DESCRIPTION = 'mfa required - use POST /login';

/** Domain codes as OAuth sees them; codes absent here fall through to the envelope handler (a bug: 500). */
const OAUTH_ERRORS: Partial<Record<ErrorCode, { status: number; error: OAuthErrorCode; description: string }>> = {
  invalid_input: { status: 400, error: 'invalid_request', description: 'invalid request' },
  client_invalid: { status: 401, error: 'invalid_client', description: 'client authentication failed' },
  invalid_credentials: { status: 400, error: 'invalid_grant', description: 'incorrect username or password' },
  refresh_invalid: { status: 400, error: 'invalid_grant', description: 'refresh token is invalid' },
  // REQUIRE_EMAIL_VERIFICATION, after the password matched (auth/email-verification.ts assertMayLogIn).
  email_not_verified: { status: 400, error: 'invalid_grant', description: 'email address not verified' },
  forbidden: { status: 400, error: 'unauthorized_client', description: 'this client may not use this grant type' },
  rate_limited: { status: 429, error: 'temporarily_unavailable', description: 'too many requests - try again later' },
  unavailable: { status: 503, error: 'temporarily_unavailable', description: 'service unavailable' },
};

const STATUS_OF: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  invalid_target: 400,
  unsupported_token_type: 400,
  temporarily_unavailable: 503,
};

const DATABASE_RETRY_AFTER_SECONDS = 5;

/** error_description may hold printable ASCII but `"` and `\` (RFC 6749 section 5.2). */
function describable(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?').slice(0, 300);
}

function sendOAuthError(reply: FastifyReply, status: number, error: OAuthErrorCode, description: string): FastifyReply {
  // RFC 6749 section 5.2: invalid_client is a 401 with a challenge for the scheme the client may use.
  if (error === 'invalid_client') reply.header('www-authenticate', 'Basic realm="gatehouse", charset="UTF-8"');
  return reply.code(status).header('cache-control', 'no-store').send({ error, error_description: describable(description) });
}

function describeFields(fieldErrors: FieldError[] | undefined, fallback: string): string {
  return fieldErrors?.length ? fieldErrors.map((problem) => problem.message).join('; ') : fallback;
}

/** The error handler of the OAuth routes: every refusal of theirs in RFC 6749 form, none with a hint beyond it. */
export function oauthErrorHandler(error: FastifyError | AppError | OAuthError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof OAuthError) return sendOAuthError(reply, STATUS_OF[error.error], error.error, error.description);
  if (error instanceof AppError) {
    // A code without an OAuth meaning still answers in OAuth's form: these routes' schemas have no envelope for it.
    const mapped = OAUTH_ERRORS[error.code] ?? OAUTH_ERRORS.invalid_input!;
    if (error.details.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.details.retryAfterSeconds));
    const fieldErrors = error.details.fieldErrors;
    if (error.code === 'invalid_input') {
      if (isAudienceProblem(fieldErrors)) return sendOAuthError(reply, 400, 'invalid_target', describeFields(fieldErrors, 'audience not allowed'));
      if (fieldErrors?.some((problem) => problem.field === 'scope')) return sendOAuthError(reply, 400, 'invalid_scope', describeFields(fieldErrors, 'scope not allowed'));
    }
    return sendOAuthError(reply, mapped.status, mapped.error, describeFields(error.code === 'invalid_input' ? fieldErrors : undefined, mapped.description));
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const fieldErrors = fastifyError.validation.map((issue) => toFieldError(issue, fastifyError.validationContext));
    return sendOAuthError(reply, 400, 'invalid_request', describeFields(fieldErrors, 'invalid request'));
  }
  if (fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // Before the OAuth layer, like 413: the envelope, naming the type these routes take.
    return reply.code(415).send(envelope(415, `unsupported media type - send ${FORM_CONTENT_TYPE}`));
  }
  if (fastifyError.code?.startsWith('GH_FORM_')) return sendOAuthError(reply, 400, 'invalid_request', fastifyError.message);
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return handleError(error, request, reply); // 413, the envelope, as everywhere
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    // A body the JSON parser refused (on /revoke), or any other client error: invalid_request, with the public text only.
    const known = fastifyError.code ? publicFrameworkMessage(fastifyError.code) : undefined;
    return sendOAuthError(reply, 400, 'invalid_request', known ?? 'invalid request');
  }
  if (isDatabaseUnavailable(error)) {
    request.log.warn({ code: (error as { code?: string }).code, reason: error.message }, 'database unavailable, answered 503');
    reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
    return sendOAuthError(reply, 503, 'temporarily_unavailable', 'service unavailable');
  }
  return handleError(error, request, reply);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor', 'prototype']);
/** RFC 8707 lets resource repeat; every other parameter may appear once (RFC 6749 section 3.2). */
const REPEATABLE = new Set(['resource']);

function formError(message: string) {
  return Object.assign(new Error(message), { statusCode: 400, code: 'GH_FORM_INVALID' });
}

/**
 * Parses an application/x-www-form-urlencoded body into an object of strings (arrays for
 * `resource`). Empty values count as absent (RFC 6749 section 3.1); a parameter sent twice, bytes
 * that are not UTF-8 or a name that could reach a prototype are refused.
 */
export function parseForm(body: Buffer): Record<string, string | string[]> {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw formError('body is not valid UTF-8');
  }
  const parsed: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(text)) {
    if (FORBIDDEN_NAMES.has(name)) throw formError(`parameter ${name} is not allowed`);
    if (value === '') continue;
    // Own properties only: a parameter named hasOwnProperty or toString is unknown, not a duplicate.
    const previous = Object.hasOwn(parsed, name) ? parsed[name] : undefined;
    if (previous === undefined) parsed[name] = REPEATABLE.has(name) ? [value] : value;
    else if (Array.isArray(previous)) previous.push(value);
    else throw formError(`parameter ${name} must not be sent more than once`);
  }
  return parsed;
}

/** Registers the form parser on an encapsulated context; `jsonToo: false` leaves it the only body type there. */
export function registerFormBodies(app: FastifyInstance, options: { jsonToo: boolean }): void {
  if (!options.jsonToo) app.removeAllContentTypeParsers();
  app.addContentTypeParser(FORM_CONTENT_TYPE, { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseForm(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
