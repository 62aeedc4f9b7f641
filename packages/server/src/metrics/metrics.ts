import { presentsMetricsToken } from './listener.ts';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';
import { envelope, ErrorEnvelopeSchema } from '../http/envelope.ts';
import { UNAUTHENTICATED } from '../http/schemas.ts';
import { isClusterWorker } from '../shared/cluster-ipc.ts';
import { linkWorkerMetrics } from './cluster.ts';
import { createGatehouseMetrics } from './collectors.ts';
import type { ScrapeMetrics } from './listener.ts';

/** This app's metrics: main.ts serves `scrape` on METRICS_PORT. */
export interface AppMetrics {
  registry: Registry;
  /** Prometheus text: this process's, or in a cluster worker the whole cluster's (from the primary). */
  scrape: ScrapeMetrics;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when metrics are off (neither METRICS_TOKEN nor METRICS_PORT): then no hook runs at all. */
    metrics: AppMetrics | null;
  }
}

/** The route label of answers no route matched (404s, malformed URLs): one series, whatever the path. */
const UNMATCHED_ROUTE = 'unmatched';

/**
 * Prometheus metrics: a registry of this app's own, the onResponse hook that times every answer by
 * route template and status, and app.metrics for main.ts. Registered before the routes, so the hook
 * sees every one of them. With metrics off nothing is registered: the API pays nothing.
 */
export async function registerMetrics(app: FastifyInstance, deps: Deps): Promise<void> {
  const { token, port } = deps.config.metrics;
  if (token === undefined && port === undefined) {
    app.decorate('metrics', null);
    return;
  }
  const metrics = createGatehouseMetrics(deps);
  // In a cluster worker a scrape is answered for the whole cluster: the primary gathers every worker's registry.
  const link = isClusterWorker() ? linkWorkerMetrics(metrics.registry) : undefined;
  const { registry } = metrics;
  app.decorate('metrics', {
    registry,
    scrape: async () => ({ contentType: registry.contentType, body: link ? await link.clusterMetrics() : await registry.metrics() }),
  } satisfies AppMetrics);

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
    metrics.observeResponse(request.method, route, reply.statusCode, reply.elapsedTime);
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    metrics.stop();
    link?.stop();
    done();
  });
}

/**
 * GET /metrics on the API's port: with METRICS_TOKEN, for `Authorization: Bearer <token>` only; with
 * METRICS_PORT, or with neither, 404 as for any unknown path (METRICS_PORT serves it on its own listener).
 * Registered with the routes (not in registerMetrics) so the OpenAPI document lists it.
 */
export async function metricsRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  const { token, port } = deps.config.metrics;
  const servedHere = token !== undefined && port === undefined;

  async function checkScraper(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!servedHere || token === undefined) {
      await reply.code(404).send(envelope(404, 'not found'));
      return;
    }
    const authorization = request.headers.authorization;
    if (typeof authorization !== 'string' || authorization.trim() === '') throw new AppError('token_missing', 'no metrics token');
    if (!presentsMetricsToken(authorization, token)) throw new AppError('token_invalid', 'wrong metrics token');
  }

  app.get(
    '/metrics',
    {
      onRequest: checkScraper,
      schema: {
        operationId: 'getMetrics',
        tags: ['health'],
        summary: 'Prometheus metrics (text exposition format), with METRICS_TOKEN as a bearer token; 404 when METRICS_TOKEN is unset or METRICS_PORT serves them',
        security: [{ metricsToken: [] }],
        response: {
          200: {
            description: 'Metrics in the Prometheus text format (version 0.0.4); with WORKERS > 1, the whole cluster',
            content: { 'text/plain': { schema: Type.String() } },
          },
          401: UNAUTHENTICATED,
          404: ErrorEnvelopeSchema,
          503: ErrorEnvelopeSchema,
        },
      },
    },
    async (request, reply) => {
      try {
        const { contentType, body } = await app.metrics!.scrape();
        return reply.type(contentType).header('cache-control', 'no-store').send(body);
      } catch (error) {
        request.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'metrics could not be collected');
        throw new AppError('unavailable', 'metrics unavailable', { retryAfterSeconds: 5 });
      }
    },
  );
}
