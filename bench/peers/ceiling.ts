// The limit for Node on this machine: bare node:http, a fixed small JSON, no auth.
import { createServer } from 'node:http';
import { listenHost, listenPort, usersPage } from './users.ts';

const usersBody = Buffer.from(JSON.stringify(usersPage));
const okBody = Buffer.from('{"status":true}');

const server = createServer((request, response) => {
  const body = request.url === '/users' ? usersBody : request.url === '/healthz' ? okBody : undefined;
  if (request.method !== 'GET' || !body) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  response.end(body);
});

server.keepAliveTimeout = 65_000;
server.listen(listenPort(), listenHost);
// Nothing to flush: a peer holds no state.
process.on('SIGTERM', () => process.exit(0));
