import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { LINK_PATHS } from '../../auth/email-common.ts';
import { confirmEmailChange, requestEmailChange } from '../../auth/email-change.ts';
import { forgotPassword, resetPassword } from '../../auth/email-password-reset.ts';
import { resendForAddress, resendForUser, verifyEmail } from '../../auth/email-verification.ts';
import type { Deps } from '../../deps.ts';
import { AppError } from '../../errors.ts';
import { createAuthGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { clientGoneSignal } from '../hashing.ts';
import { createRateLimitHook, requestClientNetwork } from '../rate-limit.ts';
import { requestContext } from '../request-context.ts';
import { BEARER_SECURITY, EXAMPLE_PASSWORD, optionalBody, PRINTABLE, PUBLIC_SECURITY, TOO_MANY_REQUESTS, UNAUTHENTICATED, UNAVAILABLE, WELL_FORMED } from '../schemas.ts';

const EXAMPLE_LINK_TOKEN = 'Jq3xv2cA0n9yJ2m1b8c7d6e5f4g3h2i1j0k9l8m7n6o';
const LinkToken = Type.String({ minLength: 1, maxLength: 512, pattern: PRINTABLE, description: 'The token of the emailed link (its ?token= value)' });
const Email = Type.String({ format: 'email', maxLength: 254 });

const TokenBody = Type.Object({ token: LinkToken }, { additionalProperties: false, examples: [{ token: EXAMPLE_LINK_TOKEN }] });
const EmailBody = Type.Object({ email: Email }, { additionalProperties: false, examples: [{ email: 'ada@example.com' }] });
const ResendBody = optionalBody(
  Type.Object(
    { email: Type.Optional({ ...Email, description: 'Without an access token: the address to send to (the answer is the same for any address)' }) },
    { additionalProperties: false, examples: [{ email: 'ada@example.com' }, {}] },
  ),
);
const ResetBody = Type.Object(
  { token: LinkToken, new_password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }) },
  { additionalProperties: false, examples: [{ token: EXAMPLE_LINK_TOKEN, new_password: EXAMPLE_PASSWORD }] },
);
const ChangeEmailBody = Type.Object(
  {
    new_email: Email,
    password: Type.String({ minLength: 1, maxLength: 4096, pattern: WELL_FORMED }),
    code: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'With two-factor authentication on: the 6 digits the authenticator app shows now, or a recovery code' }),
    ),
  },
  { additionalProperties: false, examples: [{ new_email: 'ada.lovelace@example.org', password: EXAMPLE_PASSWORD }] },
);
const VerifiedEmail = Type.Object({ email: Type.String(), email_verified: Type.Literal(true) });
const Done = (code: number, description: string, message: string) =>
  EnvelopeSchema(Type.Null(), {}, { description, examples: [{ status: true, code, message, data: null }] });

export const FORGOT_ANSWER = 'if an account uses this address, a reset link is on its way';
export const RESEND_ANSWER = 'if this address has an account that is not verified yet, a new link is on its way';

