import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { createClientRateLimiter } from '../../abuse/client-rate-limit.ts';
import { invalidScope, issueClientCredentials } from '../../auth/client-credentials.ts';
import { introspectToken } from '../../auth/introspection.ts';
import { login } from '../../auth/login.ts';
import { refreshSession } from '../../auth/refresh.ts';
import { revokeToken } from '../../auth/token-revocation.ts';
import { audienceForClient, requestedAudience } from '../../auth/token-request.ts';
import { authenticateClient, clientInvalid, DEFAULT_CLIENT_ID, findActiveClient, type Client } from '../../clients/clients.ts';
import type { Deps } from '../../deps.ts';
import { clientGoneSignal } from '../hashing.ts';
import { FORM_CONTENT_TYPE, MFA_REQUIRED_DESCRIPTION, OAuthError, OAuthErrorResponse, oauthErrorHandler, registerFormBodies } from '../oauth-protocol.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { CLIENT_SECURITY, WELL_FORMED } from '../schemas.ts';

/**
 * Introspections one client may make per minute, across every worker and instance. Far above what
 * a resource server caching answers needs, low enough that one misbehaving client cannot take
 * every core: a process answers several thousand a second.
 */

const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f]*$';
const VISIBLE_ASCII = '^[\\x21-\\x7e]+$';
const CLIENT_FAILED = OAuthErrorResponse('invalid_client: client authentication failed (one answer for every reason); WWW-Authenticate: Basic', 'invalid_client');
const TOO_MANY = OAuthErrorResponse('temporarily_unavailable: too many requests; Retry-After says when to try again', 'temporarily_unavailable');
const UNAVAILABLE = OAuthErrorResponse('temporarily_unavailable: overloaded or the database is unavailable; Retry-After says when to try again', 'temporarily_unavailable');
/** A confidential client with HTTP Basic, or a public client with client_id alone (no credentials). */
const CLIENT_OPTIONAL_SECURITY: Array<Record<string, string[]>> = [...CLIENT_SECURITY, {}];
const EXAMPLE_ACCESS_TOKEN = 'eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl';
const EXAMPLE_REFRESH_TOKEN = 'kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI';

const ClientFields = {
  client_id: Type.Optional(Type.String({ maxLength: 64, description: 'A public client identifies itself here (default `gatehouse`); a confidential one uses HTTP Basic' })),
  client_secret: Type.Optional(Type.String({ maxLength: 256, description: 'Not accepted: confidential clients authenticate with HTTP Basic (client_secret_basic)' })),
};
const AudienceFields = {
  audience: Type.Optional(Type.String({ maxLength: 200, pattern: VISIBLE_ASCII, description: "JWT_AUDIENCE (default) or one of the client's audiences" })),
  resource: Type.Optional(
    Type.Union([Type.String({ maxLength: 200, pattern: VISIBLE_ASCII }), Type.Array(Type.String({ maxLength: 200, pattern: VISIBLE_ASCII }), { maxItems: 10 })], {
      description: 'RFC 8707 resource indicator: the same as audience (one value)',
    }),
  ),
};

// Unknown parameters are ignored, as RFC 6749 section 3.2 asks.
const TokenBody = Type.Object(
  {
    grant_type: Type.String({ maxLength: 100, description: '`password`, `refresh_token` or `client_credentials`' }),
    username: Type.Optional(Type.String({ maxLength: 254, pattern: NO_CONTROL, description: 'password grant: the email' })),
    password: Type.Optional(Type.String({ maxLength: 4096, pattern: WELL_FORMED })),
    refresh_token: Type.Optional(Type.String({ maxLength: 512 })),
    scope: Type.Optional(Type.String({ maxLength: 2000, description: "client_credentials: some of the client's scopes (default all)" })),
    ...ClientFields,
    ...AudienceFields,
  },
  {
    additionalProperties: true,
    examples: [
      { grant_type: 'refresh_token', refresh_token: EXAMPLE_REFRESH_TOKEN, client_id: 'web' },
      { grant_type: 'client_credentials', scope: 'orders:read' },
    ],
  },
);

