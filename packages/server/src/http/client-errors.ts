import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';
import { envelope } from './envelope.ts';
import { SECURITY_HEADERS } from './security-headers.ts';

interface ClientErrorAnswer {
  status: number;
  message: string;
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them, by parser error code.
 * The messages name the rule broken, never the bytes received.
 */
const PARSER_ERRORS: Record<string, ClientErrorAnswer> = {
  HPE_HEADER_OVERFLOW: { status: 431, message: 'request header fields too large' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, message: 'payload too large - chunk extensions too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'request timeout' },
  HPE_INVALID_METHOD: { status: 400, message: 'invalid request - malformed request line' },
  HPE_INVALID_URL: { status: 400, message: 'invalid request - malformed request line' },
  HPE_INVALID_VERSION: { status: 400, message: 'invalid request - malformed request line' },
  HPE_INVALID_CONSTANT: { status: 400, message: 'invalid request - malformed request line' },
  HPE_INVALID_HEADER_TOKEN: { status: 400, message: 'invalid request - malformed header' },
  HPE_LF_EXPECTED: { status: 400, message: 'invalid request - malformed header' },
  HPE_CR_EXPECTED: { status: 400, message: 'invalid request - malformed header' },
  HPE_INVALID_CONTENT_LENGTH: { status: 400, message: 'invalid request - malformed Content-Length' },
  HPE_UNEXPECTED_CONTENT_LENGTH: { status: 400, message: 'invalid request - Content-Length together with Transfer-Encoding' },
  HPE_INVALID_TRANSFER_ENCODING: { status: 400, message: 'invalid request - malformed or conflicting Transfer-Encoding' },
  HPE_INVALID_CHUNK_SIZE: { status: 400, message: 'invalid request - malformed chunked body' },
};
const MALFORMED: ClientErrorAnswer = { status: 400, message: 'invalid request - malformed HTTP request' };
const EXPECTATION_FAILED: ClientErrorAnswer = { status: 417, message: 'expectation failed - only 100-continue is supported' };

const SECURITY_HEADER_LINES = Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('');

/** A complete HTTP/1.1 answer as bytes: the envelope, the security headers, and the connection closing. */
export function rawErrorAnswer({ status, message }: ClientErrorAnswer): string {
  const body = JSON.stringify(envelope(status, message));
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n' +
    SECURITY_HEADER_LINES +
    `\r\n${body}`
  );
}

/** The part of Node's socket state this handler reads: the answer in flight on the socket, if any. */
interface HttpSocket extends Socket {
  _httpMessage?: { headersSent?: boolean } | null;
}

/**
 * Fastify's clientErrorHandler: Node's and Fastify's own answers to a request the parser refuses
 * have their own shapes; this one answers with the envelope like every other error.
 */
export function createClientErrorHandler(log: () => FastifyBaseLogger) {
  return function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
    // A reset connection has no one to answer; nothing more to do.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const answer = (error.code && PARSER_ERRORS[error.code]) || MALFORMED;
    // The error carries the raw packet (headers, perhaps a token): log the code only.
    log().debug({ clientError: error.code ?? 'unknown', status: answer.status }, 'client error');
    // As Node does: answer unless a reply on this connection has already started (it would corrupt it).
    const inFlight = (socket as HttpSocket)._httpMessage;
    if (socket.writable && !inFlight?.headersSent) socket.write(rawErrorAnswer(answer));
    socket.destroy();
  };
}

/** Node answers an `Expect:` it does not know with an empty 417; answer with the envelope instead. */
export function answerUnknownExpectation(_request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify(envelope(EXPECTATION_FAILED.status, EXPECTATION_FAILED.message));
  response.writeHead(EXPECTATION_FAILED.status, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  response.end(body);
}

/**
 * HTTP/1.1 requires Host (RFC 9112 §3.2). Node would answer its absence with an empty 400 of its own,
 * so the server is built with requireHostHeader off and the rule is kept here, with the envelope.
 */
export function refuseMissingHost(request: FastifyRequest, reply: FastifyReply): AppError | undefined {
  if (request.headers.host !== undefined || request.raw.httpVersion !== '1.1') return undefined;
  reply.header('connection', 'close');
  return new AppError('invalid_input', 'no Host header', { fieldErrors: [{ field: 'host', message: 'Host header is required' }] });
}
