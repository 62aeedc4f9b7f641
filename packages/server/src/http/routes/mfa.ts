import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';

/** TOTP second factor: enrolment, recovery codes, POST /login/mfa (issue 12). Being built. */
export async function mfaRoutes(_app: FastifyInstance, _deps: Deps): Promise<void> {}