const TokenResponse = Type.Object(
  {
    access_token: Type.String({ description: 'A user token (password, refresh_token) or a client token (client_credentials)' }),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
    refresh_token: Type.Optional(Type.String({ description: 'password and refresh_token grants: the next refresh token (single use)' })),
    scope: Type.Optional(Type.String({ description: 'client_credentials: the scopes the token carries, space-separated' })),
  },
  {
    description: 'RFC 6749 section 5.1 token answer, never cached',
    examples: [{ access_token: EXAMPLE_ACCESS_TOKEN, token_type: 'Bearer', expires_in: 900, refresh_token: EXAMPLE_REFRESH_TOKEN }],
  },
);

const TokenHintFields = {
  token: Type.String({ maxLength: 4096 }),
  token_type_hint: Type.Optional(Type.String({ maxLength: 100, description: 'Ignored: the token is told apart by its shape' })),
};
const RevokeBody = Type.Object({ ...TokenHintFields, ...ClientFields }, { additionalProperties: true, examples: [{ token: EXAMPLE_REFRESH_TOKEN, client_id: 'web' }] });
const IntrospectBody = Type.Object(TokenHintFields, { additionalProperties: true, examples: [{ token: EXAMPLE_ACCESS_TOKEN }] });

const IntrospectionResponse = Type.Object(
  {
    active: Type.Boolean(),
    token_type: Type.Optional(Type.Literal('Bearer')),
    iss: Type.Optional(Type.String()),
    sub: Type.Optional(Type.String()),
    aud: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String()),
    exp: Type.Optional(Type.Integer()),
    iat: Type.Optional(Type.Integer()),
    jti: Type.Optional(Type.String()),
    scope: Type.Optional(Type.String({ description: 'client tokens' })),
    sid: Type.Optional(Type.String({ description: 'user tokens' })),
    roles: Type.Optional(Type.Array(Type.String(), { description: 'user tokens' })),
    email: Type.Optional(Type.String({ description: 'user tokens' })),
    username: Type.Optional(Type.String({ description: 'user tokens: the email' })),
  },
  {
    description: 'RFC 7662 section 2.2: the claims of a live access token, or {"active": false} and nothing else',
    examples: [
      {
        active: true,
        token_type: 'Bearer',
        iss: 'http://localhost:2000',
        sub: '1',
        aud: 'https://orders.example',
        client_id: 'web',
        exp: 1796097781,
        iat: 1796096881,
        jti: 'QeCwSsjP8LTd6ds_BqDJ6Q',
        sid: '3jNTmizJk3hgPt82WuKMHg',
        roles: ['user'],
        email: 'ann@example.com',
        username: 'ann@example.com',
      },
      { active: false },
    ],
  },
);

interface IdentifiedClient {
  client: Client;
  /** A confidential client that proved its secret; false for a public client named by client_id. */
  authenticated: boolean;
}

/**
 * RFC 6749 section 2.3: a confidential client authenticates with HTTP Basic; a public client names
 * itself with client_id (the default public client without one). Every failure is one invalid_client.
 */
async function identifyClient(deps: Deps, request: FastifyRequest, body: { client_id?: string; client_secret?: string }): Promise<IdentifiedClient> {
  if (body.client_secret !== undefined) throw new OAuthError('invalid_client', 'send the client secret with HTTP Basic (client_secret_basic)');
  const { authorization } = request.headers;
  if (authorization !== undefined) {
    const client = await authenticateClient(deps, authorization);
    if (body.client_id !== undefined && body.client_id !== client.id) throw clientInvalid();
    return { client, authenticated: true };
  }
  const client = await findActiveClient(deps.db, body.client_id ?? DEFAULT_CLIENT_ID);
  // A confidential client must prove who it is; an unknown or disabled one gets the same answer.
  if (!client || client.type !== 'public') throw clientInvalid();
  return { client, authenticated: false };
}

