// What every resource-server target of `npm run bench:verify` shares: its settings and the route's answer.

export const settings = {
  port: Number(process.env.PORT),
  issuer: process.env.GATEHOUSE_ISSUER ?? '',
  audience: process.env.GATEHOUSE_AUDIENCE ?? 'gatehouse',
  clientId: process.env.GATEHOUSE_CLIENT_ID ?? '',
  clientSecret: process.env.GATEHOUSE_CLIENT_SECRET ?? '',
};
if (!Number.isInteger(settings.port) || settings.port <= 0 || !settings.issuer) throw new Error('set PORT and GATEHOUSE_ISSUER');

export const host = '127.0.0.1';

/** The protected route's answer: a small page of orders, the same on every target. */
export const ordersPage = Object.freeze({
  orders: [
    { id: 1, item: 'notebook', quantity: 2 },
    { id: 2, item: 'pencil', quantity: 12 },
    { id: 3, item: 'eraser', quantity: 1 },
  ],
});

export const unauthorized = Object.freeze({ error: 'invalid_token', error_description: 'the access token is invalid' });

/** `Authorization: Bearer <token>` only (what a resource server usually reads). */
export function bearerToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers.authorization;
  return typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : undefined;
}

/** Gatehouse's discovery document, then its key set: what the peers without a discovery client do by hand. */
export async function gatehouseJwks(): Promise<{ jwksUri: string; keys: Array<Record<string, unknown>> }> {
  const metadata = (await (await fetch(`${settings.issuer}/.well-known/oauth-authorization-server`)).json()) as { jwks_uri: string };
  const jwks = (await (await fetch(metadata.jwks_uri)).json()) as { keys: Array<Record<string, unknown>> };
  return { jwksUri: metadata.jwks_uri, keys: jwks.keys };
}

export function exitOnSigterm(close: () => unknown): void {
  process.on('SIGTERM', () => {
    void Promise.resolve(close()).finally(() => process.exit(0));
  });
}
