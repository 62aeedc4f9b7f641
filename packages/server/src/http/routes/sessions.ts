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
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { clientGoneSignal } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { BEARER_SECURITY, EXAMPLE_PASSWORD, optionalBody, PUBLIC_SECURITY, TOO_MANY_REQUESTS, UNAUTHENTICATED, UNAVAILABLE, WELL_FORMED } from '../schemas.ts';
import { TokenAnswerSchema, tokenAnswer } from './auth.ts';

const RefreshBody = Type.Object(
  // Refresh tokens are 43 characters; the bound is loose enough that an access token sent here by
  // mistake (≈ 600 with amr and email_verified) gets the refresh answer (401), not a schema error.
  { refresh_token: Type.String({ minLength: 1, maxLength: 2048 }), ...ClientRequestFields },
  { additionalProperties: false, examples: [{ refresh_token: 'kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI' }] },
);
const LogoutBody = optionalBody(
  Type.Object(
    { all: Type.Optional(Type.Boolean({ description: "true: every session of the user, not only this token's" })) },
    { additionalProperties: false, examples: [{ all: true }] },
  ),
);
const ChangePasswordBody = Type.Object(
  {
    current_password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }),
    new_password: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false, examples: [{ current_password: EXAMPLE_PASSWORD, new_password: 'velvet harbor comet 7 quince' }] },
);
const Done = (description: string, message: string) =>
  EnvelopeSchema(Type.Null(), {}, { description, examples: [{ status: true, code: 200, message, data: null }] });

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
        operationId: 'refreshToken',
        tags: ['auth'],
        summary: 'Spend a refresh token for a new access token and a new refresh token',
        description:
          'Refresh tokens are single use. Presenting one again within REFRESH_REUSE_GRACE seconds (a lost answer) returns the same ' +
          'new pair; presenting it later revokes the whole session (reuse detection).',
        security: PUBLIC_SECURITY,
        body: RefreshBody,
        response: {
          201: TokenAnswerSchema,
          400: ErrorResponse('Invalid body'),
          401: ErrorResponse('The refresh token is unknown, spent, expired or its session revoked'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const { refresh_token: refreshToken, client_id: clientId, audience, resource } = request.body;
      // A client_id must name a public client (400 otherwise); without one, the session's client must be public.
      const client = clientId === undefined ? undefined : { id: (await findPublicClient(deps.db, clientId)).id, authenticated: false };
      const { user, tokens } = await refreshSession(deps, refreshToken, { client, audience: requestedAudience({ audience, resource }), context: requestContext(request) });
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('token refreshed', user, tokens));
    },
  );

  app.post(
    '/logout',
    {
      // The body is optional: a bare POST /logout means {"all": false}. A JSON null is a body, and not an object: 400.
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
      onRequest: authGuard,
      schema: {
        operationId: 'logOut',
        tags: ['auth'],
        summary: 'Revoke this session, or every session of the user with {"all": true}',
        description: "The body is optional. The session's refresh token stops working at once, and Gatehouse refuses its access tokens until they expire.",
        security: BEARER_SECURITY,
        body: LogoutBody,
        response: {
          200: Done('Logged out', 'logged out'),
          400: ErrorResponse('Invalid body'),
          401: UNAUTHENTICATED,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const all = request.body?.all === true;
      const { userId, sessionId } = request.auth!;
      await logout(deps, request.auth!, { all });
      deps.audit.record({
        action: 'user.logout',
        actor: { type: 'user', id: String(userId) },
        subject: { type: 'user', id: String(userId) },
        context: requestContext(request),
        details: { session_id: sessionId, all },
      });
      return envelope<null>(200, 'logged out');
    },
  );

  app.post(
    '/me/password',
    {
      // Under the per-client budget like the other credential routes, then authenticated.
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'changePassword',
        tags: ['users'],
        summary: 'Change the password; every other session of the user is revoked',
        security: BEARER_SECURITY,
        body: ChangePasswordBody,
        response: {
          200: Done('Password changed', 'password changed'),
          400: ErrorResponse('Invalid body, or a new password the policy refuses (data.errors says why)'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('The current password is wrong'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      await changePassword(
        deps,
        request.auth!,
        request.body,
        { network: requestClientNetwork(request, deps), context: requestContext(request) },
        { signal: clientGoneSignal(reply) },
      );
      return envelope<null>(200, 'password changed');
    },
  );
}
