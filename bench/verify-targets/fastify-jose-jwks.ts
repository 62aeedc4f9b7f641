// Fastify 5 + jose's jwtVerify on every request, keys from Gatehouse's JWKS (createRemoteJWKSet, cached):
// the usual hand-rolled resource server, one Ed25519 signature check per request.
import Fastify from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { bearerToken, exitOnSigterm, gatehouseJwks, host, ordersPage, settings, unauthorized } from './common.ts';

const jwks = createRemoteJWKSet(new URL((await gatehouseJwks()).jwksUri));
const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/orders', async (request, reply) => {
  const token = bearerToken(request.headers);
  try {
    if (!token) throw new Error('no token');
    await jwtVerify(token, jwks, { algorithms: ['EdDSA'], issuer: settings.issuer, audience: settings.audience, typ: 'at+jwt' });
  } catch {
    return reply.code(401).send(unauthorized);
  }
  return ordersPage;
});
await app.listen({ host, port: settings.port });
exitOnSigterm(() => app.close());
