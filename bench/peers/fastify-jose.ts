// The naive version of Gatehouse's own stack: Fastify 5 + jose, EdDSA verified with jwtVerify on every request.
import Fastify from 'fastify';
import { SignJWT, generateKeyPair, jwtVerify } from 'jose';
import { accessTokenTtlSeconds, findUserByCredentials, listenHost, listenPort, loginFailedBody, tokenFromHeaders, unauthorizedBody, usersPage } from './users.ts';

const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
const app = Fastify({ logger: false });

app.get('/healthz', async () => ({ status: true }));

app.post('/login', async (request, reply) => {
  const body = (request.body ?? {}) as { email?: unknown; password?: unknown };
  const user = findUserByCredentials(body.email, body.password);
  if (!user) return reply.code(403).send(loginFailedBody);
  const token = await new SignJWT({ email: user.email })
    .setProtectedHeader({ alg: 'EdDSA' })
    .setSubject(String(user.id))
    .setIssuedAt()
    .setExpirationTime(`${accessTokenTtlSeconds}s`)
    .sign(privateKey);
  return reply.code(201).send({ status: true, code: 201, token, token_type: 'Bearer', expires_in: accessTokenTtlSeconds });
});

app.get('/users', async (request, reply) => {
  const token = tokenFromHeaders(request.headers);
  try {
    if (!token) throw new Error('token is missing');
    await jwtVerify(token, publicKey, { algorithms: ['EdDSA'] });
  } catch {
    return reply.code(401).send(unauthorizedBody);
  }
  return usersPage;
});

await app.listen({ port: listenPort(), host: listenHost });
// Nothing to flush: a peer holds no state.
process.on('SIGTERM', () => process.exit(0));
