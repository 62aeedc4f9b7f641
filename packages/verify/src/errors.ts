/**
 * Every way a request can be refused, as a stable code: switch on `error.code`, never on the
 * message, which may change. `status` and `oauthError` are what RFC 6750 says to answer.
 */
export type VerifyErrorCode =
  /** No bearer token in the request. 401 with a bare challenge (RFC 6750 section 3.1). */
  | 'token_missing'
  /** Two different tokens in one request, or a malformed Authorization header. 400 invalid_request. */
  | 'invalid_request'
  /** Not a Gatehouse access token for this audience: bad signature, algorithm, issuer, audience, typ, claims or key. 401 invalid_token. */
  | 'token_invalid'
  /** Past its `exp` (beyond the clock tolerance). 401 invalid_token. */
  | 'token_expired'
  /** Its session was revoked (logout, password change, account disabled), heard through the revocation feed. 401 invalid_token. */
  | 'token_revoked'
  /** A client token where a user token is required, or the reverse. 403 insufficient_scope. */
  | 'wrong_token_kind'
  /** The user lacks a role the route requires. 403 insufficient_scope. */
  | 'insufficient_role'
  /** The token lacks a scope the route requires. 403 insufficient_scope. */
  | 'insufficient_scope'
  /** Gatehouse's discovery document or key set could not be fetched, so nothing can be verified now. 503. */
  | 'keys_unavailable'
  /** verify() after close(). 503. */
  | 'verifier_closed';

export type OAuthErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

/** Status, RFC 6750 error and the public description of each code; `message` keeps the detail for logs. */
const HTTP: Record<VerifyErrorCode, { status: number; oauthError?: OAuthErrorCode; description: string }> = {
  token_missing: { status: 401, description: 'an access token is required' },
  invalid_request: { status: 400, oauthError: 'invalid_request', description: 'the request is malformed' },
  // One description for every invalid token: which check failed is no business of the caller's.
  token_invalid: { status: 401, oauthError: 'invalid_token', description: 'the access token is invalid' },
  token_expired: { status: 401, oauthError: 'invalid_token', description: 'the access token has expired' },
  token_revoked: { status: 401, oauthError: 'invalid_token', description: 'the access token has been revoked' },
  wrong_token_kind: { status: 403, oauthError: 'insufficient_scope', description: 'this kind of token is not accepted here' },
  insufficient_role: { status: 403, oauthError: 'insufficient_scope', description: 'a role this route requires is missing' },
  insufficient_scope: { status: 403, oauthError: 'insufficient_scope', description: 'a scope this route requires is missing' },
  keys_unavailable: { status: 503, description: 'tokens cannot be verified right now' },
  verifier_closed: { status: 503, description: 'tokens cannot be verified right now' },
};

export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  /** The HTTP status to answer with. */
  readonly status: number;
  /** RFC 6750 `error` for the WWW-Authenticate challenge; absent for token_missing and 503s. */
  readonly oauthError: OAuthErrorCode | undefined;
  /** What the answer tells the caller (error_description); the same for every cause of one code. */
  readonly description: string;
  /** For insufficient_scope: the scope the route wanted, told in the challenge (RFC 6750 section 3). */
  readonly requiredScope: string | undefined;

  /** `message` is for logs (which check failed); answers carry only `description`. */
  constructor(code: VerifyErrorCode, message: string, options?: { cause?: unknown; requiredScope?: string; description?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VerifyError';
    this.code = code;
    this.status = HTTP[code].status;
    this.oauthError = HTTP[code].oauthError;
    this.description = options?.description ?? HTTP[code].description;
    this.requiredScope = options?.requiredScope;
  }
}

export function isVerifyError(error: unknown, code?: VerifyErrorCode): error is VerifyError {
  return error instanceof VerifyError && (code === undefined || error.code === code);
}

/** A quoted-string for an auth-param (RFC 9110 section 5.6.4): no quotes, backslashes or control characters. */
function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, '').replace(/[\u0000-\u001f\u007f]/g, ' ')}"`;
}

/** The RFC 6750 challenge for an error: `Bearer realm="…", error="invalid_token", error_description="…"`. */
export function bearerChallenge(error: VerifyError, realm: string | undefined): string {
  const params: string[] = [];
  if (realm !== undefined) params.push(`realm=${quoted(realm)}`);
  if (error.oauthError) {
    params.push(`error=${quoted(error.oauthError)}`, `error_description=${quoted(error.description)}`);
    if (error.requiredScope) params.push(`scope=${quoted(error.requiredScope)}`);
  }
  return params.length > 0 ? `Bearer ${params.join(', ')}` : 'Bearer';
}

/** The JSON body sent with a refusal: OAuth's error shape, which says no more than the challenge. */
export function errorBody(error: VerifyError): { error: string; error_description: string } {
  return { error: error.oauthError ?? error.code, error_description: error.description };
}
