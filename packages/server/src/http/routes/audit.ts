import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** GET /audit (admin). Being built. */
export async function auditRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
