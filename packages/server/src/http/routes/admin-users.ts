import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Deps } from '../../deps.ts';
import { deleteUser, getUser, listSessions, revokeSession, revokeUserSessions, updateUser, type AdminCaller } from '../../users/admin-service.ts';
import { createAdminGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { requestContext } from '../request-context.ts';
import { AdminUserSchema, BEARER_SECURITY, EXAMPLE_ADMIN_USER, PRINTABLE, RoleName, UNAUTHENTICATED, UNAVAILABLE } from '../schemas.ts';

const UserIdParams = Type.Object(
  { id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The user id' }) },
  { additionalProperties: false },
);
const SessionIdParams = Type.Object(
  // Session ids are 16 random bytes, base64url; the bound keeps garbage out of the query.
  { sid: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'The session id (the sid claim)' }) },
  { additionalProperties: false },
);
const PatchUserBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: PRINTABLE })),
    email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
    roles: Type.Optional(Type.Array(RoleName, { maxItems: 64, uniqueItems: true, description: 'Replaces the roles; each must be in ROLES' })),
    disabled: Type.Optional(Type.Boolean({ description: 'true: refuse the account and end its sessions for good' })),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ roles: ['user', 'admin'] }, { disabled: true }] },
);
const SessionsQuery = Type.Object(
  { active: Type.Optional(Type.Boolean({ description: 'true: only live sessions; false: only revoked or expired ones' })) },
  { additionalProperties: false },
);
const AdminSessionSchema = Type.Object({
  id: Type.String(),
  client_id: Type.String(),
  audience: Type.Union([Type.String(), Type.Null()], { description: 'null: JWT_AUDIENCE' }),
  created_at: Type.String({ format: 'date-time' }),
  last_refreshed_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time' }),
  revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revoked_reason: Type.Union([Type.String(), Type.Null()]),
});

const FORBIDDEN = ErrorResponse('Signed in without the admin role: forbidden - admin role required');
const USER_NOT_FOUND = ErrorResponse('No user with this id: user not found');
const UserAnswer = (description: string, message: string) =>
  EnvelopeSchema(AdminUserSchema, {}, { description, examples: [{ status: true, code: 200, message, data: EXAMPLE_ADMIN_USER }] });
const Done = (description: string, message: string) =>
  EnvelopeSchema(Type.Null(), {}, { description, examples: [{ status: true, code: 200, message, data: null }] });

/** The audit log's actor for an API call: the signed-in admin, from where the request came. */
function caller(request: FastifyRequest): AdminCaller {
  return { actor: { type: 'user', id: String(request.auth!.userId) }, context: requestContext(request) };
}

/** Admin API for users and sessions: GET/PATCH/DELETE /users/:id, /users/:id/sessions, DELETE /sessions/:sid. */
export async function adminUserRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const adminGuard = createAdminGuard(deps);
  const common = { tags: ['admin'], security: BEARER_SECURITY };
  const refusals = { 401: UNAUTHENTICATED, 403: FORBIDDEN, 503: UNAVAILABLE };

  app.get(
    '/users/:id',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'getUser',
        summary: 'A user, as an admin sees it',
        params: UserIdParams,
        response: { 200: UserAnswer('The user', 'success'), 400: ErrorResponse('The id is not a positive integer'), ...refusals, 404: USER_NOT_FOUND },
      },
    },
    async (request) => envelope(200, 'success', await getUser(deps, request.params.id)),
  );

  app.patch(
    '/users/:id',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'updateUser',
        summary: "Change a user's name, email, roles or disabled state",
        description:
          'Disabling, taking a role away or changing the email revokes every session of the user (enabling again does not bring ' +
          'them back). The last enabled admin cannot lose the admin role or be disabled (409).',
        params: UserIdParams,
        body: PatchUserBody,
        response: {
          200: UserAnswer('The user as changed', 'user updated'),
          400: ErrorResponse('Unknown field, a role outside ROLES, a blank name, an invalid email, or an id that is not a positive integer'),
          ...refusals,
          404: USER_NOT_FOUND,
          409: ErrorResponse('The email belongs to another user, or the change would leave no enabled admin'),
        },
      },
    },
    async (request) => envelope(200, 'user updated', await updateUser(deps, caller(request), request.params.id, request.body)),
  );

  app.delete(
    '/users/:id',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'deleteUser',
        summary: 'Delete a user; its sessions end first',
        params: UserIdParams,
        response: {
          200: Done('The user is deleted', 'user deleted'),
          400: ErrorResponse('The id is not a positive integer'),
          ...refusals,
          404: USER_NOT_FOUND,
          409: ErrorResponse('The user is the last enabled admin'),
        },
      },
    },
    async (request) => {
      await deleteUser(deps, caller(request), request.params.id);
      return envelope(200, 'user deleted');
    },
  );

  app.get(
    '/users/:id/sessions',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'listUserSessions',
        summary: "A user's sessions, newest first (at most 500)",
        params: UserIdParams,
        querystring: SessionsQuery,
        response: {
          200: EnvelopeSchema(Type.Object({ sessions: Type.Array(AdminSessionSchema) }), {}, { description: 'The sessions' }),
          400: ErrorResponse('The id is not a positive integer, or active is not true or false'),
          ...refusals,
          404: USER_NOT_FOUND,
        },
      },
    },
    async (request) => envelope(200, 'success', { sessions: await listSessions(deps, request.params.id, { active: request.query.active }) }),
  );

  app.post(
    '/users/:id/sessions/revoke',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'revokeUserSessions',
        summary: 'End every session of a user (refresh tokens stop working, access tokens are refused)',
        params: UserIdParams,
        response: {
          200: EnvelopeSchema(Type.Object({ revoked: Type.Integer({ description: 'Sessions ended now' }) }), {}, {
            description: 'The sessions are ended',
            examples: [{ status: true, code: 200, message: 'sessions revoked', data: { revoked: 2 } }],
          }),
          400: ErrorResponse('The id is not a positive integer'),
          ...refusals,
          404: USER_NOT_FOUND,
        },
      },
    },
    async (request) => envelope(200, 'sessions revoked', { revoked: await revokeUserSessions(deps, caller(request), request.params.id) }),
  );

  app.delete(
    '/sessions/:sid',
    {
      onRequest: adminGuard,
      schema: {
        ...common,
        operationId: 'revokeSession',
        summary: 'End one session (an ended one stays as it was)',
        params: SessionIdParams,
        response: {
          200: Done('The session is ended', 'session revoked'),
          400: ErrorResponse('The session id is malformed'),
          ...refusals,
          404: ErrorResponse('No session with this id: session not found'),
        },
      },
    },
    async (request) => {
      await revokeSession(deps, caller(request), request.params.sid);
      return envelope(200, 'session revoked');
    },
  );
}