/** Email verification, password reset and email change (issue 12), and the pages their links open. */
export async function emailRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const rateLimit = createRateLimitHook(deps);
  const authGuard = createAuthGuard(deps);

  app.post(
    '/email/verify',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'verifyEmail',
        tags: ['auth'],
        summary: 'Confirm the email address with the token of the emailed link',
        description: 'The link (PUBLIC_URL/account/verify-email?token=…) works once, for 24 hours, and only while the account still has that address.',
        security: PUBLIC_SECURITY,
        body: TokenBody,
        response: {
          200: EnvelopeSchema(VerifiedEmail, {}, { description: 'Address verified', examples: [{ status: true, code: 200, message: 'email verified', data: { email: 'ada@example.com', email_verified: true } }] }),
          400: ErrorResponse('Invalid body, or a token that is unknown, expired, already used or altered'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const { email } = await verifyEmail(deps, request.body.token, requestContext(request));
      return envelope(200, 'email verified', { email, email_verified: true as const });
    },
  );

  app.post(
    '/email/verify/resend',
    {
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
      onRequest: rateLimit,
      schema: {
        operationId: 'resendVerificationEmail',
        tags: ['auth'],
        summary: 'Send the verification link again',
        description:
          'With an access token: to the signed-in user (the answer says when the address is verified already). Without one: to {email}, ' +
          'with the same answer whether or not the address has an account. At most 3 messages per address and hour.',
        security: [{}, ...BEARER_SECURITY],
        body: ResendBody,
        response: {
          200: Done(200, 'Queued, or nothing to send', RESEND_ANSWER),
          400: ErrorResponse('Invalid body, or neither an access token nor an email'),
          401: UNAUTHENTICATED,
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      if (request.headers.authorization !== undefined || request.headers['x-access-token'] !== undefined) {
        await authGuard(request);
        const outcome = await resendForUser(deps, request.auth!.userId, requestContext(request));
        return reply.send(envelope<null>(200, outcome === 'already_verified' ? 'email already verified' : 'verification email sent'));
      }
      const email = request.body.email;
      if (email === undefined) throw new AppError('invalid_input', 'email: required without an access token', { fieldErrors: [{ field: 'email', message: 'email is required without an access token' }] });
      await resendForAddress(deps, email, requestClientNetwork(request, deps), requestContext(request));
      return reply.send(envelope<null>(200, RESEND_ANSWER));
    },
  );

  app.post(
    '/password/forgot',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'forgotPassword',
        tags: ['auth'],
        summary: 'Email a password-reset link',
        description:
          'Always the same 200, equally fast, whether or not the address has an account (the lookup and the message happen after the ' +
          'answer). The link works once, for 15 minutes. At most 3 messages per address and hour; 20 requests per client network and hour.',
        security: PUBLIC_SECURITY,
        body: EmailBody,
        response: {
          200: Done(200, 'Accepted (whether or not the address is registered)', FORGOT_ANSWER),
          400: ErrorResponse('Invalid body'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      await forgotPassword(deps, request.body.email, requestClientNetwork(request, deps), requestContext(request));
      return envelope<null>(200, FORGOT_ANSWER);
    },
  );

  app.post(
    '/password/reset',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'resetPassword',
        tags: ['auth'],
        summary: 'Set a new password with the token of the emailed link; every session of the user ends',
        description:
          'The password policy applies as at signup; a refused password leaves the link usable. The link proves the mailbox, so the address ' +
          'counts as verified afterwards. Disabled accounts cannot reset.',
        security: PUBLIC_SECURITY,
        body: ResetBody,
        response: {
          200: Done(200, 'Password set; sign in with it', 'password reset'),
          400: ErrorResponse('Invalid body, a password the policy refuses (data.errors says why), or a token that is unknown, expired, used or altered'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      await resetPassword(deps, request.body, requestContext(request), { signal: clientGoneSignal(reply) });
      return envelope<null>(200, 'password reset');
    },
  );

  app.post(
    '/me/email',
    {
      onRequest: [rateLimit, authGuard],
      schema: {
        operationId: 'requestEmailChange',
        tags: ['users'],
        summary: 'Ask to move the account to another address; a confirmation link goes to the new one',
        description:
          'Nothing changes until the link (1 hour, once) is opened. The answer is the same whether the new address is free or taken; a taken ' +
          'one gets no message. With TOTP on, a code (or a recovery code) is needed besides the password, counted on the second step\'s run of wrong codes.',
        security: BEARER_SECURITY,
        body: ChangeEmailBody,
        response: {
          202: Done(202, 'Confirmation sent to the new address', 'confirmation sent to the new address'),
          400: ErrorResponse('Invalid body, or the current address'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('The password or the code is wrong, or (TOTP on) no code was sent: reauthentication_required with data.second_factor_required'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request, reply) => {
      await requestEmailChange(
        deps,
        request.auth!,
        request.body,
        { network: requestClientNetwork(request, deps), context: requestContext(request) },
        { signal: clientGoneSignal(reply) },
      );
      return reply.code(202).send(envelope<null>(202, 'confirmation sent to the new address'));
    },
  );

  app.post(
    '/email/change/confirm',
    {
      onRequest: rateLimit,
      schema: {
        operationId: 'confirmEmailChange',
        tags: ['auth'],
        summary: 'Apply an email change with the token of the link sent to the new address',
        description: 'The new address is verified by this link. Every session of the user ends (tokens carry the email), and the old address is told.',
        security: PUBLIC_SECURITY,
        body: TokenBody,
        response: {
          200: EnvelopeSchema(VerifiedEmail, {}, { description: 'Address changed', examples: [{ status: true, code: 200, message: 'email changed', data: { email: 'ada.lovelace@example.org', email_verified: true } }] }),
          400: ErrorResponse('Invalid body, or a token that is unknown, expired, already used or altered'),
          409: ErrorResponse('The address was registered by someone else meanwhile'),
          429: TOO_MANY_REQUESTS,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const { email } = await confirmEmailChange(deps, request.body.token, requestContext(request));
      return envelope(200, 'email changed', { email, email_verified: true as const });
    },
  );

  await linkPages(app);
}

/**
 * The pages the emailed links open. Opening one changes nothing: a button (or the form) POSTs the
 * token, so mail scanners that fetch every link spend no token. Static HTML and one script file,
 * under a CSP with no inline script and connections to this origin only; the script also drops
 * the token from the address bar and history.
 */
export const LINK_PAGE_CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const PAGES: Record<keyof typeof LINK_PATHS, { title: string; body: string }> = {
  verify_email: {
    title: 'Confirm your email address',
    body: '<button id="go" data-action="verify">Confirm my address</button>',
  },
  reset_password: {
    title: 'Choose a new password',
    body:
      '<form id="form" data-action="reset"><label>New password <input id="password" type="password" autocomplete="new-password" required minlength="1"></label> ' +
      '<button id="go" type="submit">Set password</button></form>',
  },
  change_email: {
    title: 'Confirm your new email address',
    body: '<button id="go" data-action="change">Use this address</button>',
  },
};

const PAGE_SCRIPT = `'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var token = params.get('token') || '';
  // The token stays in memory only: not in the address bar, the history or a Referer.
  history.replaceState(null, '', location.pathname);
  var status = document.getElementById('status');
  var go = document.getElementById('go');
  var form = document.getElementById('form');
  var action = (form || go).getAttribute('data-action');
  var targets = { verify: '../email/verify', reset: '../password/reset', change: '../email/change/confirm' };
  if (!token) { status.textContent = 'This link has no token. Open the link from the message again.'; go.disabled = true; return; }
  function send(event) {
    if (event) event.preventDefault();
    var body = { token: token };
    if (action === 'reset') body.new_password = document.getElementById('password').value;
    go.disabled = true;
    status.textContent = 'Working…';
    fetch(new URL(targets[action], location.href), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        status.textContent = answer.message + (answer.data && answer.data.errors ? ': ' + answer.data.errors.map(function (e) { return e.message; }).join('; ') : '');
        go.disabled = answer.status === true;
      })
      .catch(function () { status.textContent = 'Could not reach the server; try again.'; go.disabled = false; });
  }
  if (form) form.addEventListener('submit', send); else go.addEventListener('click', function () { send(); });
})();
`;

function pageHtml(title: string, body: string, depth: number): string {
  const script = `${'../'.repeat(depth)}account/link.js`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><title>${title}</title><script src="${script}" defer></script></head><body><h1>${title}</h1>${body}<p id="status" role="status" aria-live="polite"></p></body></html>\n`;
}

async function linkPages(app: FastifyInstance): Promise<void> {
  const html = (reply: FastifyReply, text: string) => reply.header('content-security-policy', LINK_PAGE_CSP).type('text/html; charset=utf-8').send(text);
  for (const [purpose, path] of Object.entries(LINK_PATHS) as Array<[keyof typeof LINK_PATHS, string]>) {
    const page = PAGES[purpose];
    // /account/verify-email → the script at ../account/link.js, relative so a PUBLIC_URL with a path prefix works.
    const text = pageHtml(page.title, page.body, path.split('/').length - 2);
    app.get(path, { schema: { hide: true } }, (_request, reply) => html(reply, text));
  }
  app.get('/account/link.js', { schema: { hide: true } }, (_request, reply) =>
    reply.header('content-security-policy', LINK_PAGE_CSP).type('text/javascript; charset=utf-8').send(PAGE_SCRIPT),
  );
}
