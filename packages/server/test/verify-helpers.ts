import { randomBytes } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { createVerifier, type Verifier, type VerifierOptions } from '../../verify/src/index.ts';
import { createClient } from '../src/clients/clients.ts';
import { basicAuthorization, confidentialClient } from './client-helpers.ts';
import { startTestApp, type DialectName, type TestApp } from './helpers.ts';
import { freePort } from './service-process.ts';

/** A Gatehouse listening on 127.0.0.1, its JWT_ISSUER its own address, so discovery works as in production. */
export interface LiveGatehouse {
  test: TestApp;
  issuer: string;
  audience: string;
  /** Every request a verifier made to it, by path (through the verifier's fetch option). */
  requests: string[];
  /** fetch that records the paths it asks for. */
  fetch: (input: string, init?: RequestInit) => Promise<Response>;
  /** A verifier on the app's clock, recording its requests; closed with the Gatehouse. */
  verifier(options?: Partial<VerifierOptions>): Verifier;
  /** A confidential client's credentials, for the revocation feed. */
  feedClient(id?: string): Promise<{ clientId: string; clientSecret: string }>;
  close(): Promise<void>;
}

export async function startLiveGatehouse(dialect: DialectName, env: Record<string, string> = {}): Promise<LiveGatehouse> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const test = await startTestApp(dialect, { JWT_ISSUER: issuer, ...env });
  await test.app.listen({ host: '127.0.0.1', port });
  const requests: string[] = [];
  const verifiers: Verifier[] = [];
  const recordingFetch = (input: string, init?: RequestInit) => {
    requests.push(new URL(input).pathname);
    return fetch(input, init);
  };
  return {
    test,
    issuer,
    audience: test.deps.config.jwt.audience,
    requests,
    fetch: recordingFetch,
    verifier(options = {}) {
      const verifier = createVerifier({
        issuer,
        audience: test.deps.config.jwt.audience,
        now: () => test.clock.now().getTime(),
        fetch: recordingFetch,
        onError: () => {},
        ...options,
      });
      verifiers.push(verifier);
      return verifier;
    },
    async feedClient(id = 'orders-service') {
      const authorization = await confidentialClient(test, id);
      const [clientId, clientSecret] = Buffer.from(authorization.slice('Basic '.length), 'base64').toString('utf8').split(':') as [string, string];
      return { clientId: decodeURIComponent(clientId), clientSecret: decodeURIComponent(clientSecret) };
    },
    async close() {
      for (const verifier of verifiers) verifier.close();
      await test.close();
    },
  };
}

/**
 * A token signed with Gatehouse's own current key, with the claims given (defaults: a valid user
 * token). For shapes Gatehouse never issues (a wrong issuer, mixed kinds) and, until the
 * client_credentials grant lands, for client tokens in the format the brief fixes.
 */
export async function signWithGatehouseKey(test: TestApp, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const key = test.deps.keys.current();
  const now = test.clock.nowSeconds();
  const { issuer, audience } = test.deps.config.jwt;
  return new SignJWT({ iss: issuer, aud: audience, jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: key.algorithm, typ: 'at+jwt', kid: key.kid, ...header })
    .sign(key.privateKey);
}

/**
 * A real client_credentials token: the client is registered with these scopes and asks
 * POST /oauth/token for one, as a service would.
 */
export async function grantedClientToken(test: TestApp, clientId: string, scopes: string[] = []): Promise<string> {
  const { secret } = await createClient(test.deps, { id: clientId, name: clientId, type: 'confidential', scopes });
  const response = await test.app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { authorization: basicAuthorization(clientId, secret!), 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'grant_type=client_credentials',
  });
  if (response.statusCode !== 200) throw new Error(`client_credentials grant failed: ${response.statusCode} ${response.body}`);
  return (JSON.parse(response.body) as { access_token: string }).access_token;
}

/** A hand-signed client_credentials token (sub = client_id, gty, scope, no sid), for shapes Gatehouse never issues. */
export function clientToken(test: TestApp, clientId: string, scope?: string, extra: JWTPayload = {}): Promise<string> {
  return signWithGatehouseKey(test, { sub: clientId, client_id: clientId, gty: 'client_credentials', ...(scope ? { scope } : {}), ...extra });
}
