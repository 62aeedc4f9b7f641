import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** Admin API for users and sessions: GET/PATCH/DELETE /users/:id, /users/:id/sessions, DELETE /sessions/:sid. Being built. */
export async function adminUserRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
