// Express 5, the same route with no token check: what Express itself costs, beside verify-express.
import express from 'express';
import { exitOnSigterm, host, ordersPage, settings } from './common.ts';

const app = express();
app.disable('x-powered-by');
app.get('/healthz', (_request, response) => {
  response.json({ status: 'ok' });
});
app.get('/orders', (_request, response) => {
  response.json(ordersPage);
});
const server = app.listen(settings.port, host);
exitOnSigterm(() => server.close());
