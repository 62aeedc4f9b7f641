/**
 * What an admin may do to users and sessions, for the admin API (http/routes/admin-users.ts) and the
 * CLI (users/admin-commands.ts) alike: read, change, delete a user; list and end sessions. Every change
 * is audited with what it changed (before/after, never the password hash), and every change that must
 * end the user's sessions (disable, delete, a role taken away, a new email) revokes them in the same
 * transaction, then refuses their tokens here and tells the other processes once it has committed.
 */
import type { Kysely, Transaction } from 'kysely';
import type { AuditActor, AuditLog, RequestContext } from '../audit/events.ts';
import { addresseeName } from '../auth/email-common.ts';
import { spendUserEmailTokens } from '../auth/email-tokens.ts';
import { announceRevocations, type RevocationReason } from '../auth/revocation.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Mailer } from '../mail/mailer.ts';
import { AppError, invalidInput } from '../errors.ts';
import type { RevocationBus } from '../shared/index.ts';
import { isUniqueViolation } from '../storage/db.ts';
import type { Database } from '../storage/schema.ts';
import { findSession, listUserSessions, revokeSessions, type SessionRow } from '../storage/sessions.ts';
import {
  deleteUserRow,
  findUserById,
  findUserByNormalizedEmail,
  findUserForUpdate,
  listEnabledAdminIds,
  takeSqliteWriteLock,
  updateUserRow,
  type UserRow,
} from '../storage/users.ts';
import type { Denylist } from '../tokens/denylist.ts';
import { ADMIN_ROLE } from './admin.ts';
import { normalizeEmail, parseRoles } from './user.ts';

export interface AdminServiceDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'roles' | 'sessions'>;
  denylist: Pick<Denylist, 'addSessions'>;
  shared: { revocations: RevocationBus };
  audit: Pick<AuditLog, 'record'>;
  /** Tells the old address when an admin moves an account to another one (absent: no message). */
  mailer?: Pick<Mailer, 'send'>;
}

/** Who acts, for the audit log: a signed-in admin (API) or an operator (CLI), and where the request came from. */
export interface AdminCaller {
  actor: AuditActor;
  context?: RequestContext | undefined;
}

