import type { Kysely } from 'kysely';
import type { Clock } from '../clock.ts';
import { findUserByNormalizedEmail } from '../storage/users.ts';
import type { Database } from '../storage/schema.ts';
import { normalizeEmail, parseRoles } from './user.ts';

export const ADMIN_ROLE = 'admin';

/**
 * ADMIN_EMAIL at start: the existing user with that email gets the admin role (idempotent; every
 * worker and instance may run it). The user must sign up first: an environment variable never
 * creates an account or carries a password.
 */
export async function promoteAdmin(deps: { db: Kysely<Database>; clock: Clock }, email: string): Promise<'promoted' | 'already_admin' | 'no_such_user'> {
  const user = await findUserByNormalizedEmail(deps.db, normalizeEmail(email));
  if (!user) return 'no_such_user';
  const roles = parseRoles(user.roles);
  if (roles.includes(ADMIN_ROLE)) return 'already_admin';
  await deps.db
    .updateTable('users')
    .set({ roles: JSON.stringify([...roles, ADMIN_ROLE]), updated_at: deps.clock.nowSeconds() })
    .where('id', '=', user.id)
    .execute();
  return 'promoted';
}
