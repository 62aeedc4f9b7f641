import cluster from 'node:cluster';
import type { FastifyBaseLogger } from 'fastify';
import { runPrimary } from './cluster/primary.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startBackgroundTasks } from './background/tasks.ts';
import { createDeps } from './deps.ts';
import { buildApp } from './http/app.ts';
import { KEY_RELOAD_INTERVAL_SECONDS } from './keys/rotation.ts';
import { startMetricsListener, type MetricsListener } from './metrics/listener.ts';

/**
 * loadConfig, then either one serving process (WORKERS=1, and each cluster worker) or, with
 * WORKERS > 1, the node:cluster primary that forks the workers (src/cluster/primary.ts).
 */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`gatehouse: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (cluster.isPrimary && config.workers > 1) return runPrimary(config);
  return serve(config);
}

/** createDeps → buildApp → listen; SIGTERM/SIGINT drain in-flight requests and close the database. */
async function serve(config: Readonly<Config>): Promise<void> {
  // The logger exists once the app does; a connection lost before that goes to stderr.
  let log: FastifyBaseLogger | undefined;
  const deps = await createDeps(config, {
    onDatabaseConnectionLost: (error) => {
      const fields = { code: error.code, reason: error.message };
      if (log) log.warn(fields, 'database connection lost; the pool reconnects on demand');
      else process.stderr.write(`gatehouse: database connection lost: ${error.message}\n`);
    },
    sharedStateLog: (level, fields, message) => {
      if (log) log[level](fields, message);
      else process.stderr.write(`gatehouse: ${level}: ${message}\n`);
    },
  });
  const app = await buildApp(deps);
  log = app.log;
  const { dialect, location, created } = deps.databaseInfo;
  // In a cluster the primary migrated the database and has said where it is, once for all workers.
  if (!cluster.isWorker) {
    app.log.info({ database: { dialect, location, created } }, `database: ${dialect} at ${location}`);
    if (deps.adminPromotion?.outcome === 'promoted') app.log.info('ADMIN_EMAIL: that user now has the admin role');
    if (deps.adminPromotion?.outcome === 'no_such_user') app.log.warn('ADMIN_EMAIL names no user yet: sign up with that email, then restart (or use gatehouse users create --admin)');
    // Warn level, so a mistyped path that silently starts an empty service shows at LOG_LEVEL=warn too.
    if (created) app.log.warn({ database: { dialect, location } }, `created a new, empty database at ${location}`);
  }
  const backgroundTasks = startBackgroundTasks(
    { ...deps, accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds },
    { syncIntervalMs: config.revocationSyncIntervalMs, keyReloadIntervalMs: KEY_RELOAD_INTERVAL_SECONDS * 1000, purgeIntervalMs: 10 * 60_000, onError: (error) => app.log.error({ err: error }, 'background task failed') },
  );
  let metricsListener: MetricsListener | undefined;
  let closing = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    try {
      backgroundTasks.stop();
      await metricsListener?.close();
      await app.close();
      await deps.close();
      process.exit(0);
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  await app.listen({ host: config.host, port: config.port });
  // In a cluster the primary serves METRICS_PORT, for every worker at once (cluster/primary.ts).
  if (config.metrics.port !== undefined && !cluster.isWorker && app.metrics) {
    const { host, port, token } = config.metrics;
    metricsListener = await startMetricsListener({ host, port, token }, app.metrics.scrape, (error) => app.log.warn({ reason: error.message }, 'metrics listener error'));
    app.log.info({ metrics: { host, port: metricsListener.port } }, `metrics on http://${host}:${metricsListener.port}/metrics`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`gatehouse: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
