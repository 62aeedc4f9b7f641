import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { swaggerOptions } from '../src/http/openapi.ts';
import { json, signedInUser, startTestApp, testDialects, type TestApp } from './helpers.ts';
import { attachOpenApiCheck, OpenApiMismatch } from './openapi-check.ts';

type Json = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

function operationsOf(document: Json): Array<{ label: string; operation: Json }> {
  return Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({ label: `${method.toUpperCase()} ${path}`, operation: item[method] as Json })),
  );
}

/** GET /docs, following Swagger UI's redirects. */
async function docsPage(app: FastifyInstance) {
  let response = await app.inject({ method: 'GET', url: '/docs' });
  for (let hops = 0; response.statusCode >= 300 && response.statusCode < 400 && hops < 3; hops++) {
    response = await app.inject({ method: 'GET', url: new URL(String(response.headers.location), 'http://localhost/docs/').pathname });
  }
  return response;
}

describe.each(testDialects())('the OpenAPI document [%s]', (dialect) => {
  let test: TestApp;
  let document: Json;
  beforeAll(async () => {
    test = await startTestApp(dialect);
    document = json(await test.app.inject({ method: 'GET', url: '/openapi.json' }));
  });
  afterAll(() => test.close());

  it('gives every operation a unique operationId, tags, a summary, explicit security and its 4xx answers', () => {
    const operations = operationsOf(document);
    expect(operations.length).toBeGreaterThanOrEqual(14);
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { label, operation } of operations) {
      expect(operation.operationId, label).toMatch(/^[a-z][A-Za-z]+$/);
      expect(operation.tags?.length, label).toBeGreaterThan(0);
      expect(operation.summary, label).toBeTruthy();
      expect(Array.isArray(operation.security), `${label} declares its security`).toBe(true);
      const statuses = Object.keys(operation.responses);
      expect(statuses, label).toContain('400');
      if (operation.requestBody) expect(statuses, label).toEqual(expect.arrayContaining(['400', '413', '415']));
      if (operation.security.length > 0) expect(statuses, label).toContain('401');
      for (const status of ['429', '503']) {
        if (statuses.includes(status)) expect(operation.responses[status].headers?.['Retry-After'], `${label} ${status}`).toBeDefined();
      }
    }
    expect(document.paths['/me'].get.security).toEqual([{ bearerAuth: [] }, { accessTokenHeader: [] }]);
    expect(document.paths['/login'].post.security).toEqual([]);
  });

  it('lists where the service is: servers is the issuer', () => {
    expect(document.servers).toEqual([{ url: 'http://localhost:2000', description: expect.any(String) }]);
  });

  it('declares the clientBasic scheme for client-authenticated routes, and lists only the schemes in use', () => {
    const declared = (swaggerOptions(loadConfig({})).openapi as Json).components.securitySchemes;
    expect(declared.clientBasic).toMatchObject({ type: 'http', scheme: 'basic' });
    const used = new Set(operationsOf(document).flatMap(({ operation }) => operation.security.flatMap((requirement: Json) => Object.keys(requirement))));
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual([...used].sort());
  });

  it('marks limit on GET /users optional, and a bare GET /users lists a page', async () => {
    const limit = document.paths['/users'].get.parameters.find((parameter: Json) => parameter.name === 'limit');
    expect(limit).toMatchObject({ in: 'query', required: false, schema: { default: 50 } });
    const user = await signedInUser(test.app, 'openapi-list@example.com');
    const response = await test.app.inject({ method: 'GET', url: '/users', headers: { authorization: `Bearer ${user.token}` } });
    expect(response.statusCode).toBe(200);
  });

  it('marks the logout body optional: a bare POST /logout logs out, a JSON null is refused', async () => {
    expect(document.paths['/logout'].post.requestBody.required).toBe(false);
    expect(JSON.stringify(document)).not.toContain('x-gatehouse-optional-body');
    const user = await signedInUser(test.app, 'openapi-logout@example.com');
    const headers = { authorization: `Bearer ${user.token}` };
    // A JSON null is a body the document does not allow (an object), so it is refused rather than taken for none.
    const nullBody = await test.app.inject({ method: 'POST', url: '/logout', headers: { ...headers, 'content-type': 'application/json' }, payload: 'null' });
    expect(nullBody.statusCode).toBe(400);
    const response = await test.app.inject({ method: 'POST', url: '/logout', headers });
    expect(response.statusCode).toBe(200);
  });

  it('shows request examples the service accepts as they stand', async () => {
    const example = (path: string) => document.paths[path].post.requestBody.content['application/json'].example;
    const signup = await test.app.inject({ method: 'POST', url: '/signup', payload: example('/signup') });
    expect(signup.statusCode, signup.body).toBe(201);
    const login = await test.app.inject({ method: 'POST', url: '/login', payload: example('/login') });
    expect(login.statusCode, login.body).toBe(201);
    expect(document.paths['/login'].post.responses['201'].content['application/json'].example).toMatchObject({ code: 201, token_type: 'Bearer' });
  });

  it('pins the envelope per answer: code is the status, status is code < 400', () => {
    const created = document.paths['/signup'].post.responses['201'].content['application/json'].schema;
    expect(created.properties.code.const).toBe(201);
    expect(created.properties.status.const).toBe(true);
    expect(document.paths['/me'].get.responses['401'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ErrorEnvelope' });
    expect(document.components.schemas.ErrorEnvelope.properties.status.const).toBe(false);
  });

  it('introduces the envelope, the token flow and how another service verifies tokens', () => {
    const intro: string = document.info.description;
    for (const part of ['## The envelope', '"status": true', '## The token flow', '/token/refresh', '@gatehouse/client', '@gatehouse/verify', 'jwks_uri', 'at+jwt']) {
      expect(intro).toContain(part);
    }
    expect(document.info.license).toEqual({ name: 'MIT', identifier: 'MIT' });
  });

  it("serves /docs under Gatehouse's name and logo, not Swagger's", async () => {
    const page = await docsPage(test.app);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>Gatehouse API</title>');
    expect(page.body).toContain('theme/favicon.svg');
    expect(page.body).not.toContain('favicon-32x32.png');
    const initializer = await test.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(initializer.statusCode).toBe(200);
    const logo = /data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)/.exec(initializer.body);
    expect(Buffer.from(logo?.[1] ?? '', 'base64').toString('utf8')).toContain('>Gatehouse</text>');
    const favicon = await test.app.inject({ method: 'GET', url: '/docs/static/theme/favicon.svg' });
    expect(favicon.statusCode).toBe(200);
  });
});

