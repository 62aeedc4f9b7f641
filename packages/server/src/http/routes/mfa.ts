import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { requireReauthentication } from '../../auth/reauthentication.ts';
import type { Deps } from '../../deps.ts';
import { AppError } from '../../errors.ts';
import { confirmTotp, disableTotp, enrolTotp, mfaStatus, regenerateRecoveryCodes, type MfaManagementDeps } from '../../mfa/factors.ts';
import { completeMfaLogin } from '../../mfa/login-step.ts';
import { createAuthGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { clientGoneSignal } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { BEARER_SECURITY, EXAMPLE_PASSWORD, PUBLIC_SECURITY, REAUTH_REFUSED, ReauthenticationBody, TOO_MANY_REQUESTS, UNAUTHENTICATED, UNAVAILABLE, WELL_FORMED } from '../schemas.ts';
import { TokenAnswerSchema, tokenAnswer } from './auth.ts';

const EXAMPLE_RECOVERY_CODES = ['k7m2p-x9qrt', 'a3nvb-4wz8c', 'hq6ts-2mdy9', 'p8e3r-vn7kx', 'bc4zw-t6h2q', 'u9xme-3rpa7', 'n2gk8-wz5vd', 'y6tq3-mbe4s', 'r5jx9-c2npw', 'f3hvz-8kt6m'];

const Code = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The 6 digits the authenticator app shows now, or (where allowed) one of the recovery codes',
});
const ConfirmBody = Type.Object(
  { code: Type.String({ minLength: 1, maxLength: 64, description: 'The 6 digits the authenticator app shows now' }) },
  { additionalProperties: false, examples: [{ code: '492039' }] },
);
const PasswordAndCodeBody = Type.Object(
  { password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }), code: Code },
  { additionalProperties: false, examples: [{ password: EXAMPLE_PASSWORD, code: '492039' }] },
);
const LoginMfaBody = Type.Object(
  {
    mfa_ticket: Type.String({ minLength: 1, maxLength: 128, description: 'The ticket POST /login answered' }),
    code: Code,
    client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'If given, must be the client the login named' })),
  },
  { additionalProperties: false, examples: [{ mfa_ticket: 'Qm9vdHN0cmFwIHRpY2tldCBleGFtcGxlIG9ubHkgISEh', code: '492039' }] },
);

