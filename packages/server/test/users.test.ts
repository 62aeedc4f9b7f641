import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertNoLeak, expectErrorEnvelope, json, signedInAdmin, signedInUser, signupUser, startTestApp, testDialects, type TestApp } from './helpers.ts';

const USER_COUNT = 11;

describe.each(testDialects())('GET /users pagination [%s]', (dialect) => {
  let test: TestApp;
  let token: string;
  let allIds: number[];
  beforeAll(async () => {
    test = await startTestApp(dialect);
    token = (await signedInAdmin(test, 'lister@example.com')).token;
    for (let index = 0; index < USER_COUNT - 1; index++) {
      const response = await signupUser(test.app, { email: `user${index}@example.com` });
      if (response.statusCode !== 201) throw new Error(response.body);
    }
    const rows = await test.deps.db.selectFrom('users').select('id').orderBy('id').execute();
    allIds = rows.map((row) => Number(row.id));
  });
  afterAll(() => test.close());

  const list = (query: string) => test.app.inject({ method: 'GET', url: `/users${query}`, headers: { 'x-access-token': token } });

  it('answers the seed shape, with every user and no cursor by default', async () => {
    const response = await list('');
    expect(response.statusCode).toBe(200);
    assertNoLeak(response.body);
    const body = json(response);
    expect(Object.keys(body).sort()).toEqual(['next_cursor', 'users']);
    expect(body.next_cursor).toBeNull();
    expect(body.users).toHaveLength(USER_COUNT);
    // An admin gets each user's full record (the admin API's AdminUser); others get the seed's {id, email}.
    for (const user of body.users) expect(Object.keys(user).sort()).toEqual(['created_at', 'disabled', 'disabled_at', 'email', 'id', 'name', 'roles', 'updated_at']);
    expect(body.users.map((user: { id: number }) => user.id)).toEqual(allIds);
  });

  it.each([1, 3, 4, 11, 100])('walks every user exactly once with limit=%i', async (limit) => {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await list(`?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(response.statusCode).toBe(200);
      const body = json(response);
      expect(body.users.length).toBeLessThanOrEqual(limit);
      expect(body.users.length).toBeGreaterThan(0);
      seen.push(...body.users.map((user: { id: number }) => user.id));
      cursor = body.next_cursor;
      expect(++pages).toBeLessThanOrEqual(USER_COUNT);
    } while (cursor !== null);
    expect(seen).toEqual(allIds);
    expect(pages).toBe(Math.ceil(USER_COUNT / limit));
  });

  it('sees a user added between pages', async () => {
    const first = json(await list('?limit=5'));
    const added = json(await signupUser(test.app, { email: 'late@example.com' })).data.id as number;
    const seen = [...first.users];
    let cursor: string | null = first.next_cursor;
    while (cursor) {
      const page = json(await list(`?limit=5&cursor=${encodeURIComponent(cursor)}`));
      seen.push(...page.users);
      cursor = page.next_cursor;
    }
    expect(seen.map((user: { id: number }) => user.id)).toEqual([...allIds, added]);
    await test.deps.db.deleteFrom('users').where('id', '=', added).execute();
  });

  it('coerces ?limit=10 from the query string', async () => {
    const response = await list('?limit=10');
    expect(response.statusCode).toBe(200);
    const body = json(response);
    expect(body.users).toHaveLength(10);
    expect(body.next_cursor).toEqual(expect.any(String));
  });

  it.each(['0', '101', '-1', '1.5', 'ten', '', '99999999999999999999999'])('refuses limit=%s with a 400', async (limit) => {
    const body = expectErrorEnvelope(await list(`?limit=${limit}`), 400, /^invalid request - /);
    expect(body.data.errors).toEqual([expect.objectContaining({ field: 'limit' })]);
  });

  it.each([
    ['garbage', 'not-a-cursor!!'],
    ['wrong prefix', Buffer.from('x:5').toString('base64url')],
    ['non-numeric id', Buffer.from('u:abc').toString('base64url')],
    ['oversized id', Buffer.from(`u:${'9'.repeat(20)}`).toString('base64url')],
    ['too long', 'A'.repeat(500)],
  ])('refuses a bad cursor (%s) with a 400', async (_kind, cursor) => {
    expectErrorEnvelope(await list(`?cursor=${encodeURIComponent(cursor)}`), 400, /^invalid request - .*cursor/);
  });

  it('needs a token', async () => {
    expectErrorEnvelope(await test.app.inject({ method: 'GET', url: '/users?limit=10' }), 401, 'auth failed - token is missing');
  });
});

describe.each(testDialects())('GET /users visibility [%s]', (dialect) => {
  let test: TestApp;
  afterEach(() => test.close());

  const list = (token: string, query = '') => test.app.inject({ method: 'GET', url: `/users${query}`, headers: { 'x-access-token': token } });

  it('shows a non-admin only their own entry, on every page and cursor', async () => {
    test = await startTestApp(dialect);
    await signupUser(test.app, { email: 'first@example.com' });
    const me = await signedInUser(test.app, 'me@example.com');
    await signupUser(test.app, { email: 'last@example.com' });

    const own = json(await list(me.token));
    expect(own).toEqual({ users: [{ id: me.id, email: 'me@example.com' }], next_cursor: null });
    expect(json(await list(me.token, '?limit=1'))).toEqual(own);
    // A cursor at or past the caller's own id ends the walk; one before it still shows only the caller.
    const cursorAt = (id: number) => `?cursor=${Buffer.from(`u:${id}`).toString('base64url')}`;
    expect(json(await list(me.token, cursorAt(me.id)))).toEqual({ users: [], next_cursor: null });
    expect(json(await list(me.token, cursorAt(me.id - 1)))).toEqual(own);
  });

  it('shows an admin every user', async () => {
    test = await startTestApp(dialect);
    await signupUser(test.app, { email: 'someone@example.com' });
    const admin = await signedInAdmin(test, 'admin@example.com');
    expect(json(await list(admin.token)).users.map((user: { email: string }) => user.email)).toEqual(['someone@example.com', 'admin@example.com']);
  });

  it('shows every signed-in user the whole list with USERS_LIST=all, as the tutorial did', async () => {
    test = await startTestApp(dialect, { USERS_LIST: 'all' });
    await signupUser(test.app, { email: 'someone@example.com' });
    const me = await signedInUser(test.app, 'me@example.com');
    expect(json(await list(me.token)).users.map((user: { email: string }) => user.email)).toEqual(['someone@example.com', 'me@example.com']);
  });
});