/** A user as an admin sees it: everything but the password hash and internal columns. Times ISO 8601. */
export interface AdminUser {
  id: number;
  email: string;
  name: string;
  roles: string[];
  disabled: boolean;
  disabled_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface AdminSession {
  id: string;
  client_id: string;
  audience: string | null;
  created_at: string;
  last_refreshed_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
}

export interface UserChanges {
  name?: string | undefined;
  email?: string | undefined;
  roles?: string[] | undefined;
  disabled?: boolean | undefined;
}

/** Sessions listed per user at most: the newest; ended ones are purged anyway once their tokens have expired. */
export const SESSIONS_LISTED_MAX = 500;

const iso = (epochSeconds: number) => new Date(Number(epochSeconds) * 1000).toISOString();
const isoOrNull = (epochSeconds: number | null) => (epochSeconds === null ? null : iso(epochSeconds));

export function toAdminUser(row: UserRow): AdminUser {
  return {
    id: Number(row.id),
    email: row.email,
    name: row.name,
    roles: parseRoles(row.roles),
    disabled: row.disabled_at !== null,
    disabled_at: isoOrNull(row.disabled_at),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

function toAdminSession(row: SessionRow): AdminSession {
  return {
    id: row.id,
    client_id: row.client_id,
    audience: row.audience,
    created_at: iso(row.created_at),
    last_refreshed_at: iso(row.last_refreshed_at),
    expires_at: iso(row.expires_at),
    revoked_at: isoOrNull(row.revoked_at),
    revoked_reason: row.revoked_reason,
  };
}

/** The audit event's actor and request context. */
const by = (caller: AdminCaller) => (caller.context ? { actor: caller.actor, context: caller.context } : { actor: caller.actor });

const userNotFound = () => new AppError('user_not_found', 'user not found');

export async function getUser(deps: Pick<AdminServiceDeps, 'db'>, id: number): Promise<AdminUser> {
  const row = await findUserById(deps.db, id);
  if (!row) throw userNotFound();
  return toAdminUser(row);
}

/** The CLI names a user by id (digits) or by email (any case). */
export async function findUserByReference(deps: Pick<AdminServiceDeps, 'db'>, reference: string): Promise<AdminUser> {
  const row = /^\d{1,15}$/.test(reference) ? await findUserById(deps.db, Number(reference)) : await findUserByNormalizedEmail(deps.db, normalizeEmail(reference));
  if (!row) throw userNotFound();
  return toAdminUser(row);
}

/** Whether the user counts towards "at least one admin": enabled, with the admin role. */
const isEnabledAdmin = (user: { disabled_at: number | null; roles: string[] }) => user.disabled_at === null && user.roles.includes(ADMIN_ROLE);

/**
 * Within the caller's transaction: locks what the last-admin rule reads (the enabled admins, then
 * the user), and refuses a change that would leave no enabled admin. Returns the user as locked.
 */
async function lockUserAndCheckAdmins(trx: Transaction<Database>, id: number, after: (before: UserRow) => { disabled_at: number | null; roles: string[] }): Promise<UserRow> {
  await takeSqliteWriteLock(trx);
  // Admins first, then the user, in every admin change: one lock order, so two never deadlock.
  const adminIds = await listEnabledAdminIds(trx, { lock: true });
  const before = await findUserForUpdate(trx, id);
  if (!before) throw userNotFound();
  const wasAdmin = isEnabledAdmin({ disabled_at: before.disabled_at, roles: parseRoles(before.roles) });
  if (wasAdmin && !isEnabledAdmin(after(before)) && !adminIds.some((adminId) => adminId !== id)) {
    throw new AppError('last_admin', 'the last admin cannot lose the admin role, be disabled or be deleted');
  }
  return before;
}

/** Records a refused admin change (the last-admin rule) before passing the error on. */
function auditRefusal(deps: AdminServiceDeps, caller: AdminCaller, action: 'admin.user_update' | 'admin.user_delete', id: number, error: unknown): void {
  if (error instanceof AppError && error.code === 'last_admin') {
    deps.audit.record({ action, outcome: 'failure', reason: 'last_admin', ...by(caller), subject: { type: 'user', id: String(id) } });
  }
}

function checkChanges(deps: Pick<AdminServiceDeps, 'config'>, changes: UserChanges): UserChanges {
  const checked: UserChanges = {};
  if (changes.name !== undefined) {
    checked.name = changes.name.normalize('NFC').trim();
    if (checked.name === '') throw invalidInput([{ field: 'name', message: 'name must not be blank' }]);
  }
  if (changes.email !== undefined) {
    checked.email = changes.email.normalize('NFC').trim();
    if (!checked.email.includes('@')) throw invalidInput([{ field: 'email', message: 'email must be a valid email' }]);
  }
  if (changes.roles !== undefined) {
    const unknown = changes.roles.filter((role) => !deps.config.roles.includes(role));
    if (unknown.length > 0) {
      throw invalidInput([{ field: 'roles', message: `roles ${unknown.map((role) => JSON.stringify(role)).join(', ')} not in ROLES (${deps.config.roles.join(', ')})` }]);
    }
    checked.roles = [...new Set(changes.roles)];
  }
  if (changes.disabled !== undefined) checked.disabled = changes.disabled;
  if (Object.keys(checked).length === 0) throw invalidInput([{ field: 'body', message: 'body must change at least one of name, email, roles, disabled' }]);
  return checked;
}

/**
 * Changes a user. Disabling, taking a role away or changing the email revokes every session of the
 * user for good (enabling again does not bring them back); the last enabled admin cannot lose the
 * role or be disabled (last_admin). An email taken by another user: email_taken.
 */
export async function updateUser(deps: AdminServiceDeps, caller: AdminCaller, id: number, requested: UserChanges): Promise<AdminUser> {
  return (await changeUser(deps, caller, id, requested)).user;
}

/** updateUser, also telling how many sessions the change ended (the CLI reports it). */
export async function changeUser(deps: AdminServiceDeps, caller: AdminCaller, id: number, requested: UserChanges): Promise<{ user: AdminUser; revokedSessions: number }> {
  const changes = checkChanges(deps, requested);
  const now = deps.clock.nowSeconds();
  let outcome;
  try {
    outcome = await deps.db.transaction().execute(async (trx) => {
      const before = await lockUserAndCheckAdmins(trx, id, (row) => ({
        roles: changes.roles ?? parseRoles(row.roles),
        disabled_at: changes.disabled === undefined ? row.disabled_at : changes.disabled ? (row.disabled_at ?? now) : null,
      }));
      const beforeRoles = parseRoles(before.roles);
      const set: Parameters<typeof updateUserRow>[2] = {};
      const diff: { before: Record<string, unknown>; after: Record<string, unknown> } = { before: {}, after: {} };
      const note = (field: string, from: unknown, to: unknown) => {
        diff.before[field] = from;
        diff.after[field] = to;
      };
      if (changes.name !== undefined && changes.name !== before.name) {
        set.name = changes.name;
        note('name', before.name, changes.name);
      }
      if (changes.email !== undefined && changes.email !== before.email) {
        set.email = changes.email;
        set.email_normalized = normalizeEmail(changes.email);
        // Nobody has shown they read mail at the new address yet.
        set.email_verified_at = null;
        note('email', before.email, changes.email);
      }
      if (changes.roles !== undefined && JSON.stringify(changes.roles) !== JSON.stringify(beforeRoles)) {
        set.roles = JSON.stringify(changes.roles);
        note('roles', beforeRoles, changes.roles);
      }
      if (changes.disabled !== undefined && changes.disabled !== (before.disabled_at !== null)) {
        set.disabled_at = changes.disabled ? now : null;
        note('disabled', !changes.disabled, changes.disabled);
      }
      if (Object.keys(set).length === 0) return { before, after: before, diff: undefined, revoked: [] };

      const after = await updateUserRow(trx, id, { ...set, updated_at: now });
      if (set.email !== undefined) {
        // As after the owner's own change: links mailed before the move (a verification or a reset to the old
        // address, a pending move to a third one, perhaps a thief's) must not prove, reset or undo anything now.
        await spendUserEmailTokens(trx, id, ['verify_email', 'reset_password', 'change_email'], now);
      }
      if (set.disabled_at !== undefined && set.disabled_at !== null) {
        // A login halfway through (password right, code not yet sent) ends too: enabled again, its ticket must not finish it.
        await trx.deleteFrom('mfa_tickets').where('user_id', '=', id).execute();
      }
      const rolesRemoved = changes.roles !== undefined && beforeRoles.some((role) => !changes.roles!.includes(role));
      // A token carries the roles and the email; a disabled account must not come back to old sessions when enabled.
      const reason: RevocationReason | undefined =
        set.disabled_at !== undefined && set.disabled_at !== null ? 'account_disabled' : rolesRemoved ? 'roles_changed' : set.email !== undefined ? 'email_changed' : undefined;
      const revoked = reason ? await revokeSessions(trx, { userId: id }, now, reason) : [];
      return { before, after, diff, revoked };
    });
  } catch (error) {
    auditRefusal(deps, caller, 'admin.user_update', id, error);
    // The unique index decides races: of two admins giving one email to two users, one wins.
    if (isUniqueViolation(error)) throw new AppError('email_taken', 'email already registered');
    throw error;
  }
  announceRevocations(deps, outcome.revoked, now);
  if (outcome.diff) {
    deps.audit.record({
      action: 'admin.user_update',
      ...by(caller),
      subject: { type: 'user', id: String(id) },
      details: { ...outcome.diff, revoked_sessions: outcome.revoked.length },
    });
  }
  const movedFrom = outcome.diff?.before.email;
  if (typeof movedFrom === 'string' && deps.mailer) {
    // The owner hears of it at the address they had, as after their own email change: without this, a
    // stolen admin token could move an account to a mailbox of its choosing, reset the password, and
    // leave the owner nothing to notice.
    const name = addresseeName(outcome.before);
    deps.mailer.send({
      to: { name, address: movedFrom },
      template: 'email_changed',
      values: { name, email: movedFrom, new_email: outcome.after.email, link: '', expires: '' },
    });
  }
  return { user: toAdminUser(outcome.after), revokedSessions: outcome.revoked.length };
}

/**
 * Deletes a user. Its sessions are revoked in the same transaction (the cascade then drops them), and
 * once committed their ids go to this process's denylist and revocation feed and to the other
 * processes: the rows are gone, so a database sync could never tell them. Any token of the user is
 * refused from then on (also as "subject no longer exists"). The last enabled admin cannot be deleted.
 */
export async function deleteUser(deps: AdminServiceDeps, caller: AdminCaller, id: number): Promise<{ revokedSessions: number }> {
  const now = deps.clock.nowSeconds();
  let outcome;
  try {
    outcome = await deps.db.transaction().execute(async (trx) => {
      const before = await lockUserAndCheckAdmins(trx, id, () => ({ roles: [], disabled_at: now }));
      const revoked = await revokeSessions(trx, { userId: id }, now, 'account_deleted');
      await deleteUserRow(trx, id);
      return { before, revoked };
    });
  } catch (error) {
    auditRefusal(deps, caller, 'admin.user_delete', id, error);
    throw error;
  }
  announceRevocations(deps, outcome.revoked, now);
  const { email, name, roles, disabled } = toAdminUser(outcome.before);
  deps.audit.record({
    action: 'admin.user_delete',
    ...by(caller),
    subject: { type: 'user', id: String(id) },
    details: { before: { email, name, roles, disabled }, after: null, revoked_sessions: outcome.revoked.length },
  });
  return { revokedSessions: outcome.revoked.length };
}

/** The user's sessions, newest first (at most SESSIONS_LISTED_MAX); active: only live ones, or only ended ones. */
export async function listSessions(deps: Pick<AdminServiceDeps, 'db' | 'clock' | 'config'>, userId: number, options: { active?: boolean | undefined } = {}): Promise<AdminSession[]> {
  if (!(await findUserById(deps.db, userId))) throw userNotFound();
  const now = deps.clock.nowSeconds();
  const live = options.active === undefined ? undefined : { now, createdAfter: now - deps.config.sessions.maxAgeSeconds, wanted: options.active };
  const rows = await listUserSessions(deps.db, userId, { limit: SESSIONS_LISTED_MAX, ...(live ? { live } : {}) });
  return rows.map(toAdminSession);
}

/** Ends one session (its refresh token stops working, its access tokens are refused); an already ended one stays as it was. */
export async function revokeSession(deps: AdminServiceDeps, caller: AdminCaller, sessionId: string): Promise<{ revoked: boolean }> {
  const session = await findSession(deps.db, sessionId);
  if (!session) throw new AppError('session_not_found', 'session not found');
  const now = deps.clock.nowSeconds();
  const reason: RevocationReason = 'admin_revoked';
  const revoked = await revokeSessions(deps.db, { sessionId }, now, reason);
  announceRevocations(deps, revoked, now);
  deps.audit.record({
    action: 'admin.session_revoke',
    ...by(caller),
    subject: { type: 'session', id: sessionId },
    details:
      revoked.length > 0
        ? { user_id: Number(session.user_id), before: { revoked_at: null }, after: { revoked_at: iso(now), revoked_reason: reason } }
        : { user_id: Number(session.user_id), already_revoked: true },
  });
  return { revoked: revoked.length > 0 };
}

/** Ends every live session of the user; returns how many. */
export async function revokeUserSessions(deps: AdminServiceDeps, caller: AdminCaller, userId: number): Promise<number> {
  if (!(await findUserById(deps.db, userId))) throw userNotFound();
  const now = deps.clock.nowSeconds();
  const revoked = await revokeSessions(deps.db, { userId }, now, 'admin_revoked');
  announceRevocations(deps, revoked, now);
  deps.audit.record({
    action: 'admin.user_sessions_revoke',
    ...by(caller),
    subject: { type: 'user', id: String(userId) },
    details: { revoked_sessions: revoked.length },
  });
  return revoked.length;
}
