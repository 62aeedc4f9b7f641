import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** Email verification, password reset and email change (issue 12). Being built. */
export async function emailRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