describe.each(testDialects())('the OpenAPI document behind a public address [%s]', (dialect) => {
  it('names the configured issuer, without a trailing slash, as the server', async () => {
    const test = await startTestApp(dialect, { JWT_ISSUER: 'https://auth.example.org/' });
    try {
      const document = json(await test.app.inject({ method: 'GET', url: '/openapi.json' }));
      expect(document.servers.map((server: Json) => server.url)).toEqual(['https://auth.example.org']);
    } finally {
      await test.close();
    }
  });
});

/**
 * The check itself, on a small app whose routes break the document in one way each: a test that
 * passes whatever the check does would prove nothing about the suites that rely on it.
 */
describe('the OpenAPI check', () => {
  let app: FastifyInstance;
  const N = { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } };
  const ANY = { type: 'object', additionalProperties: true };
  beforeAll(async () => {
    app = Fastify();
    await app.register(swagger, {
      openapi: { openapi: '3.1.0', info: { title: 't', version: '1' }, components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } },
    });
    app.get('/ok', { schema: { response: { 200: N } } }, async () => ({ n: 1 }));
    // Answers a status its schema does not list (the cast tells the type provider so).
    app.get('/teapot', { schema: { response: { 200: N } } }, async (_request, reply) => reply.code(418 as 200).send({ n: 1 }));
    app.get('/wrong-body', { schema: { response: { 200: N } } }, async (_request, reply) => reply.type('application/json').send('{"n":"one"}'));
    app.get('/wrong-type', { schema: { response: { 200: N } } }, async (_request, reply) => reply.type('text/plain').send('one'));
    app.post('/echo', { schema: { body: N, response: { 200: N, 400: ANY } } }, async (request) => request.body);
    app.post('/bodiless', { schema: { response: { 200: N } } }, async () => ({ n: 1 }));
    app.get('/secret', { schema: { security: [{ bearer: [] }], response: { 200: N, 401: ANY } } }, async () => ({ n: 1 }));
    app.get('/hidden', { schema: { hide: true } }, async () => ({ n: 1 }));
    app.get('/envelope', { schema: { response: { 201: ANY } } }, async (_request, reply) => reply.code(201).send({ status: true, code: 200, message: 'ok', data: null }));
    app.setNotFoundHandler((_request, reply) => reply.code(200).send({ n: 1 }));
    attachOpenApiCheck(app);
    await app.ready();
  });
  afterAll(() => app.close());

  const rejection = (promise: Promise<unknown>) => promise.then(() => 'resolved', (error: Error) => `${error.name}: ${error.message}`);

  it('passes an exchange that matches', async () => {
    expect((await app.inject({ method: 'GET', url: '/ok' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/echo', payload: { n: 2 } })).statusCode).toBe(200);
  });

  it('fails an undocumented status', async () => {
    expect(await rejection(app.inject({ method: 'GET', url: '/teapot' }))).toMatch(/OpenApiMismatch: .*status 418 is not documented for GET \/teapot/s);
  });

  it('fails a body that does not match its schema, and a content type the document does not list', async () => {
    expect(await rejection(app.inject({ method: 'GET', url: '/wrong-body' }))).toMatch(/response body\/n must be integer/);
    expect(await rejection(app.inject({ method: 'GET', url: '/wrong-type' }))).toMatch(/content type text\/plain is not documented/);
  });

  it('lets a refused request be anything, but holds an accepted one to the document', async () => {
    expect((await app.inject({ method: 'POST', url: '/echo', payload: { n: 'two' } })).statusCode).toBe(400);
    expect(await rejection(app.inject({ method: 'POST', url: '/bodiless', payload: { n: 1 } }))).toMatch(/a body was accepted, but POST \/bodiless documents none/);
    expect(await rejection(app.inject({ method: 'GET', url: '/secret' }))).toMatch(/served without the credentials its security asks for \(bearer\)/);
    expect((await app.inject({ method: 'GET', url: '/secret', headers: { authorization: 'Bearer x' } })).statusCode).toBe(200);
  });

  it('fails a route missing from the document, and an unknown route that does not answer a 4xx envelope', async () => {
    expect(await rejection(app.inject({ method: 'GET', url: '/hidden' }))).toMatch(/route GET \/hidden is served but not in the document/);
    expect(await rejection(app.inject({ method: 'GET', url: '/nowhere' }))).toMatch(/no operation serves this request, yet it answered 200/);
  });

  it('fails an envelope whose code is not the HTTP status', async () => {
    expect(await rejection(app.inject({ method: 'GET', url: '/envelope' }))).toMatch(/envelope code 200 is not the HTTP status/);
  });

  it('keeps the problems of requests over a socket, and close() fails on those not taken', async () => {
    const socketApp = Fastify();
    await socketApp.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 't', version: '1' } } });
    socketApp.get('/teapot', { schema: { response: { 200: N } } }, async (_request, reply) => reply.code(418 as 200).send({ n: 1 }));
    const check = attachOpenApiCheck(socketApp);
    const origin = await socketApp.listen({ host: '127.0.0.1', port: 0 });
    expect((await fetch(`${origin}/teapot`)).status).toBe(418);
    expect(check.takeProblems()).toEqual([expect.stringMatching(/GET \/teapot → 418: status 418 is not documented/)]);
    await fetch(`${origin}/teapot`);
    await expect(socketApp.close()).rejects.toBeInstanceOf(OpenApiMismatch);
  });
});
