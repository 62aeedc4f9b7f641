import type { Kysely } from 'kysely';
import { DEFAULT_CLIENT_ID, findActiveClient, mayRequestAudience, type Client } from '../clients/clients.ts';
import { invalidInput } from '../errors.ts';
import type { Database } from '../storage/schema.ts';

/** An audience a request asked for, and the parameter it came in (RFC 8707 `resource`, or the common `audience`). */
export interface RequestedAudience {
  value: string;
  field: 'audience' | 'resource';
}

/**
 * `audience` and `resource` name the same thing here (a token carries one `aud`): either, or both
 * with the same value. Several different resources would need several audiences: refused.
 */
export function requestedAudience(params: { audience?: string | undefined; resource?: string | readonly string[] | undefined }): RequestedAudience | undefined {
  const resources = params.resource === undefined ? [] : [...new Set(typeof params.resource === 'string' ? [params.resource] : params.resource)];
  if (resources.length > 1) throw invalidInput([{ field: 'resource', message: 'resource may name one audience only' }]);
  const [resource] = resources;
  if (params.audience !== undefined && resource !== undefined && params.audience !== resource) {
    throw invalidInput([{ field: 'resource', message: 'resource and audience must be the same when both are given' }]);
  }
  if (resource !== undefined) return { value: resource, field: 'resource' };
  return params.audience === undefined ? undefined : { value: params.audience, field: 'audience' };
}

/**
 * The audience a token of this client will carry: null (JWT_AUDIENCE) unless the client asked for
 * another one it is registered for; invalid_input naming the parameter otherwise.
 */
export function audienceForClient(client: Client, requested: RequestedAudience | undefined, ownAudience: string): string | null {
  if (requested === undefined || requested.value === ownAudience) return null;
  if (!mayRequestAudience(client, requested.value, ownAudience)) {
    throw invalidInput([{ field: requested.field, message: `${requested.field} is not an audience this client may ask for` }]);
  }
  return requested.value;
}

/** Whether an invalid_input error is about the audience (OAuth answers invalid_target for those). */
export function isAudienceProblem(fieldErrors: ReadonlyArray<{ field: string }> | undefined): boolean {
  return fieldErrors?.some((problem) => problem.field === 'audience' || problem.field === 'resource') ?? false;
}

/**
 * The client a JSON /login or /token/refresh names with client_id (DEFAULT_CLIENT_ID without one).
 * Those routes authenticate no client, so only public clients may be named there. An unknown,
 * disabled or confidential client gets one answer: nothing tells which ids exist.
 */
export async function findPublicClient(db: Kysely<Database>, clientId: string | undefined): Promise<Client> {
  const client = await findActiveClient(db, clientId ?? DEFAULT_CLIENT_ID);
  if (!client || client.type !== 'public') {
    throw invalidInput([{ field: 'client_id', message: 'client_id is not a public client that can sign in here' }]);
  }
  return client;
}
