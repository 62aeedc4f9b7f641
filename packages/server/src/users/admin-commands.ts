/**
 * `gatehouse users list|show|disable|enable|delete|set-roles` and `gatehouse sessions revoke --user`:
 * the admin API's operations (users/admin-service.ts) for an operator at the machine, audited with
 * actor `operator`. With REDIS_URL the running instances hear of each revocation at once; without it,
 * from their next database sync (about a second), and a deleted user's tokens are refused as soon as
 * their user status is read again (at most a second later).
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { createAuditLog } from '../audit/audit-log.ts';
import type { AuditActor } from '../audit/events.ts';
import type { CommandIo } from '../clients/commands.ts';
import { systemClock } from '../clock.ts';
import { loadConfig } from '../config.ts';
import { isAppError, type AppError } from '../errors.ts';
import { createSharedState } from '../shared/index.ts';
import { createDb } from '../storage/db.ts';
import { changeUser, deleteUser, findUserByReference, listSessions, revokeUserSessions, type AdminServiceDeps, type AdminSession, type AdminUser } from './admin-service.ts';
import { searchUsersPage, type UserFilters } from './list.ts';

const OPTIONS = {
  email: { type: 'string' },
  role: { type: 'string' },
  disabled: { type: 'boolean' },
  enabled: { type: 'boolean' },
  limit: { type: 'string' },
  user: { type: 'string' },
  json: { type: 'boolean' },
} as const;
type OptionName = keyof typeof OPTIONS;

/** Each subcommand: the options it takes, and how many positional arguments follow its name. */
const USERS_COMMANDS: Record<string, { options: OptionName[]; positionals: number }> = {
  list: { options: ['email', 'role', 'disabled', 'enabled', 'limit', 'json'], positionals: 0 },
  show: { options: ['json'], positionals: 1 },
  disable: { options: ['json'], positionals: 1 },
  enable: { options: ['json'], positionals: 1 },
  delete: { options: ['json'], positionals: 1 },
  'set-roles': { options: ['json'], positionals: 2 },
};
const SESSIONS_COMMANDS: Record<string, { options: OptionName[]; positionals: number }> = {
  revoke: { options: ['user', 'json'], positionals: 0 },
};
const PAGE_SIZE = 100;

type Parsed = { subcommand: string; args: string[]; values: { [name in OptionName]?: string | boolean } };

function parse(argv: string[], commands: typeof USERS_COMMANDS): Parsed | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch {
    return undefined;
  }
  const [subcommand = '', ...args] = parsed.positionals;
  const command = commands[subcommand];
  if (!command || args.length !== command.positionals) return undefined;
  if ((Object.keys(parsed.values) as OptionName[]).some((name) => !command.options.includes(name))) return undefined;
  return { subcommand, args, values: parsed.values };
}

/** Returns the exit code: 0 done, 1 refused (the reason on stderr), 2 with the usage for a malformed command. */
export async function runUserAdminCommand(argv: string[], usage: string, io: CommandIo): Promise<number> {
  const parsed = parse(argv, USERS_COMMANDS);
  const limit = parsed?.values.limit === undefined ? undefined : Number(parsed.values.limit);
  if (!parsed || (parsed.values.disabled && parsed.values.enabled) || (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0))) {
    io.stderr.write(`${usage}\n`);
    return 2;
  }
  const { subcommand, args, values } = parsed;
  return withAdminDeps(io, values.json === true, async (deps, print) => {
    if (subcommand === 'list') {
      const filters: UserFilters = {
        email: values.email as string | undefined,
        role: values.role as string | undefined,
        disabled: values.disabled ? true : values.enabled ? false : undefined,
      };
      await listUsers(deps, filters, limit, io, values.json === true);
      return 0;
    }
    const user = await findUserByReference(deps, args[0]!);
    if (subcommand === 'show') {
      const sessions = await listSessions(deps, user.id);
      print(describeUser(user) + describeSessions(sessions), { user, sessions });
      return 0;
    }
    if (subcommand === 'delete') {
      const { revokedSessions } = await deleteUser(deps, operator(), user.id);
      print(`deleted user ${user.id} <${printable(user.email)}>; ${revokedSessions} session(s) revoked\n`, { id: user.id, email: user.email, deleted: true, revoked_sessions: revokedSessions });
      return 0;
    }
    const changes = subcommand === 'set-roles' ? { roles: parseRoleList(args[1]!) } : { disabled: subcommand === 'disable' };
    const { user: changed, revokedSessions } = await changeUser(deps, operator(), user.id, changes);
    const what = subcommand === 'set-roles' ? `set the roles of user ${user.id} <${printable(user.email)}> to ${changed.roles.join(', ') || '(none)'}` : `${subcommand}d user ${user.id} <${printable(user.email)}>`;
    print(`${what}; ${revokedSessions} session(s) revoked\n`, { user: changed, revoked_sessions: revokedSessions });
    return 0;
  });
}

