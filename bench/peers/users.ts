import { createHash, timingSafeEqual } from 'node:crypto';

/** The five users every target serves; Gatehouse gets them through POST /signup. */
export interface BenchUser {
  id: number;
  name: string;
  email: string;
  password: string;
}

// Long passphrases so they pass Gatehouse's policy (no runs, rows or repeats).
export const benchUsers: readonly BenchUser[] = Object.freeze([
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', password: 'analytical engine notes, 1843' },
  { id: 2, name: 'Grace Hopper', email: 'grace@example.com', password: 'a moth found in relay seventy' },
  { id: 3, name: 'Alan Turing', email: 'alan@example.com', password: 'imitation game at bletchley' },
  { id: 4, name: 'Edsger Dijkstra', email: 'edsger@example.com', password: 'goto considered harmful letter' },
  { id: 5, name: 'Barbara Liskov', email: 'barbara@example.com', password: 'substitution principle of types' },
]);

/** The body of GET /users on every target: Gatehouse's shape for a single page. */
export const usersPage = Object.freeze({
  users: benchUsers.map((user) => ({ id: user.id, email: user.email })),
  next_cursor: null,
});

export const accessTokenTtlSeconds = 900;

const passwordDigests = new Map(benchUsers.map((user) => [user.email, sha256(user.password)]));

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Peers check passwords cheaply: only Gatehouse's login is measured (scenario b),
 * peers log in once per run to get a token.
 */
export function findUserByCredentials(email: unknown, password: unknown): BenchUser | undefined {
  if (typeof email !== 'string' || typeof password !== 'string') return undefined;
  const expected = passwordDigests.get(email.toLowerCase());
  if (!expected || !timingSafeEqual(expected, sha256(password))) return undefined;
  return benchUsers.find((user) => user.email === email.toLowerCase());
}

/** `Authorization: Bearer <token>` or the seed's `x-access-token`. */
export function tokenFromHeaders(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string' && authorization.startsWith('Bearer ')) return authorization.slice(7);
  const accessToken = headers['x-access-token'];
  return typeof accessToken === 'string' && accessToken.length > 0 ? accessToken : undefined;
}

export const unauthorizedBody = Object.freeze({ status: false, code: 401, message: 'auth failed - token is invalid', data: null });
export const loginFailedBody = Object.freeze({ status: false, code: 403, message: 'verification failed - incorrect user email or password', data: null });

export function listenPort(): number {
  const port = Number(process.env.PORT ?? '0');
  if (!Number.isInteger(port) || port <= 0) throw new Error('set PORT to the port to listen on');
  return port;
}

export const listenHost = '127.0.0.1';
