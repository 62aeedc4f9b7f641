/**
 * The one error hierarchy. Domain code throws AppError with a stable code;
 * http/errors.ts alone maps codes to statuses and public messages.
 */
export type ErrorCode =
  | 'invalid_input'
  | 'email_taken'
  | 'invalid_credentials'
  | 'wrong_password'
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_revoked'
  | 'refresh_invalid'
  | 'client_invalid'
  | 'forbidden'
  /** A signed-in user without the admin role on an admin route. */
  | 'admin_required'
  | 'user_not_found'
  | 'session_not_found'
  | 'client_not_found'
  /** The last admin removing their own admin role, disabling or deleting themselves. */
  | 'last_admin'
  /** REQUIRE_EMAIL_VERIFICATION and a login of an unverified account (after the password matched). */
  | 'email_not_verified'
  /** An emailed token (verification, reset, email change) that is unknown, expired, used or altered. */
  | 'link_invalid'
  /** A second-factor code (TOTP or recovery) that is wrong, malformed or already used. */
  | 'mfa_invalid'
  /** An MFA ticket that is unknown, expired, used or out of attempts. */
  | 'mfa_ticket_invalid'
  /** Enrolling a second factor already there, or confirming one that is not pending. */
  | 'mfa_conflict'
  /** A WebAuthn registration or assertion that does not verify (or a stale challenge). */
  | 'passkey_invalid'
  /** DELETE /me/passkeys/:id of a passkey the user does not have (another user's answers the same). */
  | 'passkey_not_found'
  /** Adding a sign-in factor from a session older than REAUTH_MAX_AGE without the password. */
  | 'reauthentication_required'
  | 'rate_limited'
  | 'unavailable';

export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  /** Safe, public detail: field problems for invalid_input, echoed data for others. */
  readonly details: { fieldErrors?: FieldError[]; data?: Record<string, unknown>; retryAfterSeconds?: number };

  constructor(code: ErrorCode, message: string = code, details: AppError['details'] = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }
}

export function invalidInput(fieldErrors: FieldError[]): AppError {
  return new AppError('invalid_input', fieldErrors.map((e) => `${e.field}: ${e.message}`).join('; '), { fieldErrors });
}

export function isAppError(error: unknown, code?: ErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}
