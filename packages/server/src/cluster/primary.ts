import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import { createDb, isDatabaseUnavailable } from '../storage/db.ts';
import { createRestartBackoff, DEFAULT_RESTART_BACKOFF, type RestartBackoff, type RestartBackoffOptions } from './backoff.ts';
import { createPrimaryLog, type PrimaryLog } from './primary-log.ts';
import { createMetricsAggregator } from '../metrics/cluster.ts';
import { startMetricsListener } from '../metrics/listener.ts';
import { createSharedStateHost } from './shared-state-host.ts';

export interface PrimaryOptions {
  backoff?: RestartBackoffOptions;
  /** How long the workers get to finish in-flight requests on SIGTERM/SIGINT before they are killed. */
  drainTimeoutMs?: number;
}

/** One place in the cluster: its worker of the moment and that place's restart schedule. */
interface Slot {
  index: number;
  backoff: RestartBackoff;
  worker: Worker | undefined;
  forkedAt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * The node:cluster primary: migrates the database once, forks config.workers workers that share
 * one port (the primary hands out connections round-robin), holds their shared counters and
 * lockouts, replaces a worker that dies (backing off so a crash loop does not spin), and on
 * SIGTERM/SIGINT drains every worker and exits 0 (1 if one would not stop in time).
 * It serves no requests itself.
 */
export async function runPrimary(config: Readonly<Config>, options: PrimaryOptions = {}): Promise<void> {
  const log = createPrimaryLog(config.logLevel);
  const drainTimeoutMs = options.drainTimeoutMs ?? 15_000;
  let stopping = false;
  let slots: Slot[] = [];

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining every worker');
    void drain(slots, log, drainTimeoutMs).then((clean) => process.exit(clean ? 0 : 1));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  log.info({ workers: config.workers }, `primary ${process.pid} starting ${config.workers} workers`);
  await migrateOnce(config, log, () => stopping);
  if (stopping) return;

  const host = createSharedStateHost();
  const metrics = createMetricsAggregator(() => slots.map((slot) => slot.worker).filter((worker): worker is Worker => worker !== undefined));
  slots = Array.from({ length: config.workers }, (_, index) => ({
    index,
    backoff: createRestartBackoff(options.backoff ?? DEFAULT_RESTART_BACKOFF),
    worker: undefined,
    forkedAt: 0,
    restartTimer: undefined,
  }));

  function fork(slot: Slot, replacing?: number): void {
    // WORKERS reaches each worker so it takes its share of the cores for hashing (HASH_POOL_SIZE's default).
    const worker = cluster.fork({ WORKERS: String(config.workers) });
    slot.worker = worker;
    slot.forkedAt = performance.now();
    host.attach(worker);
    worker.on('message', (message: unknown) => {
      host.handle(worker, message);
      metrics.handle(worker, message);
    });
    // A send to a worker that is exiting fails here rather than crash the primary.
    worker.on('error', (error: Error) => log.warn({ worker: { pid: worker.process.pid }, reason: error.message }, 'worker channel error'));
    worker.once('exit', (code, signal) => onExit(slot, worker, code, signal));
    const pid = worker.process.pid;
    log.info(
      { worker: { pid, slot: slot.index, ...(replacing ? { replacing } : {}) } },
      replacing ? `forked worker ${pid} to replace worker ${replacing}` : `forked worker ${pid}`,
    );
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    host.detach(worker);
    slot.worker = undefined;
    const pid = worker.process.pid;
    const fields = { worker: { pid, slot: slot.index, code, signal } };
    if (stopping) {
      log.info(fields, `worker ${pid} exited (code ${code}, signal ${signal})`);
      return;
    }
    const delayMs = slot.backoff.nextDelayMs(performance.now() - slot.forkedAt);
    log.warn({ ...fields, restartInMs: delayMs }, `worker ${pid} died (code ${code}, signal ${signal}); replacing it in ${delayMs} ms`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!stopping) fork(slot, pid);
    }, delayMs);
  }

  // METRICS_PORT: the primary serves it (before any fork, so a taken port fails the start at once), adding up every worker's metrics.
  if (config.metrics.port !== undefined) {
    const { host: metricsHost, port } = config.metrics;
    const scrape = async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: await metrics.collect() });
    const listener = await startMetricsListener({ host: metricsHost, port, token: config.metrics.token }, scrape, (error) => log.warn({ reason: error.message }, 'metrics listener error'));
    log.info({ metrics: { host: metricsHost, port: listener.port } }, `metrics on http://${metricsHost}:${listener.port}/metrics`);
  }
  for (const slot of slots) fork(slot);
}

/** Asks every worker to drain (each closes its server, finishes in-flight requests, closes the database). */
async function drain(slots: Slot[], log: PrimaryLog, drainTimeoutMs: number): Promise<boolean> {
  for (const slot of slots) clearTimeout(slot.restartTimer);
  const live = slots.map((slot) => slot.worker).filter((worker): worker is Worker => worker !== undefined && worker.process.exitCode === null && worker.process.signalCode === null);
  let clean = true;
  const exits = live.map(
    (worker) =>
      new Promise<void>((resolve) => {
        worker.once('exit', (code, signal) => {
          // A worker killed by SIGTERM before it installed its handler had nothing in flight.
          if (code !== 0 && signal !== 'SIGTERM') clean = false;
          resolve();
        });
        // SIGTERM rather than worker.disconnect(): the channel must stay open while requests finish,
        // for their counters and lockouts live in this process.
        worker.process.kill('SIGTERM');
      }),
  );
  const deadline = sleep(drainTimeoutMs, 'timeout' as const, { ref: false });
  const outcome = await Promise.race([Promise.all(exits).then(() => 'drained' as const), deadline]);
  if (outcome === 'timeout') {
    const stuck = live.filter((worker) => worker.process.exitCode === null && worker.process.signalCode === null);
    log.error({ workers: stuck.map((worker) => worker.process.pid), drainTimeoutMs }, `workers did not stop within ${drainTimeoutMs} ms; killing them`);
    for (const worker of stuck) worker.process.kill('SIGKILL');
    return false;
  }
  log.info({ clean }, clean ? 'every worker drained; exiting' : 'a worker failed to shut down cleanly');
  return clean;
}

/** Runs pending migrations before any worker starts, so workers never race to migrate. */
async function migrateOnce(config: Readonly<Config>, log: PrimaryLog, stopping: () => boolean): Promise<void> {
  // Unreachable at start: retry on the same schedule as a crashing worker, not in a tight loop.
  const backoff = createRestartBackoff({ ...DEFAULT_RESTART_BACKOFF, stableAfterMs: Number.POSITIVE_INFINITY });
  for (;;) {
    try {
      const database = await createDb(config.databaseUrl);
      try {
        const { createdDatabase } = await database.migrate();
        const { dialect, location } = database;
        log.info({ database: { dialect, location, created: createdDatabase } }, `database: ${dialect} at ${location}`);
        if (createdDatabase) log.warn({ database: { dialect, location } }, `created a new, empty database at ${location}`);
        return;
      } finally {
        await database.close();
      }
    } catch (error) {
      if (!isDatabaseUnavailable(error) || stopping()) throw error;
      const delayMs = backoff.nextDelayMs(0);
      log.warn({ reason: error instanceof Error ? error.message : String(error), retryInMs: delayMs }, `database unreachable at start; retrying in ${delayMs} ms`);
      await sleep(delayMs);
      if (stopping()) return;
    }
  }
}
