import type { FastifyInstance } from 'fastify';
import type { Deps } from '../deps.ts';

/** Prometheus metrics: the HTTP hooks and GET /metrics. Being built. */
export async function registerMetrics(_app: FastifyInstance, _deps: Deps): Promise<void> {}
