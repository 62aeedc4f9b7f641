import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { login } from '../../auth/login.ts';
import type { SessionTokens } from '../../auth/sessions.ts';
import { signup } from '../../auth/signup.ts';
import { audienceForClient, findPublicClient, requestedAudience } from '../../auth/token-request.ts';
import type { Deps } from '../../deps.ts';
import { envelope, EnvelopeSchema, ErrorEnvelopeSchema } from '../envelope.ts';
import { clientGoneSignal, logHashingRefusals } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { LoginBody, LoginUserSchema, PublicUserSchema, SignupBody, TokenFields } from '../schemas.ts';

export const TokenAnswerSchema = EnvelopeSchema(LoginUserSchema, TokenFields);

/** The body shared by login and refresh: the seed's envelope plus the token fields. */
export function tokenAnswer(message: string, user: { id: number; email: string; name: string }, tokens: SessionTokens) {
  return {
    ...envelope(201, message, { id: user.id, email: user.email, name: user.name }),
    token: tokens.accessToken,
    token_type: 'Bearer' as const,
    expires_in: tokens.expiresInSeconds,
    refresh_token: tokens.refreshToken,
  };
}

export async function authRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const rateLimit = createRateLimitHook(deps);
  const stopLoggingRefusals = logHashingRefusals(deps.hasher, app.log);
  app.addHook('onClose', async () => stopLoggingRefusals());

  app.post(
    '/signup',
    {
      onRequest: rateLimit,
      schema: {
        tags: ['auth'],
        summary: 'Create an account',
        body: SignupBody,
        response: { 201: EnvelopeSchema(PublicUserSchema), 400: ErrorEnvelopeSchema, 409: ErrorEnvelopeSchema, 429: ErrorEnvelopeSchema, 503: ErrorEnvelopeSchema },
      },
    },
    async (request, reply) => {
      const user = await signup(deps, request.body, { signal: clientGoneSignal(reply) });
      return reply.code(201).send(envelope(201, 'successfully registered', user));
    },
  );

  app.post(
    '/login',
    {
      onRequest: rateLimit,
      schema: {
        tags: ['auth'],
        summary: 'Exchange email and password for an access token and a refresh token',
        body: LoginBody,
        response: { 201: TokenAnswerSchema, 400: ErrorEnvelopeSchema, 403: ErrorEnvelopeSchema, 429: ErrorEnvelopeSchema, 503: ErrorEnvelopeSchema },
      },
    },
    async (request, reply) => {
      const { email, password, client_id: clientId, audience, resource } = request.body;
      // Checked before the password: a request for a client or audience it cannot have costs no hashing.
      const client = await findPublicClient(deps.db, clientId);
      const sessionClient = { clientId: client.id, audience: audienceForClient(client, requestedAudience({ audience, resource }), deps.config.jwt.audience) };
      const { user, tokens } = await login(deps, { email, password, sessionClient }, { network: requestClientNetwork(request, deps) }, { signal: clientGoneSignal(reply) });
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('verification success', user, tokens));
    },
  );
}