const RecoveryCodesSchema = EnvelopeSchema(
  Type.Object({ recovery_codes: Type.Array(Type.String(), { description: 'Shown once; each works once; store them offline' }) }),
  {},
  { description: 'Ten single-use recovery codes', examples: [{ status: true, code: 200, message: 'two-factor authentication enabled', data: { recovery_codes: EXAMPLE_RECOVERY_CODES } }] },
);
const EnrolmentSchema = EnvelopeSchema(
  Type.Object({
    secret: Type.String({ description: 'base32, for apps that cannot scan (type it in)' }),
    otpauth_uri: Type.String({ description: 'otpauth://totp/… (Key Uri Format): SHA1, 6 digits, 30 s' }),
    qr_svg: Type.String({ description: 'The URI as a QR code, an SVG document' }),
  }),
  {},
  {
    description: 'A new secret, not asked for at login until POST /me/mfa/totp/confirm',
    examples: [
      {
        status: true,
        code: 200,
        message: 'scan the code, then confirm',
        data: {
          secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
          otpauth_uri: 'otpauth://totp/Gatehouse:ada%40example.com?issuer=Gatehouse&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30',
          qr_svg: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 37 37">…</svg>',
        },
      },
    ],
  },
);
const StatusSchema = EnvelopeSchema(
  Type.Object({
    totp: Type.Object({
      enabled: Type.Boolean({ description: 'Login asks for a code' }),
      pending: Type.Boolean({ description: 'Enrolled but not confirmed yet' }),
      confirmed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
    recovery_codes_remaining: Type.Integer(),
  }),
  {},
  {
    description: 'Two-factor authentication of the signed-in user',
    examples: [{ status: true, code: 200, message: 'two-factor status', data: { totp: { enabled: true, pending: false, confirmed_at: '2026-06-01T12:00:00.000Z' }, recovery_codes_remaining: 9 } }],
  },
);
const Done = (description: string, message: string) =>
  EnvelopeSchema(Type.Null(), {}, { description, examples: [{ status: true, code: 200, message, data: null }] });

/** TOTP second factor: enrolment, recovery codes, and the second step of a login (POST /login/mfa). */
export async function mfaRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const authGuard = createAuthGuard(deps);
  const rateLimit = createRateLimitHook(deps);
  const management: MfaManagementDeps = deps;
  const loginDeps = deps;
  const clientOf = (request: Parameters<typeof requestContext>[0]) => ({ network: requestClientNetwork(request, deps), context: requestContext(request) });

  app.get(
    '/me/mfa',
    {
      onRequest: authGuard,
      schema: {
        operationId: 'getMfaStatus',
        tags: ['users'],
        summary: 'Whether two-factor authentication is on, and how many recovery codes are left',
        security: BEARER_SECURITY,
        response: { 200: StatusSchema, 401: UNAUTHENTICATED, 503: UNAVAILABLE },
      },
    },
    async (request) => {
      const status = await mfaStatus(deps.db, request.auth!.userId);
      return envelope(200, 'two-factor status', {
        totp: {
          enabled: status.totpEnabled,
          pending: status.totpPending,
          confirmed_at: status.totpConfirmedAt === null ? null : new Date(status.totpConfirmedAt * 1000).toISOString(),
        },
        recovery_codes_remaining: status.recoveryCodesRemaining,
      });
    },
  );

  app.post(
    '/me/mfa/totp',
    {
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'enrolTotp',
        tags: ['users'],
        summary: 'Start TOTP enrolment: a new secret as an otpauth:// URI and a QR code (SVG)',
        description:
          'Re-authentication: the password in the body, unless this session was signed into within REAUTH_MAX_AGE (a stolen access ' +
          'token alone cannot add a factor). Starting again replaces an unconfirmed enrolment. The secret is stored encrypted under ' +
          'KEY_ENCRYPTION_SECRET when set. Nothing changes at login until POST /me/mfa/totp/confirm.',
        security: BEARER_SECURITY,
        body: ReauthenticationBody,
        response: {
          200: EnrolmentSchema,
          400: ErrorResponse('Invalid body'),
          401: UNAUTHENTICATED,
          403: REAUTH_REFUSED,
          409: ErrorResponse('Two-factor authentication is already on: disable it first'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const auth = request.auth!;
      // Already on: say so before asking for anything (the 409 reveals nothing the token's holder cannot see at GET /me/mfa).
      if ((await mfaStatus(deps.db, auth.userId)).totpEnabled) throw new AppError('mfa_conflict', 'two-factor authentication is already enabled');
      await requireReauthentication(deps, auth, request.body, 'totp_enrol', clientOf(request), { signal: clientGoneSignal(reply) });
      const enrolment = await enrolTotp(deps, auth.userId);
      return reply
        .header('cache-control', 'no-store')
        .send(envelope(200, 'scan the code, then confirm', { secret: enrolment.secret, otpauth_uri: enrolment.otpauthUri, qr_svg: enrolment.qrSvg }));
    },
  );

  app.post(
    '/me/mfa/totp/confirm',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'confirmTotp',
        tags: ['users'],
        summary: 'Confirm enrolment with a first code: turns TOTP on and returns ten single-use recovery codes',
        security: BEARER_SECURITY,
        body: ConfirmBody,
        response: {
          200: RecoveryCodesSchema,
          400: ErrorResponse('Invalid body, or a code that is not 6 digits'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('Incorrect code'),
          409: ErrorResponse('Nothing to confirm (no enrolment), or already on'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const codes = await confirmTotp(management, request.auth!.userId, request.body.code, clientOf(request));
      return reply.header('cache-control', 'no-store').send(envelope(200, 'two-factor authentication enabled', { recovery_codes: codes }));
    },
  );

  app.delete(
    '/me/mfa/totp',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'disableTotp',
        tags: ['users'],
        summary: 'Turn TOTP off, with the password and a current code (or a recovery code)',
        description: 'Recovery codes and half-finished logins go with it.',
        security: BEARER_SECURITY,
        body: PasswordAndCodeBody,
        response: {
          200: Done('Two-factor authentication is off', 'two-factor authentication disabled'),
          400: ErrorResponse('Invalid body, or a code of the wrong shape'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('Incorrect password, or incorrect, reused or spent code'),
          409: ErrorResponse('Two-factor authentication is not on'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      await disableTotp(management, request.auth!.userId, request.body, clientOf(request), { signal: clientGoneSignal(reply) });
      return envelope<null>(200, 'two-factor authentication disabled');
    },
  );

  app.post(
    '/me/mfa/recovery-codes',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'regenerateRecoveryCodes',
        tags: ['users'],
        summary: 'Replace the recovery codes with ten new ones, with the password and a current code',
        security: BEARER_SECURITY,
        body: PasswordAndCodeBody,
        response: {
          200: RecoveryCodesSchema,
          400: ErrorResponse('Invalid body, or a code of the wrong shape'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('Incorrect password, or incorrect, reused or spent code'),
          409: ErrorResponse('Two-factor authentication is not on'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const codes = await regenerateRecoveryCodes(management, request.auth!.userId, request.body, clientOf(request), { signal: clientGoneSignal(reply) });
      return reply.header('cache-control', 'no-store').send(envelope(200, 'recovery codes replaced', { recovery_codes: codes }));
    },
  );

  app.post(
    '/login/mfa',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'logInMfa',
        tags: ['auth'],
        summary: 'Finish a login with the MFA ticket and a TOTP code or a recovery code',
        description:
          'A ticket lives 5 minutes, allows 5 tries and works once. Each wrong code also counts as a failed login of the account ' +
          '(LOGIN_MAX_FAILURES), and on a budget of the second step that only a right code clears (not the password): past it, 429. A TOTP code is accepted once: the same code again is refused. Tokens carry amr ' +
          '["pwd","otp","mfa"] (TOTP) or ["pwd","mfa"] (recovery code).',
        security: PUBLIC_SECURITY,
        body: LoginMfaBody,
        response: {
          201: TokenAnswerSchema,
          400: ErrorResponse('Invalid body, or a code that is neither 6 digits nor a recovery code'),
          401: ErrorResponse('The ticket is unknown, expired, spent, out of tries or for another client'),
          403: ErrorResponse('Incorrect, reused or spent code'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      const { mfa_ticket: ticket, code, client_id: clientId } = request.body;
      const { user, tokens } = await completeMfaLogin(loginDeps, { ticket, code, ...(clientId !== undefined ? { clientId } : {}) }, clientOf(request));
      return reply.code(201).header('cache-control', 'no-store').send(tokenAnswer('verification success', user, tokens));
    },
  );
}
