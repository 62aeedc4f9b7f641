import { bearerChallenge, errorBody, VerifyError } from './errors.ts';

/** The headers of a Node, Express or Fastify request. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The access token of a request: `Authorization: Bearer` (RFC 6750 section 2.1), or Gatehouse's
 * `x-access-token` header from the Flask tutorial's clients. Both may be sent if they agree.
 * An Authorization header of another scheme counts as no token (section 3.1: no error code then).
 */
export function tokenFromHeaders(headers: RequestHeaders): string {
  const authorization = headers.authorization;
  const seedHeader = headers['x-access-token'];
  let fromAuthorization: string | undefined;
  if (typeof authorization === 'string' && /^bearer(\s|$)/i.test(authorization)) {
    const match = BEARER.exec(authorization);
    if (!match) throw new VerifyError('invalid_request', 'malformed bearer authorization header');
    fromAuthorization = match[1];
  }
  if (Array.isArray(seedHeader)) throw new VerifyError('invalid_request', 'several x-access-token headers');
  const fromSeedHeader = seedHeader?.trim() || undefined;
  if (fromAuthorization !== undefined && fromSeedHeader !== undefined && fromAuthorization !== fromSeedHeader) {
    throw new VerifyError('invalid_request', 'the request carries two different tokens');
  }
  const token = fromAuthorization ?? fromSeedHeader;
  if (token === undefined) throw new VerifyError('token_missing', 'no bearer token');
  return token;
}

/** A Node response (node:http, Express): what answering a refusal needs. */
export interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

/** A Fastify reply: what answering a refusal needs. */
export interface FastifyReplyLike {
  code(status: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(body: unknown): unknown;
}

function headersFor(error: VerifyError, realm: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (error.status === 401 || error.status === 403 || error.status === 400) headers['www-authenticate'] = bearerChallenge(error, realm);
  // The issuer's keys are usually back within seconds (a restart, a network blip).
  if (error.status === 503) headers['retry-after'] = '5';
  return headers;
}

/** Answers a refusal on a Node or Express response: status, RFC 6750 challenge, an OAuth-style JSON body. */
export function answerNode(response: NodeResponseLike, error: VerifyError, realm: string | undefined): void {
  response.statusCode = error.status;
  for (const [name, value] of Object.entries(headersFor(error, realm))) response.setHeader(name, value);
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.end(JSON.stringify(errorBody(error)));
}

export function answerFastify(reply: FastifyReplyLike, error: VerifyError, realm: string | undefined): void {
  let answer = reply.code(error.status);
  for (const [name, value] of Object.entries(headersFor(error, realm))) answer = answer.header(name, value);
  answer.send(errorBody(error));
}

export function isFastifyReply(response: unknown): response is FastifyReplyLike {
  const candidate = response as Partial<FastifyReplyLike> & { raw?: unknown };
  return typeof candidate.code === 'function' && typeof candidate.send === 'function' && candidate.raw !== undefined;
}
