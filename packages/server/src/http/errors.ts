import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode, type FieldError } from '../errors.ts';
import { isDatabaseUnavailable } from '../storage/db.ts';
import { envelope } from './envelope.ts';

interface PublicError {
  status: number;
  message: string;
}

/** The one table from domain error codes to HTTP statuses and public messages. */
const PUBLIC_ERRORS: Record<ErrorCode, PublicError> = {
  invalid_input: { status: 400, message: 'invalid request' },
  email_taken: { status: 409, message: 'email already registered' },
  invalid_credentials: { status: 403, message: 'verification failed - incorrect user email or password' },
  wrong_password: { status: 403, message: 'verification failed - incorrect password' },
  token_missing: { status: 401, message: 'auth failed - token is missing' },
  token_invalid: { status: 401, message: 'auth failed - token is invalid' },
  token_expired: { status: 401, message: 'auth failed - token has expired' },
  token_revoked: { status: 401, message: 'auth failed - token has been revoked' },
  refresh_invalid: { status: 401, message: 'refresh failed - token is invalid' },
  // One answer for an unknown client, a wrong secret, a public or disabled client and a malformed header.
  client_invalid: { status: 401, message: 'client authentication failed' },
  forbidden: { status: 403, message: 'forbidden' },
  admin_required: { status: 403, message: 'forbidden - admin role required' },
  user_not_found: { status: 404, message: 'user not found' },
  session_not_found: { status: 404, message: 'session not found' },
  client_not_found: { status: 404, message: 'client not found' },
  last_admin: { status: 409, message: 'conflict - the last admin cannot remove their admin role, be disabled or be deleted' },
  email_not_verified: { status: 403, message: 'verification failed - email address not verified' },
  link_invalid: { status: 400, message: 'invalid request - the token is invalid, expired or already used' },
  mfa_invalid: { status: 403, message: 'verification failed - incorrect code' },
  mfa_ticket_invalid: { status: 401, message: 'auth failed - the MFA ticket is invalid or expired' },
  mfa_conflict: { status: 409, message: 'conflict - two-factor authentication is not in a state that allows this' },
  passkey_invalid: { status: 403, message: 'verification failed - passkey not accepted' },
  passkey_not_found: { status: 404, message: 'passkey not found' },
  reauthentication_required: { status: 403, message: 'reauthentication required - send your password (and a code, with two-factor authentication on), or sign in again' },
  rate_limited: { status: 429, message: 'too many requests - try again later' },
  unavailable: { status: 503, message: 'service unavailable' },
};

/** Fastify's own client errors, by code, with messages that reveal nothing internal. */
const FRAMEWORK_ERRORS: Record<string, PublicError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, message: 'unsupported media type - send application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, message: 'invalid request - content length does not match the body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, message: 'payload too large' },
  GH_EMPTY_BODY: { status: 400, message: 'invalid request - body is empty' },
  GH_INVALID_JSON: { status: 400, message: 'invalid request - body is not valid JSON' },
  GH_INVALID_UTF8: { status: 400, message: 'invalid request - body is not valid UTF-8' },
  GH_FORBIDDEN_KEY: { status: 400, message: 'invalid request - __proto__ and constructor keys are not allowed' },
  FST_ERR_BAD_URL: { status: 400, message: 'invalid request - malformed URL' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, message: 'invalid request - URL too long' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, message: 'invalid request' },
};

/** The public text of a framework client error (no internal detail), for handlers that answer in another format. */
export function publicFrameworkMessage(code: string): string | undefined {
  return FRAMEWORK_ERRORS[code]?.message;
}

const TOKEN_CODES = new Set<ErrorCode>(['token_invalid', 'token_expired', 'token_revoked', 'refresh_invalid']);

/** A dropped connection is replaced within moments; a held SQLite lock is short. */
const DATABASE_RETRY_AFTER_SECONDS = 5;

export function handleError(error: FastifyError | AppError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof AppError) return sendAppError(error, reply);

  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const fieldErrors = fastifyError.validation.map((issue) => toFieldError(issue, fastifyError.validationContext));
    return sendAppError(new AppError('invalid_input', 'validation failed', { fieldErrors }), reply);
  }
  const known = fastifyError.code ? FRAMEWORK_ERRORS[fastifyError.code] : undefined;
  if (known) return reply.code(known.status).send(envelope(known.status, known.message));
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    // Any other client error Fastify raises: keep its status, reveal nothing of its text.
    return reply.code(status).send(envelope(status, status === 400 ? 'invalid request' : 'request refused'));
  }
  if (isDatabaseUnavailable(error)) {
    // Not a bug of ours: the database dropped the connection or is locked. The client may retry.
    const { code } = error as { code?: string };
    request.log.warn({ code, reason: error.message }, 'database unavailable, answered 503');
    return sendAppError(new AppError('unavailable', 'database unavailable', { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS }), reply);
  }
  request.log.error({ err: error }, 'request failed');
  return reply.code(500).send(envelope(500, 'internal server error'));
}

export function sendAppError(error: AppError, reply: FastifyReply): FastifyReply {
  const { status, message } = PUBLIC_ERRORS[error.code];
  if (error.code === 'token_missing') reply.header('www-authenticate', 'Bearer realm="gatehouse"');
  else if (error.code === 'client_invalid') reply.header('www-authenticate', 'Basic realm="gatehouse", charset="UTF-8"');
  else if (TOKEN_CODES.has(error.code)) reply.header('www-authenticate', 'Bearer error="invalid_token"');
  if (error.details.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.details.retryAfterSeconds));

  const fieldErrors = error.details.fieldErrors;
  if (error.code === 'invalid_input' && fieldErrors?.length) {
    return reply.code(status).send(envelope(status, `${message} - ${fieldErrors.map((e) => e.message).join('; ')}`, { errors: fieldErrors }));
  }
  return reply.code(status).send(envelope(status, message, error.details.data ?? null));
}

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string | undefined;
}

export function toFieldError(issue: ValidationIssue, context: string | undefined): FieldError {
  const path = issue.instancePath.split('/').filter(Boolean).join('.');
  const missing = issue.keyword === 'required' ? String(issue.params.missingProperty) : undefined;
  const extra = issue.keyword === 'additionalProperties' ? String(issue.params.additionalProperty) : undefined;
  const field = [path, missing ?? extra].filter(Boolean).join('.') || (context === 'body' ? 'body' : (context ?? 'request'));
  if (missing) return { field, message: `${field} is required` };
  if (extra) return { field, message: `${field} is not an allowed field` };
  if (issue.keyword === 'format') return { field, message: `${field} must be a valid ${String(issue.params.format)}` };
  // Schema patterns only exclude characters; ajv's text would echo the raw regular expression.
  if (issue.keyword === 'pattern') return { field, message: `${field} contains characters that are not allowed` };
  return { field, message: `${field} ${issue.message ?? 'is invalid'}` };
}
