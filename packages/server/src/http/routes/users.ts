import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Deps } from '../../deps.ts';
import { AppError } from '../../errors.ts';
import { findUserById } from '../../storage/users.ts';
import { ADMIN_ROLE } from '../../users/admin.ts';
import { hasFilters, listOnlyUser, listUsers, mayListEveryone, searchUsersPage } from '../../users/list.ts';
import { toPublicUser } from '../../users/user.ts';
import { createAuthGuard } from '../auth-guard.ts';
import { envelope, EnvelopeSchema, ErrorResponse } from '../envelope.ts';
import { BEARER_SECURITY, EXAMPLE_USER, PublicUserSchema, UNAUTHENTICATED, UNAVAILABLE, UserListSchema, USERS_PAGE_DEFAULT, UsersQuery } from '../schemas.ts';

export async function userRoutes(rawApp: FastifyInstance, deps: Deps): Promise<void> {
  const app = rawApp.withTypeProvider<TypeBoxTypeProvider>();
  const authGuard = createAuthGuard(deps);

  app.get(
    '/users',
    {
      onRequest: authGuard,
      schema: {
        operationId: 'listUsers',
        tags: ['users'],
        summary: 'List users (seed shape, no envelope), by cursor: admins see everyone, others themselves (USERS_LIST=all: everyone sees all)',
        description:
          'An admin gets every field of each user (AdminUser) and may filter by email prefix, role and disabled; ' +
          'others get id and email only, and a filter answers 403.',
        security: BEARER_SECURITY,
        querystring: UsersQuery,
        response: {
          200: UserListSchema,
          400: ErrorResponse('Invalid limit, cursor or filter'),
          401: UNAUTHENTICATED,
          403: ErrorResponse('A filter (email, role, disabled) without the admin role'),
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const { userId, roles } = request.auth!;
      const { limit = USERS_PAGE_DEFAULT, cursor, email, role, disabled } = request.query;
      const filters = { email, role, disabled };
      // The seed's list keeps its shape and its fast path; the search and the full records are an admin's.
      if (roles.includes(ADMIN_ROLE)) return searchUsersPage(deps.db, filters, { limit, cursor });
      if (hasFilters(filters)) throw new AppError('admin_required', 'user search needs the admin role');
      if (mayListEveryone(deps.config.usersList, roles)) return listUsers(deps.db, { limit, cursor });
      return listOnlyUser(deps.db, userId, { cursor });
    },
  );

  app.get(
    '/me',
    {
      onRequest: authGuard,
      schema: {
        operationId: 'getMe',
        tags: ['users'],
        summary: 'The signed-in user',
        security: BEARER_SECURITY,
        response: {
          200: EnvelopeSchema(PublicUserSchema, {}, { description: 'The user', examples: [{ status: true, code: 200, message: 'success', data: EXAMPLE_USER }] }),
          401: UNAUTHENTICATED,
          503: UNAVAILABLE,
        },
      },
    },
    async (request) => {
      const user = await findUserById(deps.db, request.auth!.userId);
      if (!user) throw new AppError('token_invalid', 'token subject no longer exists');
      return envelope(200, 'success', toPublicUser(user));
    },
  );
}
