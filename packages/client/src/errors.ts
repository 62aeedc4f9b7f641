import type { ErrorEnvelope, FieldError } from './types.ts';

/**
 * Stable codes to switch on; messages may change. The HTTP ones follow the status Gatehouse
 * answered; the others never reached an answer, or came from the client itself.
 */
export type GatehouseErrorCode =
  | 'invalid_request' // 400: fieldErrors says what was wrong
  | 'unauthorized' // 401 that a refresh could not cure
  | 'forbidden' // 403: e.g. a wrong email or password at login, a wrong current password
  | 'not_found' // 404
  | 'conflict' // 409: e.g. the email is already registered
  | 'payload_too_large' // 413
  | 'unsupported_media_type' // 415
  | 'rate_limited' // 429: retryAfterSeconds says when to try again
  | 'unavailable' // 503: retryAfterSeconds says when to try again
  | 'http_error' // any other status
  | 'session_ended' // the refresh token was refused (logged out, revoked, expired): the tokens are cleared
  | 'not_signed_in' // no tokens stored: log in first (no request was sent)
  | 'network_error' // no answer: the server is unreachable, or the request was aborted
  | 'invalid_response' // an answer that is not what Gatehouse sends
  | 'mfa_required'; // login(): the password was right, a second factor is due (an MfaRequiredError)

const BY_STATUS: Record<number, GatehouseErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

export class GatehouseError extends Error {
  override readonly name: string = 'GatehouseError';
  readonly code: GatehouseErrorCode;
  /** The HTTP status, when Gatehouse answered. */
  readonly status: number | undefined;
  /** The error envelope as Gatehouse sent it, when it sent one. */
  readonly envelope: ErrorEnvelope | undefined;
  /** For invalid_request: what was wrong, field by field. */
  readonly fieldErrors: FieldError[];
  /** For rate_limited and unavailable: the Retry-After the server sent. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: GatehouseErrorCode,
    message: string,
    details: { status?: number; envelope?: ErrorEnvelope; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.status = details.status;
    this.envelope = details.envelope;
    this.fieldErrors = details.envelope?.data?.errors ?? [];
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}

/**
 * What login() throws when the password was right and the account has two-factor authentication:
 * no tokens were stored. Ask for the code the user's authenticator app shows (or a recovery code) and
 * call completeMfaLogin(error.ticket, code) on the same client before the ticket expires.
 */
export class MfaRequiredError extends GatehouseError {
  override readonly name: string = 'MfaRequiredError';
  /** The single-use MFA ticket for completeMfaLogin(); it works only with the client that logged in. Not for logs. */
  readonly ticket: string;
  /** Seconds the ticket stays valid, as the server said. */
  readonly expiresIn: number;
  /** When the ticket expires, in milliseconds since the epoch by the client's clock (from expiresIn). */
  readonly expiresAt: number;

  constructor(ticket: string, expiresIn: number, expiresAt: number) {
    super('mfa_required', 'two-factor authentication required: call completeMfaLogin() with the ticket and a code', { status: 200 });
    this.ticket = ticket;
    this.expiresIn = expiresIn;
    this.expiresAt = expiresAt;
  }
}

export function isGatehouseError(error: unknown, code?: GatehouseErrorCode): error is GatehouseError {
  return error instanceof GatehouseError && (code === undefined || error.code === code);
}

/** The error for an answer of status 400 or more, from its body (already read) and headers. */
export function errorFromAnswer(status: number, body: unknown, headers: { get(name: string): string | null }): GatehouseError {
  const envelope = isErrorEnvelope(body) ? body : undefined;
  const retryAfter = Number(headers.get('retry-after'));
  return new GatehouseError(BY_STATUS[status] ?? 'http_error', envelope?.message ?? `HTTP ${status}`, {
    status,
    ...(envelope ? { envelope } : {}),
    ...(Number.isFinite(retryAfter) && headers.get('retry-after') !== null ? { retryAfterSeconds: retryAfter } : {}),
  });
}

function isErrorEnvelope(body: unknown): body is ErrorEnvelope {
  if (!body || typeof body !== 'object') return false;
  const candidate = body as Record<string, unknown>;
  return candidate.status === false && typeof candidate.code === 'number' && typeof candidate.message === 'string' && 'data' in candidate;
}
