import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { listAuditPage, parseAuditTime } from '../../audit/list.ts';
import type { Deps } from '../../deps.ts';
import { createAdminGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { BEARER_SECURITY, UNAUTHENTICATED, UNAVAILABLE } from '../schemas.ts';

const AUDIT_PAGE_DEFAULT = 50;
const ACTOR_TYPES = ['user', 'client', 'operator', 'system', 'anonymous'] as const;
const SUBJECT_TYPES = ['user', 'session', 'client', 'key'] as const;
const literals = (values: readonly string[]) => values.map((value) => Type.Literal(value));

const AuditQuery = Type.Object(
  {
    action: Type.Optional(Type.String({ pattern: '^[a-z_]+\\.[a-z_]+$', maxLength: 64, description: 'e.g. user.login_failed' })),
    actor_type: Type.Optional(Type.Union(literals(ACTOR_TYPES))),
    actor_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    subject_type: Type.Optional(Type.Union(literals(SUBJECT_TYPES))),
    subject_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    user_id: Type.Optional(Type.Integer({ minimum: 1, description: 'Events whose actor or subject is this user' })),
    outcome: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('failure')])),
    since: Type.Optional(Type.String({ maxLength: 40, description: 'ISO 8601, inclusive' })),
    until: Type.Optional(Type.String({ maxLength: 40, description: 'ISO 8601, exclusive' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: AUDIT_PAGE_DEFAULT, description: 'Page size' })),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const AuditEventSchema = Type.Object({
  id: Type.Integer(),
  occurred_at: Type.String({ format: 'date-time' }),
  action: Type.String(),
  outcome: Type.Union([Type.Literal('success'), Type.Literal('failure')]),
  reason: Nullable(Type.String({ description: 'Why a failure failed (unknown_email, wrong_password, locked, disabled…): never told to the client that failed' })),
  actor: Type.Object({ type: Type.Union(literals(ACTOR_TYPES)), id: Nullable(Type.String()) }),
  subject: Nullable(Type.Object({ type: Type.Union(literals(SUBJECT_TYPES)), id: Type.String() })),
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  request_id: Nullable(Type.String()),
  details: Nullable(Type.Object({}, { additionalProperties: true })),
});

const EXAMPLE_EVENT = {
  id: 42,
  occurred_at: '2026-06-01T12:00:00.000Z',
  action: 'user.login_failed',
  outcome: 'failure',
  reason: 'wrong_password',
  actor: { type: 'anonymous', id: null },
  subject: { type: 'user', id: '7' },
  ip: '203.0.113.9',
  user_agent: 'Mozilla/5.0',
  request_id: 'req-1f',
  details: { email: 'ada@example.com', client_id: 'gatehouse' },
};

/** GET /audit (admin): the audit log, newest first, filtered, by cursor. */
export async function auditRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const adminGuard = createAdminGuard(deps);

  app.get(
    '/audit',
    {
      onRequest: adminGuard,
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Audit events, newest first: filter by action, actor, subject, user (as actor or subject), outcome and time; page by cursor',
        security: BEARER_SECURITY,
        querystring: AuditQuery,
        response: {
          200: EnvelopeSchema(Type.Object({ events: Type.Array(AuditEventSchema), next_cursor: Nullable(Type.String({ description: 'Pass as ?cursor= for older events; null on the last page' })) }), {}, {
            description: 'A page of audit events',
            examples: [{ status: true, code: 200, message: 'success', data: { events: [EXAMPLE_EVENT], next_cursor: null } }],
          }),
          400: ErrorResponse('Invalid filter, time or cursor'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('forbidden - admin role required'),
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const query = request.query;
      const page = await listAuditPage(
        deps.db,
        {
          action: query.action,
          actorType: query.actor_type,
          actorId: query.actor_id,
          subjectType: query.subject_type,
          subjectId: query.subject_id,
          userId: query.user_id === undefined ? undefined : String(query.user_id),
          outcome: query.outcome,
          sinceMs: query.since === undefined ? undefined : parseAuditTime(query.since, 'since'),
          untilMs: query.until === undefined ? undefined : parseAuditTime(query.until, 'until'),
        },
        { limit: query.limit ?? AUDIT_PAGE_DEFAULT, cursor: query.cursor },
      );
      return envelope(200, 'success', page);
    },
  );
}
