import { createClient } from '../src/clients/clients.ts';
import type { TestApp } from './helpers.ts';

/** RFC 6749 section 2.3.1 client_secret_basic: id and secret form-url-encoded, joined, base64. */
export function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** A confidential client registered through the clients core, as `gatehouse clients create` does. */
export async function confidentialClient(test: TestApp, id = 'orders-service'): Promise<string> {
  const { secret } = await createClient(test.deps, { id, name: 'Orders service', type: 'confidential' });
  return basicAuthorization(id, secret!);
}

export function sessionIdOf(token: string): string {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).sid as string;
}
