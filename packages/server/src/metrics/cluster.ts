import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/**
 * With WORKERS > 1 each worker counts what it served; a scrape must see the whole service. The
 * primary asks every live worker for its registry (as JSON, over the cluster channel), adds them up
 * with prom-client's AggregatorRegistry (counters and histograms summed, gauges by each metric's
 * aggregator), and answers: on METRICS_PORT itself, or to the worker that took a scrape on the
 * public port. A worker that does not answer in time (starting, dying) is left out, and
 * gatehouse_cluster_workers_reporting says so, rather than failing the scrape.
 * (prom-client's own clusterMetrics() waits for every worker and gives up on all after 5 s.)
 */

/** Marks our messages apart from anything else on the channel (shared state uses gatehouse:shared). */
export const METRICS_IPC_TAG = 'gatehouse:metrics';

type Metrics = Array<MetricObjectWithValues<MetricValue<string>>>;

type WorkerToPrimary = { tag: typeof METRICS_IPC_TAG; kind: 'metrics'; id: number; metrics: Metrics } | { tag: typeof METRICS_IPC_TAG; kind: 'aggregate'; id: number };
type PrimaryToWorker =
  | { tag: typeof METRICS_IPC_TAG; kind: 'collect'; id: number }
  | { tag: typeof METRICS_IPC_TAG; kind: 'aggregated'; id: number; text?: string; error?: string };

function isMetricsMessage(message: unknown): message is { tag: typeof METRICS_IPC_TAG; kind: string; id: number } {
  return typeof message === 'object' && message !== null && (message as { tag?: unknown }).tag === METRICS_IPC_TAG && typeof (message as { id?: unknown }).id === 'number';
}

/** How long the primary waits for the workers' registries. */
const COLLECT_TIMEOUT_MS = 2_000;
/** Scrapes in flight at once; more are refused (a scraper that retries in a loop cannot pile them up). */
const MAX_PENDING = 16;

/** A worker as the primary sees it: node:cluster's Worker has this shape. */
export interface MetricsWorkerChannel {
  isConnected(): boolean;
  send(message: PrimaryToWorker, callback: (error: Error | null) => void): boolean;
}

export interface MetricsAggregator {
  /** Handles one message a worker sent; ignores anything that is not ours. */
  handle(from: MetricsWorkerChannel, message: unknown): void;
  /** The whole cluster's metrics in Prometheus text. */
  collect(): Promise<string>;
}

const ignoreSendError = () => {};

function send(worker: MetricsWorkerChannel, message: PrimaryToWorker): void {
  if (!worker.isConnected()) return;
  try {
    worker.send(message, ignoreSendError);
  } catch {
    // The channel closed between the check and the send: that worker is left out.
  }
}

/** The primary's side: `workers()` lists the workers alive now. */
export function createMetricsAggregator(workers: () => MetricsWorkerChannel[], timeoutMs = COLLECT_TIMEOUT_MS): MetricsAggregator {
  const collections = new Map<number, { waiting: Set<MetricsWorkerChannel>; answers: Metrics[]; finish: () => void }>();
  let nextId = 1;

  function collect(): Promise<string> {
    if (collections.size >= MAX_PENDING) return Promise.reject(new Error('too many metrics scrapes in flight'));
    const id = nextId++;
    const live = workers().filter((worker) => worker.isConnected());
    return new Promise<string>((resolve, reject) => {
      const finish = () => {
        if (!collections.delete(id)) return;
        clearTimeout(timer);
        try {
          const registry = AggregatorRegistry.aggregate(answers);
          const registers = [registry];
          new Gauge({ name: 'gatehouse_cluster_workers', help: 'Workers alive when the metrics were collected', registers }).set(live.length);
          new Gauge({ name: 'gatehouse_cluster_workers_reporting', help: 'Workers whose metrics are in this answer (the others did not answer in time)', registers }).set(answers.length);
          resolve(registry.metrics());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      };
      const answers: Metrics[] = [];
      const timer = setTimeout(finish, timeoutMs);
      collections.set(id, { waiting: new Set(live), answers, finish });
      for (const worker of live) send(worker, { tag: METRICS_IPC_TAG, kind: 'collect', id });
      if (live.length === 0) finish();
    });
  }

  return {
    collect,
    handle(from, message) {
      if (!isMetricsMessage(message)) return;
      const request = message as WorkerToPrimary;
      if (request.kind === 'aggregate') {
        collect().then(
          (text) => send(from, { tag: METRICS_IPC_TAG, kind: 'aggregated', id: request.id, text }),
          (error: unknown) => send(from, { tag: METRICS_IPC_TAG, kind: 'aggregated', id: request.id, error: error instanceof Error ? error.message : 'failed' }),
        );
        return;
      }
      if (request.kind !== 'metrics') return;
      const collection = collections.get(request.id);
      // Late (the scrape was answered without it), or a worker answering twice: ignored.
      if (!collection || !collection.waiting.delete(from) || !Array.isArray(request.metrics)) return;
      collection.answers.push(request.metrics);
      if (collection.waiting.size === 0) collection.finish();
    },
  };
}

/** The channel to the primary: `process` in a worker. */
export interface MetricsPrimaryChannel {
  readonly connected: boolean;
  send(message: WorkerToPrimary, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface WorkerMetricsLink {
  /** The whole cluster's metrics, from the primary. */
  clusterMetrics(): Promise<string>;
  stop(): void;
}

/** A worker's side: answers the primary's collect with this registry, and asks it for the cluster's. */
export function linkWorkerMetrics(registry: Registry, channel: MetricsPrimaryChannel = process as unknown as MetricsPrimaryChannel, timeoutMs = COLLECT_TIMEOUT_MS * 2): WorkerMetricsLink {
  const pending = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;

  const onMessage = (message: unknown) => {
    if (!isMetricsMessage(message)) return;
    const request = message as PrimaryToWorker;
    if (request.kind === 'collect') {
      void registry.getMetricsAsJSON().then((metrics) => {
        if (!channel.connected) return;
        try {
          channel.send({ tag: METRICS_IPC_TAG, kind: 'metrics', id: request.id, metrics }, ignoreSendError);
        } catch {
          // The primary is going away; its scrape goes on without this worker.
        }
      });
      return;
    }
    if (request.kind !== 'aggregated') return;
    const waiter = pending.get(request.id);
    if (!waiter) return;
    pending.delete(request.id);
    clearTimeout(waiter.timer);
    if (typeof request.text === 'string') waiter.resolve(request.text);
    else waiter.reject(new Error(request.error ?? 'no metrics'));
  };
  channel.on('message', onMessage);

  return {
    clusterMetrics() {
      if (!channel.connected) return Promise.reject(new Error('the cluster primary is not connected'));
      if (pending.size >= MAX_PENDING) return Promise.reject(new Error('too many metrics scrapes in flight'));
      const id = nextId++;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('the cluster primary did not answer'));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        try {
          channel.send({ tag: METRICS_IPC_TAG, kind: 'aggregate', id }, (error) => {
            if (!error || !pending.delete(id)) return;
            clearTimeout(timer);
            reject(error);
          });
        } catch (error) {
          pending.delete(id);
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
    stop() {
      channel.off('message', onMessage);
      for (const waiter of pending.values()) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error('closing'));
      }
      pending.clear();
    },
  };
}
