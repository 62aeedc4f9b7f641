/** `gatehouse clients …`: create, list, rotate-secret, disable, enable, delete. Each reads the same environment as the service. */
import { parseArgs } from 'node:util';
import { writeAuditEvent } from '../audit/audit-log.ts';
import type { AuditAction } from '../audit/events.ts';
import { systemClock, type Clock } from '../clock.ts';
import { loadConfig } from '../config.ts';
import { isAppError } from '../errors.ts';
import { createDb } from '../storage/db.ts';
import { revokeSessions } from '../storage/sessions.ts';
import { createClient, DEFAULT_CLIENT_ID, deleteClient, listClients, rotateClientSecret, setClientDisabled, type Client, type ClientType } from './clients.ts';

export interface CommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** The environment to read the configuration from (the process's by default). */
  env?: Record<string, string | undefined>;
  clock?: Clock;
}

const SECRET_WARNING = 'store it now: Gatehouse keeps only its hash and will not show it again';
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** A rotation grace beyond this is a second permanent secret, not a grace. */
const MAX_GRACE_SECONDS = 30 * 86400;

const OPTIONS = {
  id: { type: 'string' },
  name: { type: 'string' },
  type: { type: 'string' },
  audience: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  grace: { type: 'string' },
  json: { type: 'boolean' },
} as const;
/** The options each subcommand takes (--json everywhere). */
const ALLOWED: Record<string, Array<keyof typeof OPTIONS>> = {
  create: ['id', 'name', 'type', 'audience', 'scope', 'json'],
  list: ['json'],
  'rotate-secret': ['id', 'grace', 'json'],
  disable: ['id', 'json'],
  enable: ['id', 'json'],
  delete: ['id', 'json'],
};
/** Subcommands that take the client id as --id or as the one positional argument. */
const TAKES_ID = new Set(['rotate-secret', 'disable', 'enable', 'delete']);

class UsageError extends Error {}

