// Fastify 5 + fast-jwt with its verified-token cache: the fastest common choice. Its best case:
// a synchronous verifier with Gatehouse's public key fixed at start (no key lookup by kid, no refetch).
import { createPublicKey } from 'node:crypto';
import Fastify from 'fastify';
import { createVerifier } from 'fast-jwt';
import { bearerToken, exitOnSigterm, gatehouseJwks, host, ordersPage, settings, unauthorized } from './common.ts';

const { keys } = await gatehouseJwks();
const publicKey = createPublicKey({ key: keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
const verifyToken = createVerifier({ key: publicKey, algorithms: ['EdDSA'], allowedIss: settings.issuer, allowedAud: settings.audience, cache: true });
const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/orders', async (request, reply) => {
  const token = bearerToken(request.headers);
  try {
    if (!token) throw new Error('no token');
    verifyToken(token);
  } catch {
    return reply.code(401).send(unauthorized);
  }
  return ordersPage;
});
await app.listen({ host, port: settings.port });
exitOnSigterm(() => app.close());
