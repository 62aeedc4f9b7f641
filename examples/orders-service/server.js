// The orders service: a small API whose users sign in at Gatehouse. It never sees a password and
// never calls Gatehouse per request: @gatehouse/verify checks each token locally against
// Gatehouse's published keys, and follows Gatehouse's revocation feed so a logout counts here
// within a second. Run it from the repository root: `npm run example:orders` (see README.md).
import { randomUUID } from 'node:crypto';
import express from 'express';
import { createVerifier, requireClient, requireRole, requireUser } from '@gatehouse/verify';

const env = process.env;
const issuer = env.GATEHOUSE_URL ?? 'http://localhost:2000';
const clientId = env.GATEHOUSE_CLIENT_ID;
const clientSecret = env.GATEHOUSE_CLIENT_SECRET;
const port = Number(env.PORT ?? 3000);
const host = env.HOST ?? '127.0.0.1';

const verifier = createVerifier({
  issuer,
  audience: env.GATEHOUSE_AUDIENCE ?? 'gatehouse',
  realm: 'orders',
  // Without a confidential client the service still verifies tokens, but hears of a logout only when the token expires.
  revocations: clientId && clientSecret ? { clientId, clientSecret } : false,
  onError: (error) => console.warn(`orders-service: ${error.message}`),
});

/** Orders in memory, by id: an example, not a database. */
const orders = new Map();
const MAX_ORDERS = 10_000;

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '8kb' }));

app.get('/healthz', (_request, response) => {
  response.json({ status: 'ok', revocations: verifier.status().revocations.state });
});

// A signed-in user sees their own orders; an admin sees everyone's.
app.get('/orders', verifier.express(), requireUser(), (request, response) => {
  const { auth } = request;
  const visible = [...orders.values()].filter((order) => auth.roles.includes('admin') || order.userId === auth.userId);
  response.json({ orders: visible });
});

// Any signed-in user places an order for themselves.
app.post('/orders', verifier.express(), requireUser(), (request, response) => {
  const item = request.body?.item;
  const quantity = request.body?.quantity ?? 1;
  if (typeof item !== 'string' || item.length === 0 || item.length > 100 || !Number.isInteger(quantity) || quantity < 1 || quantity > 100) {
    response.status(400).json({ error: 'invalid_request', error_description: 'send {"item": "<1-100 characters>", "quantity": 1-100}' });
    return;
  }
  if (orders.size >= MAX_ORDERS) {
    response.status(503).json({ error: 'temporarily_unavailable', error_description: 'the example keeps at most 10 000 orders' });
    return;
  }
  const order = { id: randomUUID(), userId: request.auth.userId, email: request.auth.email, item, quantity, placedAt: new Date().toISOString() };
  orders.set(order.id, order);
  response.status(201).json({ order });
});

// Only an admin cancels an order, anyone's.
app.delete('/orders/:id', verifier.express(requireRole('admin')), (request, response) => {
  if (!orders.delete(request.params.id)) {
    response.status(404).json({ error: 'not_found', error_description: 'no such order' });
    return;
  }
  response.status(204).end();
});

// Other services (client_credentials tokens), never users: what a reporting job would read.
app.get('/internal/stats', verifier.express(), requireClient(), (request, response) => {
  const items = [...orders.values()].reduce((sum, order) => sum + order.quantity, 0);
  response.json({ orders: orders.size, items, askedBy: request.auth.clientId });
});

app.use((_request, response) => {
  response.status(404).json({ error: 'not_found', error_description: 'no such route' });
});
// Malformed JSON and the like: a 4xx of Express's own, never a stack trace.
app.use((error, _request, response, _next) => {
  const status = error.status >= 400 && error.status < 500 ? error.status : 500;
  if (status === 500) console.error('orders-service: request failed', error);
  response.status(status).json({ error: status === 500 ? 'server_error' : 'invalid_request', error_description: status === 500 ? 'internal error' : 'malformed request' });
});

const server = app.listen(port, host, () => {
  console.log(`orders-service listening on http://${host}:${port}, trusting tokens of ${issuer} (revocation feed ${clientId && clientSecret ? 'on' : 'off'})`);
});
server.on('error', (error) => {
  console.error(`orders-service: ${error.message}`);
  process.exit(1);
});

function shutdown() {
  verifier.close();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
