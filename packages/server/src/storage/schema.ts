import type { Generated } from 'kysely';

/** Row types. Timestamps are integer epoch seconds; nullable *_at columns instead of booleans. */
export interface UsersTable {
  id: Generated<number>;
  email: string;
  /** Lowercased, NFC-normalised email; the unique key, so uniqueness is case-insensitive in the database. */
  email_normalized: string;
  name: string;
  password_hash: string;
  /** JSON array of role names. */
  roles: string;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
  /** When the user proved they read mail at this address (migration 0006); null: not verified. */
  email_verified_at: number | null;
  /**
   * Set by migration 0009 on accounts that had a second factor or passkey before their address was ever proved
   * (older versions allowed that); the first proof of the address clears it, and a password reset removes those
   * factors. Null on every account since: a factor can no longer be added to an unproved address.
   */
  legacy_factors_at: number | null;
}

export interface SessionsTable {
  id: string;
  user_id: number;
  created_at: number;
  last_refreshed_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  /** The client the session was opened through (migration 0004; `gatehouse` for older sessions). */
  client_id: string;
  /** The audience its access tokens are for; null: JWT_AUDIENCE. */
  audience: string | null;
  /** JSON array of RFC 8176 amr values: how the user signed in (migration 0006; `["pwd"]` before). */
  amr: string;
}

export interface RefreshTokensTable {
  /** SHA-256 of the opaque token, base64url; the token itself is never stored. */
  token_hash: string;
  session_id: string;
  parent_hash: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** Hash of the token issued when this one was spent; lets a retry within the grace window be recognised. */
  child_hash: string | null;
}

export interface SigningKeysTable {
  kid: string;
  algorithm: string;
  public_jwk: string;
  /** JWK text, or an encrypted envelope when private_key_encryption is set. */
  private_jwk: string;
  private_key_encryption: string | null;
  created_at: number;
  retired_at: number | null;
  /** When a retired key may leave the JWKS: after the last token it signed has expired. */
  expires_at: number | null;
  /** When the key starts signing (published before that); null: active since created_at. */
  activates_at: number | null;
  /** Unique, previous key's + 1: two concurrent rotations cannot both insert. Null for keys made before it. */
  generation: number | null;
}

/** Server-side secrets shared by every instance (e.g. the refresh-token derivation key). */
export interface ServerSecretsTable {
  name: string;
  /** base64url bytes, or an encrypted envelope when encryption is set. */
  value: string;
  encryption: string | null;
  created_at: number;
}

/** Applications and services registered with Gatehouse (RFC 6749 clients). */
export interface ClientsTable {
  /** The client_id: lowercase, starts with a letter, never all digits (so never a user's sub). */
  id: string;
  name: string;
  type: 'public' | 'confidential';
  /** SHA-256 (base64url) of a 256-bit random secret; null for public clients. */
  secret_hash: string | null;
  /** The secret replaced by the last rotation, still accepted until previous_secret_expires_at. */
  previous_secret_hash: string | null;
  previous_secret_expires_at: number | null;
  /** JSON array of audiences this client may ask for besides JWT_AUDIENCE. */
  audiences: string;
  /** JSON array of scopes a client_credentials token of this client carries. */
  scopes: string;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
}

/** The audit log (migration 0005): append-only; audit/ writes it in batches. */
export interface AuditEventsTable {
  id: Generated<number>;
  /** Epoch milliseconds. */
  occurred_at: number;
  action: string;
  outcome: 'success' | 'failure';
  reason: string | null;
  actor_type: string;
  actor_id: string | null;
  subject_type: string | null;
  subject_id: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  /** JSON object or null. */
  details: string | null;
}

/** Emailed single-use secrets (verification, reset, email change), stored as SHA-256 only. */
export interface EmailTokensTable {
  token_hash: string;
  purpose: 'verify_email' | 'reset_password' | 'change_email';
  user_id: number;
  /** change_email: the new address; verify_email: the address verified. */
  email: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface TotpFactorsTable {
  user_id: number;
  /** base32 secret, or an encrypted envelope when secret_encryption is set (KEY_ENCRYPTION_SECRET). */
  secret: string;
  secret_encryption: string | null;
  created_at: number;
  confirmed_at: number | null;
  last_used_step: number | null;
}

export interface RecoveryCodesTable {
  code_hash: string;
  user_id: number;
  created_at: number;
  used_at: number | null;
}

export interface MfaTicketsTable {
  ticket_hash: string;
  user_id: number;
  client_id: string;
  audience: string | null;
  created_at: number;
  expires_at: number;
  attempts: number;
  used_at: number | null;
  /** SHA-256 (hex) of the password hash the ticket's login checked (migration 0008); null: none recorded. */
  password_check: string | null;
}

export interface PasskeysTable {
  id: Generated<number>;
  user_id: number;
  credential_id: string;
  public_key: string;
  user_handle: string;
  counter: number;
  transports: string;
  device_type: string | null;
  backed_up: number;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export interface WebauthnChallengesTable {
  id: string;
  challenge: string;
  purpose: 'register' | 'authenticate';
  user_id: number | null;
  created_at: number;
  expires_at: number;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  signing_keys: SigningKeysTable;
  server_secrets: ServerSecretsTable;
  clients: ClientsTable;
  audit_events: AuditEventsTable;
  email_tokens: EmailTokensTable;
  totp_factors: TotpFactorsTable;
  recovery_codes: RecoveryCodesTable;
  mfa_tickets: MfaTicketsTable;
  passkeys: PasskeysTable;
  webauthn_challenges: WebauthnChallengesTable;
}
