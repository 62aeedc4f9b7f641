import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXPECTED_SECURITY_HEADERS } from './expected-headers.ts';
import { startTestApp, testDialects, type TestApp } from './helpers.ts';
import { portOf, rawRequest, type RawAnswer } from './raw-http.ts';

/** An error answer written on the raw socket: the envelope, JSON, the security headers. */
function expectRawErrorEnvelope(answer: RawAnswer, status: number, message: string): void {
  expect(answer.statusLine, answer.body).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(JSON.parse(answer.body)).toEqual({ status: false, code: status, message, data: null });
  for (const [name, value] of Object.entries(EXPECTED_SECURITY_HEADERS)) expect(answer.headers[name], name).toBe(value);
}

/** Node's default limit on the request line plus headers is 16 KiB. */
const OVERSIZED_HEADERS = Array.from({ length: 20 }, (_, index) => `x-filler-${index}: ${'a'.repeat(1000)}\r\n`).join('');

describe.each(testDialects())('requests the HTTP parser refuses [%s]', (dialect) => {
  let test: TestApp;
  let port: number;
  beforeEach(async () => {
    test = await startTestApp(dialect);
    await test.app.listen({ host: '127.0.0.1', port: 0 });
    port = portOf(test.app);
  });
  afterEach(() => test.close());

  it('answers 20 KB of headers with a 431 envelope and closes the connection', async () => {
    const answer = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${OVERSIZED_HEADERS}\r\n`);
    expectRawErrorEnvelope(answer, 431, 'request header fields too large');
    expect(answer.headers.connection).toBe('close');
    expect(answer.closed).toBe(true);
  });

  it.each([
    ['an invalid character in the method', 'G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n', 'invalid request - malformed request line'],
    ['a request line that is not HTTP', 'hello there\r\n\r\n', 'invalid request - malformed request line'],
    ['an unknown HTTP version', 'GET / HTTP/9.1\r\nHost: localhost\r\n\r\n', 'invalid request - malformed request line'],
    ['a space in a header name', 'GET / HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n', 'invalid request - malformed header'],
    ['a Content-Length that is not a number', 'POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: ten\r\n\r\n', 'invalid request - malformed Content-Length'],
    [
      'Content-Length beside Transfer-Encoding (request smuggling)',
      'POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'invalid request - malformed or conflicting Transfer-Encoding',
    ],
    ['a chunk size that is not hexadecimal', 'POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', 'invalid request - malformed chunked body'],
  ])('answers %s with a 400 envelope', async (_name, request, message) => {
    const answer = await rawRequest(port, request);
    expectRawErrorEnvelope(answer, 400, message);
    expect(answer.closed).toBe(true);
  });

  it('answers chunk extensions over 16 KiB with a 413 envelope', async () => {
    const extension = `;x=${'a'.repeat(20_000)}`;
    const answer = await rawRequest(
      port,
      `POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2${extension}\r\n{}\r\n0\r\n\r\n`,
    );
    expectRawErrorEnvelope(answer, 413, 'payload too large - chunk extensions too large');
    expect(answer.closed).toBe(true);
  });

  it('answers an HTTP/1.1 request without Host with a 400 envelope; HTTP/1.0 needs none', async () => {
    const missing = await rawRequest(port, 'GET /healthz HTTP/1.1\r\n\r\n');
    expect(missing.statusLine).toMatch(/^HTTP\/1\.1 400 /);
    expect(missing.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(missing.body)).toMatchObject({ status: false, code: 400, message: 'invalid request - Host header is required' });
    for (const [name, value] of Object.entries(EXPECTED_SECURITY_HEADERS)) expect(missing.headers[name], name).toBe(value);
    expect(missing.closed).toBe(true);

    const old = await rawRequest(port, 'GET / HTTP/1.0\r\n\r\n');
    expect(old.status).toBe(200);
    expect(old.body).toBe('flask rest connected');
  });

  it('answers an Expect it does not know with a 417 envelope', async () => {
    const answer = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\n\r\n');
    expectRawErrorEnvelope(answer, 417, 'expectation failed - only 100-continue is supported');
  });

  it('keeps serving after refused requests, and a well-formed request on the same server gets its answer', async () => {
    for (let round = 0; round < 5; round += 1) {
      await rawRequest(port, `GET / HTTP/1.1\r\nHost: localhost\r\n${OVERSIZED_HEADERS}\r\n`);
      await rawRequest(port, 'G@T / HTTP/1.1\r\n\r\n');
    }
    const healthy = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(healthy.status).toBe(200);
    expect(JSON.parse(healthy.body)).toMatchObject({ status: true, code: 200 });
  });
});
