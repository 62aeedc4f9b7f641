import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { login } from '../../auth/login.ts';
import type { SessionTokens } from '../../auth/sessions.ts';
import { signup } from '../../auth/signup.ts';
import { verifyAfterSignup } from '../../auth/email-verification.ts';
import { audienceForClient, findPublicClient, requestedAudience } from '../../auth/token-request.ts';
import type { Deps } from '../../deps.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { clientGoneSignal, logHashingRefusals } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { EXAMPLE_USER, LoginBody, LoginUserSchema, PUBLIC_SECURITY, PublicUserSchema, SignupBody, TOO_MANY_REQUESTS, TokenFields, UNAVAILABLE } from '../schemas.ts';

const EXAMPLE_TOKEN_ANSWER = {
  status: true,
  code: 201,
  message: 'verification success',
  data: { id: EXAMPLE_USER.id, email: EXAMPLE_USER.email, name: EXAMPLE_USER.name },
  token: 'eyJhbGciOiJFZERTQSIsImtpZCI6IjJ3OWYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiIxIiwic2lkIjoiLi4uIn0.c2lnbmF0dXJl',
  token_type: 'Bearer',
  expires_in: 900,
  refresh_token: 'kV0Qk1d3N2Jv4uQ0b2xJ8m6N5y7Zr3Tq9sXwEaLcPfI',
};

export const MfaRequiredSchema = EnvelopeSchema(
  Type.Object({
    mfa_required: Type.Literal(true),
    mfa_ticket: Type.String({ description: 'Single use, for POST /login/mfa with a code; only its hash is stored' }),
    expires_in: Type.Integer({ description: 'Seconds the ticket stays valid' }),
  }),
  {},
  {
    description: 'The password was right and the account has two-factor authentication: no tokens yet, send a code to POST /login/mfa',
    examples: [{ status: true, code: 200, message: 'mfa required', data: { mfa_required: true, mfa_ticket: 'Qm9vdHN0cmFwIHRpY2tldCBleGFtcGxlIG9ubHkgISEh', expires_in: 300 } }],
  },
);

export const TokenAnswerSchema = EnvelopeSchema(LoginUserSchema, TokenFields, {
  description: 'A new access token and refresh token; the data is the user',
  examples: [EXAMPLE_TOKEN_ANSWER],
});

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
        operationId: 'signUp',
        tags: ['auth'],
        summary: 'Create an account',
        description:
          'Passwords need at least 15 characters (PASSWORD_MIN_LENGTH), no composition rules; common, breached or easily guessed ' +
          'passwords and ones equal to the email or name are refused with a 400 that says why.',
        security: PUBLIC_SECURITY,
        body: SignupBody,
        response: {
          201: EnvelopeSchema(PublicUserSchema, {}, {
            description: 'Account created',
            examples: [{ status: true, code: 201, message: 'successfully registered', data: EXAMPLE_USER }],
          }),
          400: ErrorResponse('Invalid body, or a password the policy refuses (data.errors says why)'),
          409: ErrorResponse('Email already registered'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const user = await signup(deps, request.body, { signal: clientGoneSignal(reply) });
      deps.audit.record({
        action: 'user.signup',
        actor: { type: 'user', id: String(user.id) },
        subject: { type: 'user', id: String(user.id) },
        context: requestContext(request),
      });
      // The verification message goes after the answer, which stays the seed's.
      verifyAfterSignup(deps, user.id);
      return reply.code(201).send(envelope(201, 'successfully registered', user));
    },
  );

  app.post(
    '/login',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'logIn',
        tags: ['auth'],
        summary: 'Exchange email and password for an access token and a refresh token',
        description:
          'The same 403 answers an unknown email, a wrong password and a disabled account. After LOGIN_MAX_FAILURES failures ' +
          'in a row an account answers 429 for a while, even to the right password. An account with two-factor authentication ' +
          'answers 200 with an MFA ticket instead of tokens (only after the right password): finish with POST /login/mfa.',
        security: PUBLIC_SECURITY,
        body: LoginBody,
        response: {
          200: MfaRequiredSchema,
          201: TokenAnswerSchema,
          400: ErrorResponse('Invalid body'),
          403: ErrorResponse('Incorrect email or password; data.email echoes the email'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const { email, password, client_id: clientId, audience, resource } = request.body;
      // Checked before the password: a request for a client or audience it cannot have costs no hashing.
      const client = await findPublicClient(deps.db, clientId);
      const sessionClient = { clientId: client.id, audience: audienceForClient(client, requestedAudience({ audience, resource }), deps.config.jwt.audience) };
      const result = await login(
        deps,
        { email, password, sessionClient, mfa: 'ticket' },
        { network: requestClientNetwork(request, deps), context: requestContext(request) },
        { signal: clientGoneSignal(reply) },
      );
      if ('mfaRequired' in result) {
        const { ticket, expiresInSeconds } = result.challenge!;
        return reply.code(200).header('cache-control', 'no-store').send(envelope(200, 'mfa required', { mfa_required: true as const, mfa_ticket: ticket, expires_in: expiresInSeconds }));
      }
      const { user, tokens } = result;
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('verification success', user, tokens));
    },
  );
}
