import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { audienceForClient, findPublicClient, requestedAudience } from '../../auth/token-request.ts';
import { assertMayLogIn } from '../../auth/email-verification.ts';
import type { Deps } from '../../deps.ts';
import { loadPasskeyDemo, PASSKEY_DEMO_CSP, PASSKEY_DEMO_PATH, type PasskeyDemo } from '../../passkeys/demo-page.ts';
import {
  authenticationOptions,
  deletePasskey,
  listPasskeys,
  loginWithPasskey,
  registerPasskey,
  registrationOptions,
} from '../../passkeys/passkeys.ts';
import { requireReauthentication } from '../../auth/reauthentication.ts';
import { createAuthGuard } from '../auth-guard.ts';
import { clientGoneSignal } from '../hashing.ts';
import { ClientRequestFields } from '../client-params.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { BEARER_SECURITY, PRINTABLE, PUBLIC_SECURITY, REAUTH_REFUSED, ReauthenticationBody, TOO_MANY_REQUESTS, UNAUTHENTICATED, UNAVAILABLE } from '../schemas.ts';
import { TokenAnswerSchema, tokenAnswer } from './auth.ts';

const BASE64URL = '^[A-Za-z0-9_-]*$';
const B64 = (maxLength: number, description?: string) => Type.String({ minLength: 1, maxLength, pattern: BASE64URL, ...(description ? { description } : {}) });
const Transports = Type.Array(Type.String({ maxLength: 32, pattern: '^[a-z-]+$' }), { maxItems: 10 });
// What @simplewebauthn/browser's startRegistration/startAuthentication return, as JSON. Bounded: the
// library parses CBOR out of these, and nothing legitimate comes near the limits.
const CredentialFields = {
  id: B64(1024, 'Credential id (base64url)'),
  rawId: B64(1024),
  type: Type.Literal('public-key'),
  clientExtensionResults: Type.Object({}, { additionalProperties: true, maxProperties: 20 }),
  authenticatorAttachment: Type.Optional(Type.Union([Type.Literal('platform'), Type.Literal('cross-platform')])),
};
const RegistrationResponse = Type.Object(
  {
    ...CredentialFields,
    response: Type.Object(
      {
        clientDataJSON: B64(4096),
        attestationObject: B64(65_536),
        transports: Type.Optional(Transports),
        authenticatorData: Type.Optional(B64(65_536)),
        publicKey: Type.Optional(B64(4096)),
        publicKeyAlgorithm: Type.Optional(Type.Integer()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'The PublicKeyCredential from navigator.credentials.create(), as JSON (startRegistration)' },
);
const AuthenticationResponse = Type.Object(
  {
    ...CredentialFields,
    response: Type.Object(
      {
        clientDataJSON: B64(4096),
        authenticatorData: B64(65_536),
        signature: B64(4096),
        userHandle: Type.Optional(B64(1024)),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'The PublicKeyCredential from navigator.credentials.get(), as JSON (startAuthentication)' },
);

const CreationOptions = Type.Object(
  {
    challenge: Type.String(),
    rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
    user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
    pubKeyCredParams: Type.Array(Type.Object({ alg: Type.Integer(), type: Type.Literal('public-key') })),
  },
  { additionalProperties: true, description: 'PublicKeyCredentialCreationOptionsJSON: pass to startRegistration({ optionsJSON })' },
);
const RequestOptions = Type.Object(
  { challenge: Type.String(), rpId: Type.Optional(Type.String()) },
  { additionalProperties: true, description: 'PublicKeyCredentialRequestOptionsJSON: pass to startAuthentication({ optionsJSON })' },
);
const PasskeySchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  device_type: Type.Union([Type.String({ description: 'singleDevice (bound to one authenticator) or multiDevice (synced)' }), Type.Null()]),
  backed_up: Type.Boolean(),
  transports: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const EXAMPLE_PASSKEY = {
  id: 3,
  name: 'Laptop',
  device_type: 'multiDevice',
  backed_up: true,
  transports: ['internal', 'hybrid'],
  created_at: '2026-06-01T12:00:00.000Z',
  last_used_at: null,
};

const RegisterBody = Type.Object(
  { response: RegistrationResponse, name: Type.Optional(Type.String({ maxLength: 100, pattern: PRINTABLE, description: 'A name to tell passkeys apart (default: "Passkey" and the date)' })) },
  { additionalProperties: false },
);
const LoginVerifyBody = Type.Object(
  { challenge_id: B64(64, 'challenge_id from POST /login/passkey/options'), response: AuthenticationResponse, ...ClientRequestFields },
  { additionalProperties: false },
);
const PasskeyParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

const PASSKEY_REFUSED = ErrorResponse(
  'The response does not verify (altered, wrong origin or RP, no user verification, counter not moving forward), or its challenge is unknown, expired (5 min) or already used; the same answer for all',
);

/** Passkeys (WebAuthn, @simplewebauthn/server): registration, list, delete, sign-in; and the test page. */
export async function passkeyRoutes(rawApp: FastifyInstance, deps: Deps, demo: PasskeyDemo | undefined = deps.config.production ? undefined : loadPasskeyDemo()): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const authGuard = createAuthGuard(deps);
  const rateLimit = createRateLimitHook(deps);

  app.post(
    '/me/passkeys/register/options',
    {
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'passkeyRegistrationOptions',
        tags: ['users'],
        summary: 'Start adding a passkey: options for navigator.credentials.create()',
        description:
          'Re-authentication: the password in the body, unless this session was signed into within REAUTH_MAX_AGE (a stolen access ' +
          'token alone cannot add a passkey). A discoverable credential (resident key required) with user verification required, no ' +
          'attestation. The challenge is stored, good once for 5 minutes; the user\'s passkeys are excluded. At most 20 passkeys per account.',
        security: BEARER_SECURITY,
        body: ReauthenticationBody,
        response: {
          200: EnvelopeSchema(CreationOptions, {}, { description: 'Creation options (data)' }),
          400: ErrorResponse('Invalid body, or the account has 20 passkeys already'),
          401: UNAUTHENTICATED,
          403: REAUTH_REFUSED,
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const auth = request.auth!;
      await requireReauthentication(
        deps,
        auth,
        request.body,
        'passkey_register',
        { network: requestClientNetwork(request, deps), context: requestContext(request) },
        { signal: clientGoneSignal(reply) },
      );
      return envelope(200, 'passkey registration options', await registrationOptions(deps, auth.userId));
    },
  );

  app.post(
    '/me/passkeys/register/verify',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'passkeyRegistrationVerify',
        tags: ['users'],
        summary: 'Finish adding a passkey: the credential navigator.credentials.create() made',
        description: 'Checked against the challenge it answers (spent here, whatever the outcome), WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS.',
        security: BEARER_SECURITY,
        body: RegisterBody,
        response: {
          201: EnvelopeSchema(PasskeySchema, {}, { description: 'The passkey added', examples: [{ status: true, code: 201, message: 'passkey registered', data: EXAMPLE_PASSKEY }] }),
          400: ErrorResponse('Invalid body'),
          401: UNAUTHENTICATED,
          403: PASSKEY_REFUSED,
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const passkey = await registerPasskey(
        deps,
        request.auth!.userId,
        { response: request.body.response as RegistrationResponseJSON, ...(request.body.name !== undefined ? { name: request.body.name } : {}) },
        requestContext(request),
      );
      return reply.code(201).send(envelope(201, 'passkey registered', passkey));
    },
  );

  app.get(
    '/me/passkeys',
    {
      onRequest: authGuard,
      schema: {
        operationId: 'listPasskeys',
        tags: ['users'],
        summary: "The signed-in user's passkeys",
        security: BEARER_SECURITY,
        response: {
          200: EnvelopeSchema(Type.Array(PasskeySchema), {}, { description: 'Oldest first', examples: [{ status: true, code: 200, message: 'passkeys', data: [EXAMPLE_PASSKEY] }] }),
          401: UNAUTHENTICATED,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => envelope(200, 'passkeys', await listPasskeys(deps, request.auth!.userId)),
  );

  app.delete(
    '/me/passkeys/:id',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'deletePasskey',
        tags: ['users'],
        summary: 'Delete one of your passkeys; it can no longer sign in',
        security: BEARER_SECURITY,
        params: PasskeyParams,
        response: {
          200: EnvelopeSchema(Type.Null(), {}, { description: 'Deleted', examples: [{ status: true, code: 200, message: 'passkey deleted', data: null }] }),
          400: ErrorResponse('The id is not a positive integer'),
          401: UNAUTHENTICATED,
          404: ErrorResponse('No such passkey among yours (another user\'s id answers the same)'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      await deletePasskey(deps, request.auth!.userId, request.params.id, requestContext(request));
      return envelope<null>(200, 'passkey deleted');
    },
  );

  app.post(
    '/login/passkey/options',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'passkeyLoginOptions',
        tags: ['auth'],
        summary: 'Start a passkey sign-in: options for navigator.credentials.get(), no email asked',
        description: 'A discoverable sign-in (no allowCredentials): the authenticator offers the accounts it holds. challenge_id is good once, for 5 minutes.',
        security: PUBLIC_SECURITY,
        response: {
          200: EnvelopeSchema(Type.Object({ challenge_id: Type.String(), options: RequestOptions }), {}, { description: 'The challenge to answer' }),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async () => {
      const { challengeId, options } = await authenticationOptions(deps);
      return envelope(200, 'passkey sign-in options', { challenge_id: challengeId, options });
    },
  );

  app.post(
    '/login/passkey/verify',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'passkeyLogin',
        tags: ['auth'],
        summary: 'Finish a passkey sign-in: the assertion navigator.credentials.get() made, for tokens',
        description:
          'The same 403 for every refusal (unknown credential, bad signature, wrong origin, counter not moving forward, disabled account, ' +
          'spent or expired challenge). Tokens carry amr ["hwk"|"swk","user","mfa"]. Attempts per client address are limited (429).',
        security: PUBLIC_SECURITY,
        body: LoginVerifyBody,
        response: {
          201: TokenAnswerSchema,
          400: ErrorResponse('Invalid body, or an unknown client_id or audience'),
          403: ErrorResponse('The passkey was not accepted (same answer for every reason); or, under REQUIRE_EMAIL_VERIFICATION, the address is unverified'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const { challenge_id: challengeId, response, client_id: clientId, audience, resource } = request.body;
      const client = await findPublicClient(deps.db, clientId);
      const sessionClient = { clientId: client.id, audience: audienceForClient(client, requestedAudience({ audience, resource }), deps.config.jwt.audience) };
      const { user, tokens } = await loginWithPasskey(
        deps,
        { challengeId, response: response as AuthenticationResponseJSON, sessionClient },
        { network: requestClientNetwork(request, deps), context: requestContext(request) },
        (row) => assertMayLogIn(deps.config, row),
      );
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('verification success', user, tokens));
    },
  );

  if (!demo) return;
  // The test page: development only (NODE_ENV is not production). Static HTML and one script under a strict CSP.
  await app.register(async (scope) => {
    scope.addHook('onRequest', (_request, reply, done) => {
      reply.header('content-security-policy', PASSKEY_DEMO_CSP);
      done();
    });
    scope.get(PASSKEY_DEMO_PATH, { schema: { hide: true } }, (_request, reply) => reply.type('text/html; charset=utf-8').send(demo.html));
    scope.get(`${PASSKEY_DEMO_PATH}/demo.js`, { schema: { hide: true } }, async (_request, reply) => {
      let script: string;
      try {
        script = await demo.script();
      } catch {
        return reply.code(404).send(envelope(404, 'passkey demo not built - @simplewebauthn/browser (a dev dependency) is missing'));
      }
      return reply.type('text/javascript; charset=utf-8').send(script);
    });
  });
}
