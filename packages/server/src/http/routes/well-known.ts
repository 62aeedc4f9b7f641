import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';
import { JWKS_MAX_AGE_SECONDS } from '../../keys/rotation.ts';
import { PUBLIC_SECURITY } from '../schemas.ts';

/** Client authentication each endpoint takes: HTTP Basic for confidential clients, client_id alone for public ones. */
const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'none'];

/**
 * RFC 8414 authorization-server metadata holding only what is true: the issuer, its keys, the
 * token, revocation and introspection endpoints with the grants and client authentications they
 * take (http/routes/oauth.ts), and where the API is documented. Left out on purpose:
 * - response_types_supported (REQUIRED in RFC 8414 section 2): there is no authorization endpoint,
 *   so the list is empty, and section 3.2 says a claim with zero elements MUST be omitted
 *   (RFC errata 7793 reports exactly this case);
 * - scopes_supported: scopes are per client (`gatehouse clients create --scope`), not one list;
 * - every id_token_* and OpenID field: Gatehouse issues access tokens, never ID tokens;
 * - jwks_uri under HS256: nothing is published there that could verify a token.
 */
function authorizationServerMetadata(deps: Deps): Record<string, string | string[]> {
  const { issuer } = deps.config.jwt;
  const base = issuer.replace(/\/+$/, '');
  return {
    issuer,
    ...(deps.keys.algorithm === 'HS256' ? {} : { jwks_uri: `${base}/.well-known/jwks.json` }),
    token_endpoint: `${base}/oauth/token`,
    grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS,
    revocation_endpoint: `${base}/revoke`,
    revocation_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS,
    introspection_endpoint: `${base}/introspect`,
    // Public clients may not introspect: resource servers are confidential clients.
    introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    service_documentation: `${base}/docs`,
  };
}

/** Public discovery documents for resource servers that verify tokens locally. */
export async function wellKnownRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        operationId: 'getJwks',
        tags: ['discovery'],
        summary: 'Public signing keys (empty with HS256)',
        security: PUBLIC_SECURITY,
        response: { 200: Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }) },
      },
    },
    async (_request, reply) => {
      // Short cache: verifiers pick up a rotated key within minutes, and refetch on an unknown kid anyway.
      // A new key signs only once this has passed (KEY_ACTIVATION_DELAY_SECONDS is built on it).
      reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
      return deps.keys.publicJwks();
    },
  );

  const metadata = authorizationServerMetadata(deps);
  const metadataSchema = Type.Object({
    issuer: Type.String(),
    jwks_uri: Type.Optional(Type.String()),
    token_endpoint: Type.String(),
    grant_types_supported: Type.Array(Type.String()),
    token_endpoint_auth_methods_supported: Type.Array(Type.String()),
    revocation_endpoint: Type.String(),
    revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
    introspection_endpoint: Type.String(),
    introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
    service_documentation: Type.String(),
  });

  app.get(
    '/.well-known/oauth-authorization-server',
    {
      schema: {
        operationId: 'getAuthorizationServerMetadata',
        tags: ['discovery'],
        summary: 'Authorization server metadata (RFC 8414)',
        security: PUBLIC_SECURITY,
        response: { 200: metadataSchema },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return metadata;
    },
  );

  // The same document, not an OpenID Provider configuration: Gatehouse issues no ID tokens, but
  // many JWT middlewares (ASP.NET's JwtBearer Authority, for one) look only here for jwks_uri.
  // A strict OpenID client fails on the missing OpenID fields, which is the truth.
  app.get(
    '/.well-known/openid-configuration',
    {
      schema: {
        operationId: 'getOpenIdConfiguration',
        tags: ['discovery'],
        summary: 'The RFC 8414 metadata again, for JWT middlewares that only look here (Gatehouse is not an OpenID Provider)',
        security: PUBLIC_SECURITY,
        response: { 200: metadataSchema },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return metadata;
    },
  );
}
