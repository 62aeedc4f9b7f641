import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { changePassword } from '../../auth/change-password.ts';
import { logout } from '../../auth/logout.ts';
import { refreshSession } from '../../auth/refresh.ts';
import { findPublicClient, requestedAudience } from '../../auth/token-request.ts';
import type { Deps } from '../../deps.ts';
import { createAuthGuard } from '../auth-guard.ts';
import { ClientRequestFields } from '../client-params.ts';
import { envelope, EnvelopeSchema, ErrorEnvelopeSchema } from '../envelope.ts';
import { clientGoneSignal } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { BEARER_SECURITY, WELL_FORMED } from '../schemas.ts';
import { TokenAnswerSchema, tokenAnswer } from './auth.ts';

const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }), ...ClientRequestFields }, { additionalProperties: false });
const LogoutBody = Type.Object({ all: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const ChangePasswordBody = Type.Object(
  {
    current_password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }),
    new_password: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false },
);

/** The token lifecycle after login: rotation, logout, password change. */
export async function sessionRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const authGuard = createAuthGuard(deps);
  const rateLimit = createRateLimitHook(deps);

  app.post(
    '/token/refresh',
    {
      onRequest: rateLimit,
      schema: {
        tags: ['auth'],
        summary: 'Spend a refresh token for a new access token and a new refresh token',
        body: RefreshBody,
        response: { 201: TokenAnswerSchema, 400: ErrorEnvelopeSchema, 401: ErrorEnvelopeSchema, 429: ErrorEnvelopeSchema },
      },
    },
    async (request, reply) => {
      const { refresh_token: refreshToken, client_id: clientId, audience, resource } = request.body;
      // A client_id must name a public client (400 otherwise); without one, the session's client must be public.
      const client = clientId === undefined ? undefined : { id: (await findPublicClient(deps.db, clientId)).id, authenticated: false };
      const { user, tokens } = await refreshSession(deps, refreshToken, { client, audience: requestedAudience({ audience, resource }) });
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('token refreshed', user, tokens));
    },
  );

  app.post(
    '/logout',
    {
      // The body is optional: a bare POST /logout means {"all": false}.
      preValidation: async (request) => {
        request.body ??= {};
      },
      onRequest: authGuard,
      schema: {
        tags: ['auth'],
        summary: 'Revoke this session, or every session of the user with {"all": true}',
        security: BEARER_SECURITY,
        body: LogoutBody,
        response: { 200: EnvelopeSchema(Type.Null()), 401: ErrorEnvelopeSchema },
      },
    },
    async (request) => {
      await logout(deps, request.auth!, { all: request.body?.all === true });
      return envelope<null>(200, 'logged out');
    },
  );

  app.post(
    '/me/password',
    {
      // Under the per-client budget like the other credential routes, then authenticated.
      onRequest: [rateLimit, authGuard],
      schema: {
        tags: ['users'],
        summary: 'Change the password; every other session of the user is revoked',
        security: BEARER_SECURITY,
        body: ChangePasswordBody,
        response: {
          200: EnvelopeSchema(Type.Null()),
          400: ErrorEnvelopeSchema,
          401: ErrorEnvelopeSchema,
          403: ErrorEnvelopeSchema,
          429: ErrorEnvelopeSchema,
          503: ErrorEnvelopeSchema,
        },
      },
    },
    async (request, reply) => {
      await changePassword(deps, request.auth!, request.body, { network: requestClientNetwork(request, deps) }, { signal: clientGoneSignal(reply) });
      return envelope<null>(200, 'password changed');
    },
  );
}
