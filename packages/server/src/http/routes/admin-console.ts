import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** The admin console's static files at /admin, with a strict CSP. Being built. */
export async function adminConsoleRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