function sendTokens(reply: FastifyReply, answer: { access_token: string; expires_in: number; refresh_token?: string; scope?: string }) {
  // RFC 6749 section 5.1: never cached.
  return reply.code(200).header('cache-control', 'no-store').header('pragma', 'no-cache').send({ token_type: 'Bearer' as const, ...answer });
}

function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new OAuthError('invalid_request', `${name} is required`);
  return value;
}

/** The RFC endpoints beside the seed's JSON routes: token (RFC 6749), revocation (RFC 7009), introspection (RFC 7662). */
export async function oauthRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const rateLimit = createRateLimitHook(deps);
  const introspectionLimiter = createClientRateLimiter({
    store: deps.shared.counters,
    clock: deps.clock,
    scope: 'introspect',
    limitPerMinute: deps.config.limits.introspectionPerMinute,
  });

  // Form bodies only: what every OAuth client sends to these two.
  await app.register(async (formOnly) => {
    registerFormBodies(formOnly, { jsonToo: false });
    formOnly.setErrorHandler(oauthErrorHandler);
    const routes = formOnly.withTypeProvider<TypeBoxTypeProvider>();

    routes.post(
      '/oauth/token',
      {
        // The per-address budget of /login and /token/refresh: a client cannot double it by switching routes.
        onRequest: rateLimit,
        schema: {
          operationId: 'requestToken',
          tags: ['oauth'],
          summary: 'OAuth 2.0 token endpoint (RFC 6749): password, refresh_token and client_credentials grants',
          security: CLIENT_OPTIONAL_SECURITY,
          consumes: [FORM_CONTENT_TYPE],
          body: TokenBody,
          response: {
            200: TokenResponse,
            400: OAuthErrorResponse(
              'invalid_request, invalid_grant (wrong password, an account with two-factor authentication: "mfa required - use POST /login", ' +
                'a refresh token that is spent, unknown or another client\'s), invalid_scope, ' +
                'invalid_target (an audience the client may not ask for), unauthorized_client or unsupported_grant_type',
              'invalid_grant',
            ),
            401: CLIENT_FAILED,
            429: TOO_MANY,
            503: UNAVAILABLE,
          },
        },
      },
      async (request, reply) => {
        const { body } = request;
        const { client, authenticated } = await identifyClient(deps, request, body);
        const audience = requestedAudience(body);
        switch (body.grant_type) {
          case 'password': {
            // User tokens carry roles; scopes belong to service tokens.
            if (body.scope !== undefined) throw invalidScope();
            const email = required(body.username, 'username');
            const password = required(body.password, 'password');
            const sessionClient = { clientId: client.id, audience: audienceForClient(client, audience, deps.config.jwt.audience) };
            const result = await login(
              deps,
              { email, password, sessionClient, mfa: 'refuse' },
              { network: requestClientNetwork(request, deps), context: requestContext(request) },
              { signal: clientGoneSignal(reply) },
            );
            // Said only after the right password: the grant has no second step, the client must use POST /login.
            if ('mfaRequired' in result) throw new OAuthError('invalid_grant', MFA_REQUIRED_DESCRIPTION);
            const { tokens } = result;
            return sendTokens(reply, { access_token: tokens.accessToken, expires_in: tokens.expiresInSeconds, refresh_token: tokens.refreshToken });
          }
          case 'refresh_token': {
            if (body.scope !== undefined) throw invalidScope();
            const { tokens } = await refreshSession(deps, required(body.refresh_token, 'refresh_token'), {
              client: { id: client.id, authenticated },
              audience,
              context: requestContext(request),
            });
            return sendTokens(reply, { access_token: tokens.accessToken, expires_in: tokens.expiresInSeconds, refresh_token: tokens.refreshToken });
          }
          case 'client_credentials': {
            if (!authenticated) throw new OAuthError('unauthorized_client', 'client_credentials is for confidential clients, authenticated with HTTP Basic');
            const issued = await issueClientCredentials(deps, client, { scope: body.scope, audience });
            deps.audit.record({
              action: 'client.token',
              actor: { type: 'client', id: client.id },
              subject: { type: 'client', id: client.id },
              context: requestContext(request),
              details: { scopes: issued.scopes, audience: audience?.value ?? deps.config.jwt.audience },
            });
            return sendTokens(reply, { access_token: issued.token, expires_in: issued.expiresInSeconds, ...(issued.scopes.length > 0 ? { scope: issued.scopes.join(' ') } : {}) });
          }
          default:
            throw new OAuthError('unsupported_grant_type', 'grant_type must be password, refresh_token or client_credentials');
        }
      },
    );

    routes.post(
      '/introspect',
      {
        // Before the body is read: only a confidential client's request costs more than a header check.
        onRequest: async (request) => {
          const client = await authenticateClient(deps, request.headers.authorization);
          await introspectionLimiter.consume(client.id);
        },
        schema: {
          operationId: 'introspectToken',
          tags: ['oauth'],
          summary: 'Token introspection (RFC 7662) for confidential clients: the claims of a live access token, else {"active": false}',
          security: CLIENT_SECURITY,
          consumes: [FORM_CONTENT_TYPE],
          body: IntrospectBody,
          response: {
            200: IntrospectionResponse,
            400: OAuthErrorResponse('invalid_request: no token, or a malformed body', 'invalid_request'),
            401: CLIENT_FAILED,
            429: OAuthErrorResponse('temporarily_unavailable: this client spent its budget (60 000 a minute); Retry-After says when to try again', 'temporarily_unavailable'),
            503: UNAVAILABLE,
          },
        },
      },
      async (request, reply) => {
        const answer = await introspectToken(deps, request.body.token);
        return reply.header('cache-control', 'no-store').send(answer);
      },
    );
  });

  // Revocation takes JSON too, so a seed-style client can log out with the refresh token alone.
  await app.register(async (formOrJson) => {
    registerFormBodies(formOrJson, { jsonToo: true });
    formOrJson.setErrorHandler(oauthErrorHandler);
    const routes = formOrJson.withTypeProvider<TypeBoxTypeProvider>();

    routes.post(
      '/revoke',
      {
        onRequest: rateLimit,
        schema: {
          operationId: 'revokeToken',
          tags: ['oauth'],
          summary: "Token revocation (RFC 7009): ends the session of a refresh or access token issued to this client; 200 whatever the token's state",
          security: CLIENT_OPTIONAL_SECURITY,
          consumes: [FORM_CONTENT_TYPE, 'application/json'],
          body: RevokeBody,
          response: {
            200: Type.Null({ description: 'Revoked, or nothing to revoke (RFC 7009 section 2.2: the same answer); no body' }),
            400: OAuthErrorResponse("invalid_request (no token), or unsupported_token_type (the client's own client_credentials token)", 'invalid_request'),
            401: CLIENT_FAILED,
            429: TOO_MANY,
            503: UNAVAILABLE,
          },
        },
      },
      async (request, reply) => {
        const { client, authenticated } = await identifyClient(deps, request, request.body);
        const outcome = await revokeToken(deps, request.body.token, {
          clientId: client.id,
          anyPublicClient: !authenticated && request.body.client_id === undefined,
          authenticated,
          context: requestContext(request),
        });
        if (outcome === 'client_token') throw new OAuthError('unsupported_token_type', 'client tokens cannot be revoked: they expire on their own');
        // No body: RFC 7009 clients read only the status.
        return (reply as FastifyReply).code(200).header('cache-control', 'no-store').send();
      },
    );
  });
}
