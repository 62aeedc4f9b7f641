// The whole life of a session with @gatehouse/client, as an app would live it (no Node-only API:
// the same code runs in a page). main.mjs runs it against a Gatehouse; the client package's tests
// run it against a test server.
/**
 * @param {{ createGatehouseClient: typeof import('@gatehouse/client').createGatehouseClient, baseUrl: string, log?: (line: string) => void }} options
 */
export async function runExample({ createGatehouseClient, baseUrl, log = console.log }) {
  const gatehouse = createGatehouseClient({
    baseUrl,
    onSessionEnd: () => log('   (the session ended: log in again)'),
  });
  const suffix = globalThis.crypto.randomUUID().slice(0, 8);
  const email = `web-client-${suffix}@example.com`;
  const password = `quartz lantern meadow ${suffix}`;

  const user = await gatehouse.signup({ name: 'Web Client Example', email, password });
  log(`1. signed up ${user.email} (user ${user.id}, roles ${user.roles.join(', ')})`);

  await gatehouse.login({ email, password });
  const first = await gatehouse.accessToken();
  log(`2. logged in; the access token is kept in memory (…${first.slice(-8)})`);

  const me = await gatehouse.me();
  log(`3. GET /me: ${me.name} <${me.email}>, since ${me.created_at}`);

  await gatehouse.refresh();
  const second = await gatehouse.accessToken();
  log(`4. refreshed: a new access token (…${second.slice(-8)}) and a new single-use refresh token`);

  const page = await gatehouse.request('/users?limit=10');
  log(`5. GET /users through request(): ${page.users.length} user(s) visible to this account`);

  await gatehouse.logout();
  try {
    await gatehouse.me();
  } catch (error) {
    log(`6. logged out; /me now fails with code ${error.code}`);
  }
  return { email, userId: user.id };
}
