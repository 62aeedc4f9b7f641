import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { decodeJwt } from 'jose';
import { expect } from 'vitest';
import { createClient, type NewClient } from '../src/clients/clients.ts';
import { fixedClock } from '../src/clock.ts';
import { assertNoLeak, createTestDatabase, json, openTestApp, type DialectName, type TestApp } from './helpers.ts';
import { freePort } from './service-process.ts';

/** RFC 6749 section 2.3.1: id and secret form-urlencoded, then base64. */
export function basicAuthorization(clientId: string, secret: string): string {
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

export interface RegisteredClient {
  id: string;
  secret: string;
  /** The Authorization header value for client_secret_basic. */
  basic: string;
}

export async function registerConfidentialClient(test: TestApp, client: Omit<NewClient, 'type' | 'name'> & { name?: string }): Promise<RegisteredClient> {
  const { secret } = await createClient(test.deps, { name: client.id, ...client, type: 'confidential' });
  return { id: client.id, secret: secret!, basic: basicAuthorization(client.id, secret!) };
}

export async function registerPublicClient(test: TestApp, id: string, audiences: string[] = []): Promise<void> {
  await createClient(test.deps, { id, name: id, type: 'public', audiences });
}

/** A form-encoded POST, as OAuth clients send them. */
export function postForm(
  app: FastifyInstance,
  url: string,
  params: Record<string, string | string[]> | string,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  let payload: string;
  if (typeof params === 'string') payload = params;
  else {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) for (const one of [value].flat()) search.append(name, one);
    payload = search.toString();
  }
  return app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });
}

/** An RFC 6749 section 5.2 error: that status and error code, JSON, nothing leaked, never cached. */
export function expectOAuthError(response: LightMyRequestResponse, status: number, error: string, secrets: string[] = []): { error: string; error_description?: string } {
  assertNoLeak(response.body, secrets);
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(response.headers['cache-control']).toBe('no-store');
  const body = json(response);
  expect(body.error).toBe(error);
  expect(Object.keys(body).every((key) => key === 'error' || key === 'error_description')).toBe(true);
  if (body.error_description !== undefined) expect(body.error_description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/);
  if (error === 'invalid_client') expect(response.headers['www-authenticate']).toMatch(/^Basic realm="gatehouse"/);
  return body;
}

/** A successful token answer (RFC 6749 section 5.1); returns the body and the access token's claims. */
export function expectTokenAnswer(response: LightMyRequestResponse) {
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['cache-control']).toBe('no-store');
  expect(response.headers.pragma).toBe('no-cache');
  const body = json<{ access_token: string; token_type: string; expires_in: number; refresh_token?: string; scope?: string }>(response);
  expect(body.token_type).toBe('Bearer');
  return { body, claims: decodeJwt(body.access_token) };
}

/**
 * An app listening on 127.0.0.1 whose JWT_ISSUER is its own URL, on a fresh database, with a clock
 * frozen at the wall time (libraries such as oauth4webapi check exp and iat against the real clock).
 */
export async function startListeningApp(dialect: DialectName, env: Record<string, string> = {}): Promise<{ test: TestApp; origin: string }> {
  for (let attempt = 1; ; attempt++) {
    const origin = `http://127.0.0.1:${await freePort()}`;
    const database = await createTestDatabase(dialect);
    const test = await openTestApp(database, { JWT_ISSUER: origin, ...env }, fixedClock(new Date()));
    const closeApp = test.close;
    test.close = async () => {
      await closeApp();
      await database.drop();
    };
    try {
      await test.app.listen({ host: '127.0.0.1', port: Number(new URL(origin).port) });
      return { test, origin };
    } catch (error) {
      await test.close();
      if (attempt >= 3 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
}