/** `gatehouse sessions revoke --user <id|email>`. */
export async function runSessionsCommand(argv: string[], usage: string, io: CommandIo): Promise<number> {
  const parsed = parse(argv, SESSIONS_COMMANDS);
  if (!parsed || typeof parsed.values.user !== 'string' || parsed.values.user === '') {
    io.stderr.write(`${usage}\n`);
    return 2;
  }
  const reference = parsed.values.user;
  return withAdminDeps(io, parsed.values.json === true, async (deps, print) => {
    const user = await findUserByReference(deps, reference);
    const revoked = await revokeUserSessions(deps, operator(), user.id);
    print(`revoked ${revoked} session(s) of user ${user.id} <${printable(user.email)}>\n`, { user_id: user.id, revoked });
    return 0;
  });
}

/** Every page of the search, printed as it comes: a million users never sit in memory. */
async function listUsers(deps: AdminServiceDeps, filters: UserFilters, limit: number | undefined, io: CommandIo, json: boolean): Promise<void> {
  let cursor: string | undefined;
  let left = limit ?? Infinity;
  do {
    const page = await searchUsersPage(deps.db, filters, { limit: Math.min(PAGE_SIZE, left), cursor });
    // JSON lines: one user per line, so a long list streams and `jq` reads it as it comes.
    io.stdout.write(page.users.map((user) => (json ? `${JSON.stringify(user)}\n` : describeLine(user))).join(''));
    left -= page.users.length;
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined && left > 0);
}

/** A comma-separated list; blanks dropped. Whether each is in ROLES is the service's check. */
function parseRoleList(text: string): string[] {
  return text.split(',').map((role) => role.trim()).filter(Boolean);
}

/** The process's user, when the system can name it: which account at the machine acted. */
function operator(): { actor: AuditActor } {
  try {
    return { actor: { type: 'operator', id: userInfo().username } };
  } catch {
    return { actor: { type: 'operator' } };
  }
}

/**
 * Opens what the admin operations need, runs the command, and reports refusals (exit 1): an unknown
 * user, the last-admin rule, a role outside ROLES. Audit events are written before the command exits.
 */
async function withAdminDeps(
  io: CommandIo,
  json: boolean,
  run: (deps: AdminServiceDeps, print: (text: string, data: unknown) => void) => Promise<number>,
): Promise<number> {
  const config = loadConfig(io.env);
  const clock = io.clock ?? systemClock;
  const log = (level: string, fields: Record<string, unknown>, message: string) => io.stderr.write(`gatehouse: ${level}: ${message} ${JSON.stringify(fields)}\n`);
  const database = await createDb(config.databaseUrl);
  let shared;
  let audit;
  try {
    await database.migrate();
    // With REDIS_URL, revocations reach every running instance at once, as the API's do.
    shared = await createSharedState(config, log);
    audit = createAuditLog({ db: database.kysely, clock, log });
    // This process serves no token: its denylist would have no reader.
    const deps: AdminServiceDeps = { db: database.kysely, clock, config, denylist: { addSessions() {} }, shared, audit };
    return await run(deps, (text, data) => io.stdout.write(json ? `${JSON.stringify(data)}\n` : text));
  } catch (error) {
    const message = isAppError(error) ? refusalMessage(error) : undefined;
    if (message === undefined) throw error;
    io.stderr.write(`gatehouse: ${message}\n`);
    return 1;
  } finally {
    if (audit) {
      await audit.flush();
      if (audit.stats().queued > 0) io.stderr.write('gatehouse: warning: the audit events of this command could not be written\n');
      await audit.close();
    }
    await shared?.close();
    await database.close();
  }
}

function refusalMessage(error: AppError): string | undefined {
  if (error.code === 'user_not_found') return 'no such user';
  if (error.code === 'last_admin') return 'refused: this is the last enabled admin (it cannot lose the admin role, be disabled or be deleted)';
  if (error.code === 'invalid_input') return error.details.fieldErrors?.map((problem) => problem.message).join('; ') ?? error.message;
  if (error.code === 'email_taken') return 'email already registered';
  return undefined;
}

function describeLine(user: AdminUser): string {
  const state = user.disabled ? `disabled since ${user.disabled_at}` : 'enabled';
  return `${user.id}  ${printable(user.email)}  ${printable(JSON.stringify(user.name))}  roles=${user.roles.join(',')}  ${state}\n`;
}

/** Names and emails are the users' own text: C0 and C1 controls (U+009B is CSI on some terminals) are shown as U+FFFD, never sent to the terminal. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
}

function describeUser(user: AdminUser): string {
  return [
    `user ${user.id} <${printable(user.email)}>`,
    `  name: ${printable(user.name)}`,
    `  roles: ${user.roles.join(', ') || '(none)'}`,
    `  ${user.disabled ? `disabled since ${user.disabled_at}` : 'enabled'}`,
    `  created ${user.created_at}, updated ${user.updated_at}`,
  ]
    .map((line) => `${line}\n`)
    .join('');
}

function describeSessions(sessions: AdminSession[]): string {
  if (sessions.length === 0) return 'sessions: none\n';
  const lines = sessions.map((session) => {
    const state = session.revoked_at ? `revoked ${session.revoked_at} (${session.revoked_reason})` : `expires ${session.expires_at}`;
    return `  ${session.id}  client=${session.client_id}  created ${session.created_at}  last refreshed ${session.last_refreshed_at}  ${state}\n`;
  });
  return `sessions (newest first):\n${lines.join('')}`;
}
