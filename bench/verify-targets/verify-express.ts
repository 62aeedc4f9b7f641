// Express 5 + @gatehouse/verify's middleware (claims cache, revocation feed followed).
import express from 'express';
import { createVerifier } from '../../packages/verify/src/index.ts';
import { exitOnSigterm, host, ordersPage, settings } from './common.ts';

const verifier = createVerifier({
  issuer: settings.issuer,
  audience: settings.audience,
  algorithms: ['EdDSA'],
  revocations: { clientId: settings.clientId, clientSecret: settings.clientSecret },
});
await verifier.ready();
const app = express();
app.disable('x-powered-by');
app.get('/healthz', (_request, response) => {
  response.json({ status: verifier.status().revocations.state });
});
app.get('/orders', verifier.express(), (_request, response) => {
  response.json(ordersPage);
});
const server = app.listen(settings.port, host);
exitOnSigterm(() => {
  verifier.close();
  server.close();
});
