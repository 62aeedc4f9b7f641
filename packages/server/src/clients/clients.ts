import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { AppError } from '../errors.ts';
import { deleteClientRow, findClientRow, insertClientRow, listClientRows, updateClientRow, type ClientRow } from '../storage/clients.ts';
import type { Database } from '../storage/schema.ts';

/** The public client the seed's session, and every request without a client_id, signs in through. */
export const DEFAULT_CLIENT_ID = 'gatehouse';

/** Lowercase, starts with a letter, so a client id is never all digits and never equals a user's sub. */
export const CLIENT_ID_PATTERN = /^[a-z][a-z0-9._-]{2,63}$/;
/** Audiences (RFC 8707 resource indicators or plain API names) and scopes: printable, no spaces. */
const AUDIENCE_PATTERN = /^[\x21-\x7e]{1,200}$/;
const SCOPE_PATTERN = /^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/; // RFC 6749 scope-token: no space, quote or backslash

/** Client secrets: 256 random bits with a recognisable prefix, so a leaked one is easy to find in code scanning. */
const SECRET_PREFIX = 'ghcs_';
const SECRET_PATTERN = /^ghcs_[A-Za-z0-9_-]{43}$/;

export type ClientType = 'public' | 'confidential';

export interface Client {
  id: string;
  name: string;
  type: ClientType;
  /** Audiences this client may ask for besides JWT_AUDIENCE. */
  audiences: string[];
  /** Scopes its client_credentials tokens carry (confidential clients). */
  scopes: string[];
  createdAt: number;
  updatedAt: number;
  disabledAt: number | null;
  /** Whether a previous secret is still accepted, and until when. */
  previousSecretExpiresAt: number | null;
}

export interface ClientsDeps {
  db: Kysely<Database>;
  clock: Clock;
}

function toClient(row: ClientRow): Client {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    audiences: parseStringArray(row.audiences),
    scopes: parseStringArray(row.scopes),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    disabledAt: row.disabled_at === null ? null : Number(row.disabled_at),
    previousSecretExpiresAt: row.previous_secret_expires_at === null ? null : Number(row.previous_secret_expires_at),
  };
}

function parseStringArray(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}

/** SHA-256 is enough here: the secret is 256 random bits, not a password, so there is nothing to guess. */
export function hashClientSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

export function generateClientSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

function sameHash(expectedHash: string | null, presentedHash: string): boolean {
  if (expectedHash === null) return false;
  const expected = Buffer.from(expectedHash);
  const presented = Buffer.from(presentedHash);
  return expected.length === presented.length && timingSafeEqual(expected, presented);
}

/** A client that exists and is not disabled. */
export async function findActiveClient(db: Kysely<Database>, id: string): Promise<Client | undefined> {
  if (!CLIENT_ID_PATTERN.test(id)) return undefined;
  const row = await findClientRow(db, id);
  return row && row.disabled_at === null ? toClient(row) : undefined;
}

export async function findClient(db: Kysely<Database>, id: string): Promise<Client | undefined> {
  if (!CLIENT_ID_PATTERN.test(id)) return undefined;
  const row = await findClientRow(db, id);
  return row ? toClient(row) : undefined;
}

export async function listClients(db: Kysely<Database>): Promise<Client[]> {
  return (await listClientRows(db)).map(toClient);
}

/** Whether a client may ask for this audience: JWT_AUDIENCE always, others only when registered with it. */
export function mayRequestAudience(client: Client, audience: string, defaultAudience: string): boolean {
  return audience === defaultAudience || client.audiences.includes(audience);
}

/**
 * Checks a confidential client's id and secret. The same error (client_invalid) for an unknown,
 * public or disabled client, a wrong or expired secret: an attacker learns nothing of which.
 */
export async function verifyClientSecret(deps: ClientsDeps, clientId: string, secret: string): Promise<Client> {
  // Hash first, whatever the id: an unknown client costs what a known one does.
  const presentedHash = hashClientSecret(secret);
  const row = CLIENT_ID_PATTERN.test(clientId) && SECRET_PATTERN.test(secret) ? await findClientRow(deps.db, clientId) : undefined;
  const now = deps.clock.nowSeconds();
  const current = sameHash(row?.secret_hash ?? null, presentedHash);
  const previous =
    row?.previous_secret_expires_at != null && Number(row.previous_secret_expires_at) > now && sameHash(row.previous_secret_hash, presentedHash);
  if (!row || row.type !== 'confidential' || row.disabled_at !== null || !(current || previous)) throw clientInvalid();
  return toClient(row);
}

/**
 * Client authentication by HTTP Basic (RFC 6749 section 2.3.1, client_secret_basic): the id and
 * secret are form-urlencoded before base64, so both are decoded after splitting on the first colon.
 */
