import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** Passkeys (WebAuthn): registration, list, delete, sign-in (issue 12). Being built. */
export async function passkeyRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
