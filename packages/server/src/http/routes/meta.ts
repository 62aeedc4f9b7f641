import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';
import { pingDatabase } from '../../storage/db.ts';
import { envelope, EnvelopeSchema } from '../envelope.ts';
import { PUBLIC_SECURITY } from '../schemas.ts';

/** A ping slower than this counts as down, whatever the connect timeout: probes expect a quick answer. */
const READY_TIMEOUT_MS = 2000;
/** { database: 'up' | 'down' } and each shared dependency, e.g. redis. */
const ReadinessSchema = Type.Object({ database: Type.String() }, { additionalProperties: Type.String() });

/** Liveness, readiness and the seed's greeting. */
export async function metaRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  app.get(
    '/',
    {
      schema: {
        operationId: 'greet',
        tags: ['health'],
        summary: "The seed's greeting, as text",
        security: PUBLIC_SECURITY,
        response: {
          200: { description: 'Always `flask rest connected`', content: { 'text/plain': { schema: Type.String({ examples: ['flask rest connected'] }) } } },
        },
      },
    },
    async (_request, reply) => reply.type('text/plain; charset=utf-8').send('flask rest connected'),
  );

  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'checkLiveness',
        tags: ['health'],
        summary: 'Liveness: the process answers',
        security: PUBLIC_SECURITY,
        response: {
          200: EnvelopeSchema(Type.Object({ status: Type.String() }), {}, {
            description: 'The process is alive',
            examples: [{ status: true, code: 200, message: 'ok', data: { status: 'ok' } }],
          }),
        },
      },
    },
    async () => envelope(200, 'ok', { status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'checkReadiness',
        tags: ['health'],
        summary: 'Readiness: the database answers (503 when not); shared dependencies such as Redis are reported, and being down only degrades',
        security: PUBLIC_SECURITY,
        response: {
          200: EnvelopeSchema(ReadinessSchema, {}, {
            description: 'Ready to serve',
            examples: [{ status: true, code: 200, message: 'ready', data: { database: 'up', redis: 'up' } }],
          }),
          503: EnvelopeSchema(ReadinessSchema, {}, {
            description: 'The database does not answer',
            examples: [{ status: false, code: 503, message: 'not ready', data: { database: 'down' } }],
          }),
        },
      },
    },
    async (_request, reply) => {
      const database = await withTimeout(pingDatabase(deps.db), READY_TIMEOUT_MS).then(
        () => 'up' as const,
        () => 'down' as const,
      );
      // Redis down is a documented degrade (per-process counters, database sync): still ready, with the detail.
      const data = { database, ...deps.shared.status() };
      if (database === 'up') return envelope(200, 'ready', data);
      return reply.code(503).send(envelope(503, 'not ready', data));
    },
  );
}

function withTimeout<T>(promise: Promise<T>, milliseconds: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), milliseconds);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
