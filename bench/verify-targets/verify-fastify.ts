// Fastify 5 + @gatehouse/verify's plugin (claims cache, revocation feed followed).
import Fastify from 'fastify';
import { createVerifier } from '../../packages/verify/src/index.ts';
import { exitOnSigterm, host, ordersPage, settings } from './common.ts';

const verifier = createVerifier({
  issuer: settings.issuer,
  audience: settings.audience,
  algorithms: ['EdDSA'],
  revocations: { clientId: settings.clientId, clientSecret: settings.clientSecret },
});
await verifier.ready();
const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: verifier.status().revocations.state }));
await app.register(async (api) => {
  await api.register(verifier.fastifyPlugin);
  api.get('/orders', async () => ordersPage);
});
await app.listen({ host, port: settings.port });
exitOnSigterm(() => {
  verifier.close();
  return app.close();
});