/** Returns the exit code: 0 done, 1 refused (with the reason on stderr), 2 with the usage for a malformed command. */
export async function runClientsCommand(argv: string[], usage: string, io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch {
    parsed = undefined;
  }
  const [subcommand = '', ...rest] = parsed?.positionals ?? [];
  const allowed = ALLOWED[subcommand];
  const given = Object.keys(parsed?.values ?? {}) as Array<keyof typeof OPTIONS>;
  const positionalId = TAKES_ID.has(subcommand) ? rest : [];
  if (!parsed || !allowed || given.some((name) => !allowed.includes(name)) || rest.length !== positionalId.length || positionalId.length > 1) {
    io.stderr.write(`${usage}\n`);
    return 2;
  }
  const values = parsed.values;
  const json = values.json === true;

  const config = loadConfig(io.env);
  const clock = io.clock ?? systemClock;
  const database = await createDb(config.databaseUrl);
  try {
    await database.migrate();
    const deps = { db: database.kysely, clock };
    // Stored before the command reports done: an operator's change without its record would be a hole in the log.
    const audited = (action: AuditAction, clientId: string, details: Record<string, unknown>) =>
      writeAuditEvent(database.kysely, clock, { action, actor: { type: 'operator' }, subject: { type: 'client', id: clientId }, details });
    const print = (text: string, data: unknown) => io.stdout.write(json ? `${JSON.stringify(data)}\n` : text);

    if (subcommand === 'create') {
      if (!values.id || !values.name || !values.type) throw new UsageError('create needs --id, --name and --type public|confidential');
      const { client, secret } = await createClient(deps, {
        id: values.id,
        name: values.name,
        type: values.type as ClientType,
        audiences: values.audience ?? [],
        scopes: values.scope ?? [],
      });
      await audited('client.create', client.id, { after: { name: client.name, type: client.type, audiences: client.audiences, scopes: client.scopes } });
      if (json) {
        if (secret) io.stderr.write(`gatehouse: client_secret: ${SECRET_WARNING}\n`);
        print('', { client: describeJson(client), ...(secret ? { client_secret: secret } : {}) });
      } else {
        io.stdout.write(`created ${client.type} client ${client.id} (${client.name})\n${describeLists(client)}`);
        if (secret) io.stdout.write(`client secret: ${secret}\n  ${SECRET_WARNING}\n`);
      }
      return 0;
    }

    if (subcommand === 'list') {
      const clients = await listClients(database.kysely);
      const now = clock.nowSeconds();
      print(clients.map((client) => `${describeLine(client, now)}\n`).join(''), clients.map(describeJson));
      return 0;
    }

    const id = values.id ?? positionalId[0];
    if (!id || (values.id !== undefined && positionalId.length > 0)) throw new UsageError(`${subcommand} needs the client id, once`);

    if (subcommand === 'rotate-secret') {
      const graceSeconds = values.grace === undefined ? 0 : parseGrace(values.grace);
      const secret = await rotateClientSecret(deps, id, graceSeconds);
      const previousUntil = graceSeconds > 0 ? clock.nowSeconds() + graceSeconds : null;
      await audited('client.rotate_secret', id, { grace_seconds: graceSeconds });
      if (json) {
        io.stderr.write(`gatehouse: client_secret: ${SECRET_WARNING}\n`);
        print('', { client_id: id, client_secret: secret, previous_secret_expires_at: previousUntil === null ? null : iso(previousUntil) });
      } else {
        const previous = previousUntil === null ? 'the previous secret is refused from now on' : `the previous secret still works until ${iso(previousUntil)}`;
        io.stdout.write(`new client secret for ${id}: ${secret}\n  ${SECRET_WARNING}\n  ${previous}\n`);
      }
      return 0;
    }

    if (subcommand === 'disable' || subcommand === 'enable') {
      const disabling = subcommand === 'disable';
      // Disabling the default client would refuse every login that names no client: the seed's session included.
      if (disabling && id === DEFAULT_CLIENT_ID) throw new RefusedError(`the default client "${DEFAULT_CLIENT_ID}" cannot be disabled`);
      if (!(await setClientDisabled(deps, id, disabling))) throw new RefusedError(`no client "${id}"`);
      // A disabled client's sessions end for good (enabling it again does not bring them back), and the
      // revocation feed tells the services verifying their tokens; its client tokens are refused by
      // introspection at once and expire within CLIENT_TOKEN_TTL.
      const revoked = disabling ? await revokeSessions(database.kysely, { clientId: id }, clock.nowSeconds(), 'client_disabled') : [];
      await audited(disabling ? 'client.disable' : 'client.enable', id, {
        after: { disabled: disabling },
        ...(disabling ? { revoked_sessions: revoked.length } : {}),
      });
      print(disabling ? `disabled client ${id}; ${revoked.length} session(s) revoked\n` : `enabled client ${id}\n`, {
        client_id: id,
        disabled: disabling,
        ...(disabling ? { revoked_sessions: revoked.length } : {}),
      });
      return 0;
    }

    // delete: the client first, so no new session opens through it, then the sessions it had.
    // deleteClient refuses the default client: requests without client_id sign in through it.
    if (!(await deleteClient(deps, id))) throw new RefusedError(`no client "${id}"`);
    // Every instance refuses their access tokens from its next revocation sync (within a second).
    const revoked = await revokeSessions(database.kysely, { clientId: id }, clock.nowSeconds(), 'client_deleted');
    await audited('client.delete', id, { revoked_sessions: revoked.length });
    print(`deleted client ${id}; ${revoked.length} session(s) revoked\n`, { client_id: id, deleted: true, revoked_sessions: revoked.length });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`gatehouse: ${error.message}\n${usage}\n`);
      return 2;
    }
    if (error instanceof RefusedError || isAppError(error, 'invalid_input')) {
      io.stderr.write(`gatehouse: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await database.close();
  }
}

class RefusedError extends Error {}

/** Seconds, or a duration such as 30m, 1h, 7d. */
function parseGrace(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/i.exec(text.trim());
  const seconds = match ? Number(match[1]) * (DURATION_UNITS[(match[2] || 's').toLowerCase()] ?? 1) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds > MAX_GRACE_SECONDS) {
    throw new RefusedError(`--grace must be a duration up to 30d, in seconds or like 30m/1h/7d (got "${text}")`);
  }
  return seconds;
}

function describeLists(client: Client): string {
  const lines = [];
  if (client.audiences.length) lines.push(`  audiences: ${client.audiences.join(' ')}`);
  if (client.scopes.length) lines.push(`  scopes: ${client.scopes.join(' ')}`);
  return lines.map((line) => `${line}\n`).join('');
}

function describeLine(client: Client, now: number): string {
  const parts = [client.id, client.type, client.disabledAt === null ? 'active' : `disabled since ${iso(client.disabledAt)}`, JSON.stringify(client.name)];
  if (client.audiences.length) parts.push(`audiences=${client.audiences.join(',')}`);
  if (client.scopes.length) parts.push(`scopes=${client.scopes.join(',')}`);
  if (client.previousSecretExpiresAt !== null && client.previousSecretExpiresAt > now) parts.push(`previous secret until ${iso(client.previousSecretExpiresAt)}`);
  return parts.join('  ');
}

function describeJson(client: Client) {
  return {
    id: client.id,
    name: client.name,
    type: client.type,
    audiences: client.audiences,
    scopes: client.scopes,
    created_at: iso(client.createdAt),
    disabled_at: client.disabledAt === null ? null : iso(client.disabledAt),
    previous_secret_expires_at: client.previousSecretExpiresAt === null ? null : iso(client.previousSecretExpiresAt),
  };
}

function iso(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString();
}
