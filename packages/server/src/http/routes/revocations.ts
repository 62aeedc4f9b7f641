import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { createClientRateLimiter } from '../../abuse/client-rate-limit.ts';
import { authenticateClient } from '../../clients/clients.ts';
import type { Deps } from '../../deps.ts';
import { createRevocationFeed } from '../../tokens/revocation-feed.ts';
import { envelope, EnvelopeSchema, ErrorEnvelopeSchema } from '../envelope.ts';
import { clientGoneSignal } from '../hashing.ts';
import { CLIENT_SECURITY } from '../schemas.ts';

/**
 * Requests per client and minute. An idle verifier sends two a minute (30 s long polls); one under
 * a storm of logouts at most five a second (one request at a time, 200 ms apart): this serves ten
 * busy instances sharing one client id, and stops a leaked secret from hammering snapshots.
 */
const MAX_WAIT_SECONDS = 30;

const RevocationsQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The cursor of the previous answer; absent: a snapshot' })),
    // Optional, not just defaulted: a default alone makes the OpenAPI document call it required.
    wait: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_WAIT_SECONDS,
        default: 0,
        description: 'Seconds to wait for a revocation when there is nothing new (long poll); 0 answers at once',
      }),
    ),
  },
  { additionalProperties: false },
);

const RevocationsData = Type.Object({
  cursor: Type.String({ description: 'Pass it as `since` in the next request' }),
  reset: Type.Boolean({ description: 'true: `revoked` is every session refused now (a snapshot) rather than what is new since `since`' }),
  revoked: Type.Array(
    Type.Object({
      sid: Type.String({ description: 'Session id: refuse access tokens whose `sid` claim is this' }),
      exp: Type.Integer({ description: 'Epoch seconds after which every access token of the session has expired: forget it then' }),
    }),
  ),
});

/** The revocation feed for resource servers (@gatehouse/verify follows it), for confidential clients. */
export async function revocationRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const feed = createRevocationFeed(deps);
  const feedLimiter = createClientRateLimiter({ store: deps.shared.counters, clock: deps.clock, scope: 'revocations', limitPerMinute: deps.config.limits.revocationFeedPerMinute });
  // preClose, before the server stops taking requests and waits for those in flight: a long poll
  // answers at once (with nothing new) instead of holding the shutdown up to 30 s.
  app.addHook('preClose', async () => feed.close());

  app.get(
    '/revocations',
    {
      schema: {
        operationId: 'listRevocations',
        tags: ['revocations'],
        summary: 'Sessions revoked since a cursor (long poll), for resource servers that verify tokens locally',
        description:
          'Authenticated as a confidential client (HTTP Basic, client_secret_basic). Without `since`, or with a cursor this ' +
          'instance cannot serve (another instance, a restart, too old), answers a snapshot of every session still refused ' +
          '(`reset: true`). With `wait`, a request with nothing new waits up to that many seconds for the next revocation.',
        security: CLIENT_SECURITY,
        querystring: RevocationsQuery,
        response: {
          200: EnvelopeSchema(RevocationsData),
          400: ErrorEnvelopeSchema,
          401: ErrorEnvelopeSchema,
          429: ErrorEnvelopeSchema,
          503: ErrorEnvelopeSchema,
        },
      },
    },
    async (request, reply) => {
      const client = await authenticateClient(deps, request.headers.authorization);
      await feedLimiter.consume(client.id);
      const signal = clientGoneSignal(reply);
      const answer = await feed.read(request.query.since, { waitMs: (request.query.wait ?? 0) * 1000, signal, waiter: client.id });
      reply.header('cache-control', 'no-store');
      return envelope(200, 'revocations', answer);
    },
  );
}
