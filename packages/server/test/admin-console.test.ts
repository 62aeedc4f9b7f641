/**
 * The admin console in a real browser: Debian's Chromium driven by playwright-core against a
 * listening Gatehouse, the console built once by the same step `npm start` runs. Each page is checked
 * with axe-core (zero violations), under the strict CSP (the header checked, no violation reported),
 * used by keyboard, and screenshotted into test-results/screenshots/. The effects are checked over
 * HTTP, not in the page: a disabled user's token refused, the audit entry stored.
 * Skipped only when /usr/bin/chromium is missing outside CI; under CI=true a missing Chromium fails.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminConsole, consoleDist } from '../../admin-console/build.mjs';
import { createClient } from '../src/clients/clients.ts';
import { ADMIN_CONSOLE_CSP, adminConsoleRoutes, findAdminConsoleDist } from '../src/http/routes/admin-console.ts';
import { EXPECTED_SECURITY_HEADERS } from './expected-headers.ts';
import { enableTotp, json, loginUser, signedInAdmin, totpAt, signedInUser, signupUser, STRONG_PASSWORD, startListeningTestApp, startTestApp, testDialects, type TestApp } from './helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const runsInBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';
const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url));
const SCREENSHOTS = join(repositoryRoot, 'test-results', 'screenshots');
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// Written out, not imported from the route: a weakened policy there must fail here.
const EXPECTED_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

beforeAll(async () => {
  // The step scripts/build.mjs runs for `npm start`: a no-op when dist/ is newer than every source.
  await buildAdminConsole({ quiet: true });
}, 120_000);

describe('serving /admin', () => {
  let test: TestApp;
  beforeAll(async () => {
    test = await startTestApp('sqlite');
  });
  afterAll(async () => {
    await test.close();
  });

  it('answers the page for /admin and any path below it without a dot, with the strict CSP instead of the API one', async () => {
    expect(ADMIN_CONSOLE_CSP).toBe(EXPECTED_CSP);
    const page = readFileSync(join(consoleDist, 'index.html'), 'utf8');
    for (const url of ['/admin', '/admin/', '/admin/users/42', '/admin/audit?user_id=3']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
      expect(response.body).toBe(page);
      expect(response.headers['content-security-policy']).toBe(EXPECTED_CSP);
      // The other security headers stay; the page is small and names the current bundles: never cached.
      for (const name of ['x-frame-options', 'x-content-type-options', 'referrer-policy', 'cross-origin-opener-policy', 'cache-control']) {
        expect(response.headers[name], name).toBe(EXPECTED_SECURITY_HEADERS[name]);
      }
    }
    // No inline script or style anywhere in the page: the policy would block it.
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page).not.toMatch(/<style|\bstyle=/);
    // The API keeps its own, tighter policy.
    const api = await test.app.inject({ method: 'GET', url: '/healthz' });
    expect(api.headers['content-security-policy']).toBe(EXPECTED_SECURITY_HEADERS['content-security-policy']);
  });

  it('serves the hashed bundles cacheable for good, and 404 for files that are not there or outside dist', async () => {
    const page = readFileSync(join(consoleDist, 'index.html'), 'utf8');
    const script = /<script type="module"[^>]* src="(\/admin\/assets\/[^"]+\.js)"/.exec(page)?.[1];
    const style = /<link rel="stylesheet"[^>]* href="(\/admin\/assets\/[^"]+\.css)"/.exec(page)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    for (const [url, type] of [
      [script!, /^(application|text)\/javascript/],
      [style!, /^text\/css/],
    ] as const) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toMatch(type);
      expect(response.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(response.headers['content-security-policy']).toBe(EXPECTED_CSP);
      expect(response.body).toBe(readFileSync(join(consoleDist, url.slice('/admin/'.length)), 'utf8'));
    }
    for (const url of ['/admin/assets/missing.js', '/admin/nope.css', '/admin/../package.json', '/admin/%2e%2e/package.json', '/admin/.gitignore', '/adminx']) {
      const response = await test.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(404);
      expect(json(response)).toEqual({ status: false, code: 404, message: 'not found', data: null });
    }
    // An encoded slash that would climb out of dist/: @fastify/static refuses it outright.
    const climbing = await test.app.inject({ method: 'GET', url: '/admin/..%2f..%2f..%2fpackage.json' });
    expect(climbing.statusCode).toBe(403);
    expect(json(climbing)).toMatchObject({ status: false, code: 403 });
  });

  it('says the console is not built rather than a bare 404 when dist/ is missing', async () => {
    const app = Fastify();
    await adminConsoleRoutes(app, undefined as never, null);
    try {
      for (const url of ['/admin', '/admin/users']) {
        const response = await app.inject({ method: 'GET', url });
        expect(response.statusCode).toBe(404);
        expect(json(response).message).toBe('admin console not built - run npm run build');
        expect(response.headers['content-security-policy']).toBe(EXPECTED_CSP);
      }
    } finally {
      await app.close();
    }
  });

  it('finds dist/ from the sources and from the bundle npm start runs (dist/main.js at the root)', () => {
    expect(findAdminConsoleDist()).toBe(consoleDist);
    expect(findAdminConsoleDist(join(repositoryRoot, 'dist'))).toBe(consoleDist);
    expect(findAdminConsoleDist('/')).toBeUndefined();
  });
});

describe.skipIf(!runsInBrowser)('[browser] the admin console in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  describe.each(testDialects())('[%s]', (dialect) => {
    let test: TestApp;
    let origin: string;
    let context: BrowserContext;
    let page: Page;
    let problems: string[];

    async function open(): Promise<void> {
      ({ test, origin } = await startListeningTestApp(dialect));
      context = await browser.newContext({ viewport: { width: 1280, height: 860 }, reducedMotion: 'reduce' });
      page = await context.newPage();
      problems = [];
      // A CSP violation shows as a console error and as an event; an uncaught exception as a page error.
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      await page.addInitScript(
        "document.addEventListener('securitypolicyviolation', (event) => console.error(`Content Security Policy violation: ${event.violatedDirective} ${event.blockedURI}`))",
      );
    }

    afterEach(async (run) => {
      // A failed run leaves what the browser showed, to read next to the error.
      if (run.task.result?.state === 'fail' && page && !page.isClosed()) {
        const name = `${dialect}-failed-${run.task.name.slice(0, 40).replace(/[^a-z0-9]+/gi, '-')}`;
        await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true }).catch(() => undefined);
        writeFileSync(join(SCREENSHOTS, `${name}.html`), await page.content().catch(() => ''));
      }
      await context?.close();
      await test?.close();
    });

    // A modal dialog's backdrop covers the viewport only: those are taken as the viewport shows them.
    const shot = (name: string, fullPage = true) => page.screenshot({ path: join(SCREENSHOTS, `${dialect}-${name}.png`), fullPage });

    /** axe-core in the page (evaluated through the DevTools protocol, which the page's CSP does not govern). */
    async function expectAccessible(what: string): Promise<void> {
      await page.evaluate(AXE_SOURCE);
      // Strings, not functions: this file is type-checked without the DOM's types.
      const violations = await page.evaluate<string[]>(`axe.run(document, { resultTypes: ['violations'] }).then((result) =>
        result.violations.map((violation) => violation.id + ': ' + violation.help + ' at ' + violation.nodes.map((node) => node.target.join(' ')).join(', ')))`);
      expect(violations, `axe-core on ${what}`).toEqual([]);
    }

    /** What has the keyboard focus: its tag and text (or id for a field). */
    const focused = () =>
      page.evaluate<string>(`(() => {
        const element = document.activeElement;
        return element ? (element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') + ' ' + element.textContent.trim()).trim() : '';
      })()`);
    const storedInBrowser = () => page.evaluate<[number, number, string]>('[localStorage.length, sessionStorage.length, document.cookie]');

    /** Activates a control by keyboard: focus it, press the key. */
    async function press(locator: Locator, key = 'Enter'): Promise<void> {
      await locator.focus();
      await page.keyboard.press(key);
    }

    async function signInByKeyboard(email: string, password = STRONG_PASSWORD): Promise<void> {
      // The email field has the focus when the page opens; Tab moves to the password; Enter submits.
      await expect.poll(focused).toBe('input#sign-in-email');
      await page.keyboard.type(email);
      await page.keyboard.press('Tab');
      expect(await focused()).toBe('input#sign-in-password');
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');
    }

    /** The code an authenticator app shows at the server's clock (computed by otpauth, not by Gatehouse). */
    const codeAt = (secret: string, stepsFromNow = 0) => totpAt(test, secret, stepsFromNow);

    /**
     * An admin with TOTP turned on over the HTTP API (enrol, confirm with a code); the server's clock
     * then moves to the next 30 s step, since each code is accepted once.
     */
    async function adminWithTotp(email: string) {
      const admin = await signedInAdmin(test, email);
      return { ...admin, ...(await enableTotp(test, { email, token: admin.token })) };
    }

    const fetchAs = (token: string, path: string, init: RequestInit = {}) =>
      fetch(`${origin}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });

    it('signs in, searches a user, disables them (their token refused), reads the audit entry, rotates a key, disables a client', async () => {
      await open();
      const admin = await signedInAdmin(test, 'admin@example.com');
      const target = await signedInUser(test.app, 'target@example.com');
      for (let index = 1; index <= 23; index++) await signedInUser(test.app, `member-${String(index).padStart(2, '0')}@example.com`);
      const { secret } = await createClient(test.deps, { id: 'orders-worker', name: 'Orders worker', type: 'confidential', scopes: ['orders:read'] });
      const clientToken = () =>
        fetch(`${origin}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`orders-worker:${secret}`).toString('base64')}` },
          body: 'grant_type=client_credentials',
        });
      expect((await clientToken()).status).toBe(200);
      expect((await fetchAs(target.token, '/me')).status).toBe(200);

      // Sign in.
      const answer = await page.goto(`${origin}/admin/`);
      expect(answer?.status()).toBe(200);
      expect(answer?.headers()['content-security-policy']).toBe(EXPECTED_CSP);
      await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Gatehouse admin');
      await expectAccessible('the sign-in page');
      await shot('01-sign-in');
      await signInByKeyboard('admin@example.com');
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      expect(new URL(page.url()).pathname).toBe('/admin/users');
      // The tokens live in memory only.
      expect(await storedInBrowser()).toEqual([0, 0, '']);
      expect(await context.cookies()).toEqual([]);

      // The users list, paged (25 users: 20, then 5).
      const rows = page.locator('table tbody tr');
      await expect.poll(() => rows.count()).toBe(20);
      await expectAccessible('the users page');
      await shot('02-users');
      await press(page.getByRole('button', { name: 'Next page' }));
      await expect.poll(() => rows.count()).toBe(5);
      expect(await page.getByText('Page 2: 5 users.').count()).toBe(1);
      await press(page.getByRole('button', { name: 'Previous page' }));
      await expect.poll(() => rows.count()).toBe(20);

      // Search by email prefix: Enter in the field searches, the focus moves to the results, Tab reaches the user.
      await press(page.getByLabel('Email starts with'), 'End');
      await page.keyboard.type('target');
      await page.keyboard.press('Enter');
      await expect.poll(() => rows.count()).toBe(1);
      expect(new URL(page.url()).search).toBe('?email=target');
      await expect.poll(focused).toBe('h2 Results');
      await page.keyboard.press('Tab');
      expect(await focused()).toBe('a target@example.com');
      await page.keyboard.press('Enter');

      // The user's page: the heading has the focus; one active session (the login above).
      await page.getByRole('heading', { level: 1, name: 'target@example.com' }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/admin/users/${target.id}`);
      await expect.poll(focused).toBe('h1 target@example.com');
      const sessionRows = page.locator('section[aria-labelledby="sessions-heading"] tbody tr');
      await expect.poll(() => sessionRows.count()).toBe(1);
      await expectAccessible('the user page');
      await shot('03-user');

      // Disable, by keyboard.
      await press(page.getByRole('button', { name: 'Disable user' }));
      await page.getByRole('status').getByText('target@example.com is disabled; their sessions are revoked.').waitFor();
      await page.getByRole('button', { name: 'Enable user' }).waitFor();
      await expect.poll(() => sessionRows.count()).toBe(0);
      await shot('04-user-disabled');

      // Over HTTP: the user's access token and refresh token are refused, and the API says disabled.
      expect((await fetchAs(target.token, '/me')).status).toBe(401);
      expect((await fetch(`${origin}/token/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: target.refreshToken }) })).status).toBe(401);
      const stored = (await (await fetchAs(admin.token, `/users/${target.id}`)).json()) as { data: unknown };
      expect(stored.data).toMatchObject({ id: target.id, disabled: true });

      // The audit entry, reached from the user's page.
      await test.deps.audit.flush();
      await press(page.getByRole('link', { name: 'Audit events of this user' }));
      await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      expect(await page.getByLabel('User id').inputValue()).toBe(String(target.id));
      const update = page.locator('table.audit tbody tr', { hasText: 'admin.user_update' });
      await expect.poll(() => update.count()).toBe(1);
      expect(await update.textContent()).toContain('disabled: false → true');
      expect(await update.getByRole('link', { name: `user ${admin.id}` }).count()).toBe(1);
      await expectAccessible('the audit page');
      await shot('05-audit');
      // A filter narrows it: only failures of this user (none).
      await page.getByLabel('Outcome').selectOption('failure');
      await press(page.getByRole('button', { name: 'Filter' }));
      await expect.poll(() => new URL(page.url()).search).toBe(`?user_id=${target.id}&outcome=failure`);
      await expect.poll(() => page.locator('table.audit tbody tr').count()).toBe(0);

      // Signing keys: rotate, after a confirmation; the new key is listed as pending.
      await press(page.getByRole('link', { name: 'Signing keys' }));
      await page.getByRole('heading', { level: 1, name: 'Signing keys' }).waitFor();
      const keyRows = page.locator('table tbody tr');
      await expect.poll(() => keyRows.count()).toBeGreaterThan(0);
      const keysBefore = await keyRows.count();
      await expectAccessible('the keys page');
      await press(page.getByRole('button', { name: 'Rotate signing key' }));
      const dialog = page.getByRole('dialog', { name: 'Rotate the signing key?' });
      await dialog.waitFor();
      await expect.poll(focused).toBe('button Cancel');
      await expectAccessible('the rotation dialog');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await page.getByRole('status').getByText(/^New key \S+ signs from /).waitFor();
      await expect.poll(() => keyRows.count()).toBe(keysBefore + 1);
      expect(await page.locator('table tbody tr', { hasText: 'pending' }).count()).toBe(1);
      const keys = (await (await fetchAs(admin.token, '/keys')).json()) as { data: { keys: Array<{ state: string }> } };
      expect(keys.data.keys.filter((key: { state: string }) => key.state === 'pending')).toHaveLength(1);
      await shot('06-keys');

      // Clients: disable one; its client_credentials grant is refused from then on.
      await press(page.getByRole('link', { name: 'Clients' }));
      await page.getByRole('heading', { level: 1, name: 'Clients' }).waitFor();
      const clientRow = page.locator('table tbody tr', { hasText: 'orders-worker' });
      await clientRow.waitFor();
      await expectAccessible('the clients page');
      await press(clientRow.getByRole('button', { name: 'Disable orders-worker' }));
      await page.getByRole('status').getByText('Client orders-worker is disabled; its sessions are revoked.').waitFor();
      expect(await clientRow.getByText('disabled', { exact: true }).count()).toBe(1);
      expect((await clientToken()).status).toBe(401);
      await shot('07-clients');

      expect(problems).toEqual([]);
    }, 180_000);

    it('edits roles, revokes sessions and deletes a user after a confirmation that Escape cancels', async () => {
      await open();
      await signedInAdmin(test, 'admin@example.com');
      const member = await signedInUser(test.app, 'member@example.com');
      // A minute later, so "newest first" has one answer.
      test.clock.advanceSeconds(60);
      const second = json(await loginUser(test.app, 'member@example.com'));

      await page.goto(`${origin}/admin/users/${member.id}`);
      await signInByKeyboard('admin@example.com');
      // Signed in on a deep link: the page asked for opens.
      await page.getByRole('heading', { level: 1, name: 'member@example.com' }).waitFor();
      const sessionRows = page.locator('section[aria-labelledby="sessions-heading"] tbody tr');
      await expect.poll(() => sessionRows.count()).toBe(2);

      // Roles: give admin, by the form (adding a role leaves the sessions alone).
      await page.getByLabel('Roles', { exact: true }).fill('user, admin');
      await press(page.getByRole('button', { name: 'Save changes' }));
      await page.getByRole('status').getByText('Saved.').waitFor();
      const stored = await test.deps.db.selectFrom('users').select('roles').where('id', '=', member.id).executeTakeFirstOrThrow();
      expect(JSON.parse(stored.roles)).toEqual(['user', 'admin']);
      expect(await page.getByLabel('Roles', { exact: true }).inputValue()).toBe('user, admin');
      await expect.poll(() => sessionRows.count()).toBe(2);

      // Revoke the newest session, then all that are left.
      await press(sessionRows.first().getByRole('button', { name: /^Revoke session / }));
      await page.getByRole('status').getByText('Session revoked.').waitFor();
      await expect.poll(() => sessionRows.count()).toBe(1);
      await expect.poll(focused).toBe('h2#sessions-heading Sessions');
      const revokedFirst = await fetch(`${origin}/token/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: second.refresh_token }) });
      expect(revokedFirst.status).toBe(401);
      await press(page.getByRole('button', { name: 'Revoke all sessions' }));
      await page.getByRole('dialog', { name: 'Revoke every session of member@example.com?' }).waitFor();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await page.getByRole('status').getByText('1 session revoked.').waitFor();
      await expect.poll(() => sessionRows.count()).toBe(0);
      for (const refreshToken of [member.refreshToken, second.refresh_token]) {
        const refreshed = await fetch(`${origin}/token/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: refreshToken }) });
        expect(refreshed.status).toBe(401);
      }

      // Delete: Escape cancels and gives the focus back; the second time, confirmed.
      const deleteButton = page.getByRole('button', { name: 'Delete user' });
      await press(deleteButton);
      const dialog = page.getByRole('dialog', { name: 'Delete member@example.com?' });
      await dialog.waitFor();
      await expect.poll(focused).toBe('button Cancel');
      await expectAccessible('the delete dialog');
      await shot('08-delete-dialog', false);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      expect(await focused()).toBe('button Delete user');
      expect((await test.deps.db.selectFrom('users').select('id').where('id', '=', member.id).execute()).length).toBe(1);
      await page.keyboard.press('Enter');
      await dialog.waitFor();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      await page.getByRole('status').getByText('member@example.com was deleted.').waitFor();
      expect((await test.deps.db.selectFrom('users').select('id').where('id', '=', member.id).execute()).length).toBe(0);
      expect(problems).toEqual([]);
    }, 120_000);

    it('refreshes an expired access token with the refresh token kept in memory, and sends the admin back to sign in when the session ends', async () => {
      await open();
      await signedInAdmin(test, 'admin@example.com');
      await page.goto(`${origin}/admin`);
      await signInByKeyboard('admin@example.com');
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();

      // Past the access token's lifetime on the server's clock: the next call gets a 401, refreshes once, retries.
      test.clock.advanceSeconds(test.deps.config.jwt.accessTokenTtlSeconds + 1);
      const refreshed = page.waitForResponse((response) => new URL(response.url()).pathname === '/token/refresh');
      await press(page.getByRole('button', { name: 'Search' }));
      expect((await refreshed).status()).toBe(201);
      await expect.poll(() => page.locator('table tbody tr').count()).toBe(1);

      // Every session of the admin logged out elsewhere: the refresh is refused, the console asks to sign in.
      const elsewhere = json(await loginUser(test.app, 'admin@example.com'));
      const loggedOut = await fetchAs(elsewhere.token, '/logout', { method: 'POST', body: JSON.stringify({ all: true }) });
      expect(loggedOut.status).toBe(200);
      test.clock.advanceSeconds(test.deps.config.jwt.accessTokenTtlSeconds + 1);
      await press(page.getByRole('button', { name: 'Search' }));
      await page.getByText(/^Your session ended \(.+\)\. Sign in again\.$/).waitFor();
      await page.getByRole('heading', { level: 1, name: 'Gatehouse admin' }).waitFor();
      await expectAccessible('the sign-in page after the session ended');
      expect(problems).toEqual([]);
    }, 120_000);

    it('signs in an admin with two-step verification by keyboard: password, code step, a wrong code alerted, the right code; nothing stored', async () => {
      await open();
      const admin = await adminWithTotp('mfa-admin@example.com');
      await page.goto(`${origin}/admin/`);
      await signInByKeyboard('mfa-admin@example.com');

      // The password was right: the code step, its field focused; no session, nothing stored.
      await page.getByRole('heading', { level: 2, name: 'Two-step verification' }).waitFor();
      await expect.poll(focused).toBe('input#sign-in-code');
      const codeField = page.getByLabel('Authentication code');
      expect(await codeField.getAttribute('autocomplete')).toBe('one-time-code');
      expect(await codeField.getAttribute('inputmode')).toBe('numeric');
      // Numeric keypad, but no type=number nor pattern: a recovery code can be typed too.
      expect(await codeField.getAttribute('type')).toBe('text');
      expect(await codeField.getAttribute('pattern')).toBeNull();
      expect(await page.getByRole('button', { name: 'Verify' }).count()).toBe(1);
      expect(await page.getByRole('button', { name: 'Start over' }).count()).toBe(1);
      expect(await page.getByRole('navigation', { name: 'Sections' }).count()).toBe(0);
      expect(await storedInBrowser()).toEqual([0, 0, '']);
      await expectAccessible('the two-step verification page');
      await shot('09-mfa-step');

      // A wrong code: the server's message in an alert; the field emptied and focused for another try.
      const right = codeAt(admin.secret);
      const wrong = ['000000', '111111', '222222'].find((code) => ![codeAt(admin.secret, -1), right, codeAt(admin.secret, 1)].includes(code))!;
      await page.keyboard.type(wrong);
      await page.keyboard.press('Enter');
      await page.getByRole('alert').getByText('verification failed - incorrect code', { exact: true }).waitFor();
      await expect.poll(focused).toBe('input#sign-in-code');
      expect(await codeField.inputValue()).toBe('');
      await expectAccessible('the two-step verification page with an error');
      await shot('10-mfa-wrong-code');

      // The right code, same ticket: the users page.
      await page.keyboard.type(right);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      expect(new URL(page.url()).pathname).toBe('/admin/users');
      await expect.poll(() => page.locator('table tbody tr').count()).toBe(1);
      expect(await storedInBrowser()).toEqual([0, 0, '']);
      expect(await context.cookies()).toEqual([]);
      // The console's session was opened by the second step: its amr says so.
      const sessions = await test.deps.db.selectFrom('sessions').select('amr').where('user_id', '=', admin.id).execute();
      expect(sessions.map((session) => JSON.parse(session.amr))).toEqual(expect.arrayContaining([['pwd', 'otp', 'mfa']]));
      expect(problems).toEqual([]);
    }, 120_000);

    it('two-step verification: Start over goes back, an expired ticket returns to the password step with a message, a recovery code signs in', async () => {
      await open();
      const admin = await adminWithTotp('mfa-admin@example.com');
      await page.goto(`${origin}/admin/`);
      await signInByKeyboard('mfa-admin@example.com');
      await page.getByRole('heading', { level: 2, name: 'Two-step verification' }).waitFor();

      // Start over: the password step again, the email kept and focused.
      await press(page.getByRole('button', { name: 'Start over' }));
      await expect.poll(focused).toBe('input#sign-in-email');
      expect(await page.getByLabel('Email').inputValue()).toBe('mfa-admin@example.com');
      expect(await page.getByRole('heading', { name: 'Two-step verification' }).count()).toBe(0);
      await page.keyboard.press('Tab');
      await page.keyboard.type(STRONG_PASSWORD);
      await page.keyboard.press('Enter');

      // The ticket's five minutes pass: even the right code is refused, and the console asks for the password again.
      await page.getByRole('heading', { level: 2, name: 'Two-step verification' }).waitFor();
      await expect.poll(focused).toBe('input#sign-in-code');
      test.clock.advanceSeconds(301);
      await page.keyboard.type(codeAt(admin.secret));
      await page.keyboard.press('Enter');
      await page
        .getByRole('alert')
        .getByText('The verification step ended (auth failed - the MFA ticket is invalid or expired). Sign in again.', { exact: true })
        .waitFor();
      await expect.poll(focused).toBe('input#sign-in-password');
      await expectAccessible('the sign-in page after the verification step ended');

      // Again, with a recovery code: the field switches to a text keyboard for it.
      await page.keyboard.type(STRONG_PASSWORD);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 2, name: 'Two-step verification' }).waitFor();
      await press(page.getByRole('button', { name: 'Use a recovery code' }));
      await expect.poll(focused).toBe('input#sign-in-code');
      expect(await page.getByLabel('Authentication code').getAttribute('inputmode')).toBe('text');
      await page.keyboard.type(admin.recoveryCodes[0]!);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      expect(await storedInBrowser()).toEqual([0, 0, '']);
      expect(await context.cookies()).toEqual([]);
      const sessions = await test.deps.db.selectFrom('sessions').select('amr').where('user_id', '=', admin.id).execute();
      expect(sessions.map((session) => JSON.parse(session.amr))).toEqual(expect.arrayContaining([['pwd', 'mfa']]));
      expect(problems).toEqual([]);
    }, 120_000);

    it('turns away a wrong password and an account without the admin role, storing nothing', async () => {
      await open();
      await signupUser(test.app, { email: 'plain@example.com' });
      await page.goto(`${origin}/admin`);
      await signInByKeyboard('plain@example.com', 'not the password');
      await page.getByRole('alert').getByText('Wrong email or password.').waitFor();
      await expectAccessible('the sign-in page with an error');
      await shot('00-sign-in-refused');

      await page.getByLabel('Password').fill(STRONG_PASSWORD);
      await page.keyboard.press('Enter');
      await page.getByRole('alert').getByText('This account has no admin role.').waitFor();
      expect(await page.getByRole('navigation', { name: 'Sections' }).count()).toBe(0);
      expect(await storedInBrowser()).toEqual([0, 0, '']);
      // The session that login opened was logged out again, not left behind.
      const sessions = await test.deps.db.selectFrom('sessions').select(['revoked_at']).execute();
      expect(sessions).toHaveLength(1);
      expect(sessions[0]!.revoked_at).not.toBeNull();
      expect(problems).toEqual([]);
    }, 60_000);
  });
});