export function parseBasicCredentials(authorization: string | undefined): { clientId: string; secret: string } | undefined {
  if (typeof authorization !== 'string') return undefined;
  const match = /^Basic +([A-Za-z0-9+/]+={0,2})\s*$/i.exec(authorization);
  if (!match || match[1]!.length > 1024) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    return secret ? { clientId, secret } : undefined;
  } catch {
    return undefined; // malformed percent-encoding
  }
}

/** A confidential client from the Authorization header, or client_invalid (401, WWW-Authenticate: Basic). */
export async function authenticateClient(deps: ClientsDeps, authorization: string | undefined): Promise<Client> {
  const credentials = parseBasicCredentials(authorization);
  if (!credentials) throw clientInvalid();
  return verifyClientSecret(deps, credentials.clientId, credentials.secret);
}

export function clientInvalid(): AppError {
  return new AppError('client_invalid', 'client authentication failed');
}

export interface NewClient {
  id: string;
  name: string;
  type: ClientType;
  audiences?: string[];
  scopes?: string[];
}

/** Problems with a new client's fields, for the CLI to list all at once. */
export function validateNewClient(input: NewClient): string[] {
  const problems: string[] = [];
  if (!CLIENT_ID_PATTERN.test(input.id)) problems.push('id must be 3-64 characters of a-z, 0-9, ".", "_" or "-", starting with a letter');
  if (!input.name.trim() || input.name.length > 100 || /[\u0000-\u001f\u007f]/.test(input.name)) problems.push('name must be 1-100 printable characters');
  if (input.type !== 'public' && input.type !== 'confidential') problems.push('type must be public or confidential');
  for (const audience of input.audiences ?? []) if (!AUDIENCE_PATTERN.test(audience)) problems.push(`audience "${audience}" must be 1-200 printable characters without spaces`);
  for (const scope of input.scopes ?? []) if (!SCOPE_PATTERN.test(scope)) problems.push(`scope "${scope}" must be 1-100 printable characters without spaces, quotes or backslashes`);
  if (input.type === 'public' && (input.scopes ?? []).length > 0) problems.push('a public client cannot have scopes: it cannot use client_credentials');
  return problems;
}

/** Creates a client; a confidential one gets a secret, returned once and stored only as its hash. */
export async function createClient(deps: ClientsDeps, input: NewClient): Promise<{ client: Client; secret: string | undefined }> {
  const problems = validateNewClient(input);
  if (problems.length) throw new AppError('invalid_input', problems.join('; '));
  const now = deps.clock.nowSeconds();
  const secret = input.type === 'confidential' ? generateClientSecret() : undefined;
  if (await findClientRow(deps.db, input.id)) throw new AppError('invalid_input', `client "${input.id}" already exists`);
  await insertClientRow(deps.db, {
    id: input.id,
    name: input.name.trim(),
    type: input.type,
    secret_hash: secret ? hashClientSecret(secret) : null,
    previous_secret_hash: null,
    previous_secret_expires_at: null,
    audiences: JSON.stringify([...new Set(input.audiences ?? [])]),
    scopes: JSON.stringify([...new Set(input.scopes ?? [])]),
    created_at: now,
    updated_at: now,
    disabled_at: null,
  });
  const client = await findClient(deps.db, input.id);
  return { client: client!, secret };
}

/** A new secret; the old one keeps working for graceSeconds (0: refused at once, e.g. after a leak). */
export async function rotateClientSecret(deps: ClientsDeps, id: string, graceSeconds: number): Promise<string> {
  const row = CLIENT_ID_PATTERN.test(id) ? await findClientRow(deps.db, id) : undefined;
  if (!row) throw new AppError('invalid_input', `no client "${id}"`);
  if (row.type !== 'confidential') throw new AppError('invalid_input', `client "${id}" is public: it has no secret`);
  const now = deps.clock.nowSeconds();
  const secret = generateClientSecret();
  await updateClientRow(deps.db, id, {
    secret_hash: hashClientSecret(secret),
    previous_secret_hash: graceSeconds > 0 ? row.secret_hash : null,
    previous_secret_expires_at: graceSeconds > 0 ? now + graceSeconds : null,
    updated_at: now,
  });
  return secret;
}

export async function setClientDisabled(deps: ClientsDeps, id: string, disabled: boolean): Promise<boolean> {
  if (!CLIENT_ID_PATTERN.test(id)) return false;
  const now = deps.clock.nowSeconds();
  return updateClientRow(deps.db, id, { disabled_at: disabled ? now : null, updated_at: now });
}

/** Deletes a client; the default client stays, since requests without client_id sign in through it. */
export async function deleteClient(deps: ClientsDeps, id: string): Promise<boolean> {
  if (id === DEFAULT_CLIENT_ID) throw new AppError('invalid_input', `the default client "${DEFAULT_CLIENT_ID}" cannot be deleted`);
  if (!CLIENT_ID_PATTERN.test(id)) return false;
  return deleteClientRow(deps.db, id);
}
