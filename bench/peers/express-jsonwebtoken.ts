// What most Node teams hand-roll: Express 5 + jsonwebtoken, HS256 verified on every request.
import { randomBytes } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import jwt from 'jsonwebtoken';
import { accessTokenTtlSeconds, findUserByCredentials, listenHost, listenPort, loginFailedBody, tokenFromHeaders, unauthorizedBody, usersPage } from './users.ts';

// A string secret, as such apps read it from the environment. With one, jsonwebtoken 9 first tries
// createPublicKey() on every verify and only then makes a secret key: that, not HMAC, is most of its cost.
const secret = randomBytes(32).toString('base64url');
const app = express();
app.disable('x-powered-by');
app.use(express.json());

app.get('/healthz', (_request: Request, response: Response) => {
  response.json({ status: true });
});

app.post('/login', (request: Request, response: Response) => {
  const body = (request.body ?? {}) as { email?: unknown; password?: unknown };
  const user = findUserByCredentials(body.email, body.password);
  if (!user) {
    response.status(403).json(loginFailedBody);
    return;
  }
  const token = jwt.sign({ sub: String(user.id), email: user.email }, secret, { algorithm: 'HS256', expiresIn: accessTokenTtlSeconds });
  response.status(201).json({ status: true, code: 201, token, token_type: 'Bearer', expires_in: accessTokenTtlSeconds });
});

function requireToken(request: Request, response: Response, next: NextFunction): void {
  const token = tokenFromHeaders(request.headers);
  try {
    if (!token) throw new Error('token is missing');
    response.locals.claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
  } catch {
    response.status(401).json(unauthorizedBody);
    return;
  }
  next();
}

app.get('/users', requireToken, (_request: Request, response: Response) => {
  response.json(usersPage);
});

const server = app.listen(listenPort(), listenHost);
// Nothing to flush: a peer holds no state.
process.on('SIGTERM', () => process.exit(0));
