import type { FastifyInstance } from 'fastify';
import { refuseMissingHost } from './client-errors.ts';
import { refuseAccessTokenInQuery } from './url-secrets.ts';

/** Refusals every route shares, in one onRequest hook: each hook costs a little on every request. */
export function registerRequestChecks(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    done(refuseMissingHost(request, reply) ?? refuseAccessTokenInQuery(request, reply));
  });
}
