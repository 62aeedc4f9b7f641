// Fastify 5, the same route with no token check at all: the ceiling every protected target is measured against.
import Fastify from 'fastify';
import { exitOnSigterm, host, ordersPage, settings } from './common.ts';

const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/orders', async () => ordersPage);
await app.listen({ host, port: settings.port });
exitOnSigterm(() => app.close());
