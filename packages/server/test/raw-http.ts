import net from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface RawAnswer {
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection after answering. */
  closed: boolean;
}

/** The port of a listening app; `app.listen({ port: 0 })` first. */
export function portOf(app: FastifyInstance): number {
  return (app.server.address() as net.AddressInfo).port;
}

/**
 * Writes `request` byte for byte on a fresh TCP connection and reads one HTTP answer, as a client
 * whose request Node's parser may refuse before Fastify sees it. Resolves once the body announced
 * by content-length has arrived (or the server closed the connection).
 */
export function rawRequest(port: number, request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let received = Buffer.alloc(0);
    let answer: RawAnswer | undefined;
    const finish = (closed: boolean) => {
      const parsed = answer ?? parse(received);
      if (!parsed) return reject(new Error(`no complete HTTP answer: ${JSON.stringify(received.toString('latin1'))}`));
      socket.destroy();
      resolve({ ...parsed, closed });
    };
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      answer = parse(received);
      // A keep-alive answer is complete once its body is in; a closing one ends with the connection.
      if (answer && answer.headers.connection !== 'close') finish(false);
    });
    // A reset after the answer arrived still leaves the answer readable.
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    // An answer that never completes (no content-length, connection left open) fails fast instead of hanging.
    socket.setTimeout(5_000, () => {
      socket.destroy();
      reject(new Error(`no complete HTTP answer within 5 s: ${JSON.stringify(received.toString('latin1').slice(0, 500))}`));
    });
  });
}

function parse(received: Buffer): RawAnswer | undefined {
  const text = received.toString('utf8');
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1) return undefined;
  const [statusLine = '', ...headerLines] = text.slice(0, headEnd).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = text.slice(headEnd + 4);
  const length = Number(headers['content-length']);
  if (!Number.isFinite(length) || Buffer.byteLength(body) < length) return undefined;
  return { statusLine, status: Number(statusLine.split(' ')[1]), headers, body, closed: false };
}
