import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** Public discovery documents for resource servers that verify tokens locally. */
export async function wellKnownRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const { issuer } = deps.config.jwt;
  const base = issuer.replace(/\/+$/, '');

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['discovery'],
        summary: 'Public signing keys (empty with HS256)',
        response: { 200: Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }) },
      },
    },
    async (_request, reply) => {
      // Short cache: verifiers pick up a rotated key within minutes, and refetch on an unknown kid anyway.
      reply.header('cache-control', 'public, max-age=300');
      return deps.keys.publicJwks();
    },
  );

  app.get(
    '/.well-known/openid-configuration',
    { schema: { tags: ['discovery'], summary: 'Issuer metadata', response: { 200: Type.Object({}, { additionalProperties: true }) } } },
    async () => ({
      issuer,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/login`,
      id_token_signing_alg_values_supported: [deps.keys.algorithm],
      access_token_signing_alg_values_supported: [deps.keys.algorithm],
      token_endpoint_auth_methods_supported: ['none'],
      grant_types_supported: ['password', 'refresh_token'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
      claims_supported: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'sid', 'email', 'roles'],
    }),
  );
}
