import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** Admin API for signing keys (GET /keys, POST /keys/rotate) and clients (GET /clients, PATCH /clients/:id). Being built. */
export async function adminKeysClientsRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
