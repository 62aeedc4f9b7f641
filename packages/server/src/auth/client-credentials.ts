import type { Client } from '../clients/clients.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { AccessTokens, IssuedAccessToken } from '../tokens/access-tokens.ts';
import { audienceForClient, type RequestedAudience } from './token-request.ts';

export interface ClientCredentialsDeps {
  config: Pick<Config, 'jwt'>;
  accessTokens: AccessTokens;
}

export interface ClientCredentialsResult extends IssuedAccessToken {
  scopes: string[];
}

/**
 * A service's own token (grant_type=client_credentials, RFC 6749 section 4.4): sub and client_id are
 * the client, its scopes those it was registered with, or the part of them it asked for.
 * The caller has authenticated the client; public clients have no credentials to present.
 */
export async function issueClientCredentials(
  deps: ClientCredentialsDeps,
  client: Client,
  request: { scope?: string | undefined; audience?: RequestedAudience | undefined },
): Promise<ClientCredentialsResult> {
  if (client.type !== 'confidential') throw new AppError('forbidden', 'only confidential clients may use client_credentials');
  const asked = request.scope === undefined ? undefined : [...new Set(request.scope.split(' ').filter(Boolean))];
  if (asked?.some((scope) => !client.scopes.includes(scope))) throw invalidScope();
  const scopes = asked && asked.length > 0 ? asked : client.scopes;
  const audience = audienceForClient(client, request.audience, deps.config.jwt.audience);
  const issued = await deps.accessTokens.issueClientToken({ clientId: client.id, scopes, audience });
  return { ...issued, scopes };
}

/** An invalid_input naming the scope field: the token endpoint answers invalid_scope for it. */
export function invalidScope(): AppError {
  return new AppError('invalid_input', 'scope not allowed', { fieldErrors: [{ field: 'scope', message: 'scope asks for more than this client may have' }] });
}
