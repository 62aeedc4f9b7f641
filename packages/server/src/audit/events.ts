/**
 * What the audit log records: the event vocabulary, who did it, to whom, from where. Domain code
 * and routes call `audit.record(...)`; it returns at once (the write is batched off the hot path,
 * audit/audit-log.ts). Metrics (metrics/) listen to the same events, so each outcome is reported
 * once, in one place.
 *
 * Never put a password, a token, a secret or a key into an event (details included).
 */
export type AuditAction =
  | 'user.signup'
  | 'user.login'
  /** outcome failure; reason: unknown_email | wrong_password | locked | disabled | rate_limited */
  | 'user.login_failed'
  /** An account or network crossed the failure threshold. */
  | 'user.lockout'
  | 'user.logout'
  | 'user.password_change'
  | 'session.refresh'
  /** A spent refresh token presented again: the whole session revoked. */
  | 'session.refresh_reuse'
  | 'token.revoke'
  /** Issue 12: the account lifecycle. */
  | 'user.email_verification_sent'
  | 'user.email_verify'
  | 'user.password_reset_request'
  | 'user.password_reset'
  | 'user.email_change_request'
  | 'user.email_change'
  | 'user.mfa_enable'
  | 'user.mfa_disable'
  | 'user.mfa_failed'
  | 'user.recovery_code_used'
  | 'user.recovery_codes_regenerate'
  | 'user.passkey_register'
  | 'user.passkey_delete'
  | 'user.passkey_login_failed'
  /** Adding a TOTP factor or a passkey refused: reason not_recent (no password, session too old), wrong_password, locked. */
  | 'user.reauthentication_failed'
  | 'client.token'
  /** Admin API and CLI (details: before/after). */
  | 'admin.user_create'
  | 'admin.user_update'
  | 'admin.user_delete'
  | 'admin.session_revoke'
  | 'admin.user_sessions_revoke'
  | 'admin.users_import'
  /** `gatehouse users export` (details.with_hashes: the password hashes went out too). */
  | 'admin.users_export'
  | 'key.rotate'
  | 'key.reencrypt'
  | 'client.create'
  | 'client.rotate_secret'
  | 'client.disable'
  | 'client.enable'
  | 'client.delete';

/** Who acted: a signed-in user (by id), a service client, an operator at the CLI, or Gatehouse itself. */
export type AuditActor =
  | { type: 'user'; id: string }
  | { type: 'client'; id: string }
  | { type: 'operator'; id?: string }
  | { type: 'system' }
  /** A request without an identity yet (a failed login: the subject names the account tried). */
  | { type: 'anonymous' };

export interface AuditSubject {
  type: 'user' | 'session' | 'client' | 'key';
  id: string;
}

/** Where a request came from: the address as TRUST_PROXY resolves it, never a raw header. */
export interface RequestContext {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

export interface AuditEventInput {
  action: AuditAction;
  outcome?: 'success' | 'failure';
  reason?: string;
  actor: AuditActor;
  subject?: AuditSubject;
  context?: RequestContext;
  /** A flat JSON object: before/after, client_id, counts. No secrets. */
  details?: Record<string, unknown>;
}

/** An event as stored and as GET /audit returns it. */
export interface AuditEvent {
  id: number;
  /** ISO 8601. */
  occurred_at: string;
  action: AuditAction;
  outcome: 'success' | 'failure';
  reason: string | null;
  actor: { type: AuditActor['type']; id: string | null };
  subject: { type: AuditSubject['type']; id: string } | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: Record<string, unknown> | null;
}

export interface AuditLog {
  /**
   * Queues the event (stamped with the injected clock now) and returns at once; never throws. The
   * writer serialises it later, so the event and its details must not be changed after the call.
   */
  record(event: AuditEventInput): void;
  /** Listeners see every recorded event synchronously (metrics count from here). */
  subscribe(listener: (event: AuditEventInput) => void): () => void;
  /** Writes everything queued so far (tests, CLI commands before exit, shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}
