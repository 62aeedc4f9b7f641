import { Agent, request as httpRequest } from 'node:http';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';
import type { Request as AutocannonRequest } from 'autocannon';

export interface LatencySummaryMs {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  /** Successful (2xx) answers per second. */
  requestsPerSecond: number;
  okCount: number;
  notOkCount: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Of 2xx answers only, microsecond resolution. */
  latencyMs: LatencySummaryMs;
  durationSeconds: number;
  /** CPU used by this (load generator) process per wall second; near 1 means it may be the bottleneck. */
  loadGeneratorCores: number;
}

/** autocannon's own histogram keeps whole milliseconds; this one keeps microseconds. */
class LatencyRecorder {
  private readonly histogram: RecordableHistogram = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
  readonly statusCodes: Record<string, number> = {};
  okCount = 0;
  notOkCount = 0;

  record(statusCode: number, latencyMs: number): void {
    this.statusCodes[statusCode] = (this.statusCodes[statusCode] ?? 0) + 1;
    if (statusCode < 200 || statusCode > 299) {
      this.notOkCount++;
      return;
    }
    this.okCount++;
    this.histogram.record(Math.max(1, Math.round(latencyMs * 1000)));
  }

  summary(): LatencySummaryMs {
    if (this.okCount === 0) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
    const ms = (microseconds: number) => microseconds / 1000;
    return {
      p50: ms(this.histogram.percentile(50)),
      p90: ms(this.histogram.percentile(90)),
      p99: ms(this.histogram.percentile(99)),
      max: ms(this.histogram.max),
      mean: ms(this.histogram.mean),
    };
  }
}

function cpuMeter(): () => number {
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpuStart);
    return (used.user + used.system) / 1000 / (performance.now() - wallStart);
  };
}

export interface ClosedLoopOptions {
  url: string;
  connections: number;
  durationSeconds: number;
  headers?: Record<string, string>;
  /** Cycled by each connection, e.g. one login body per user. */
  requests?: AutocannonRequest[];
}

/** autocannon, each connection sending its next request as soon as the answer is in. */
export async function closedLoopLoad(options: ClosedLoopOptions): Promise<LoadResult> {
  const recorder = new LatencyRecorder();
  const cpuCores = cpuMeter();
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    timeout: 10,
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.requests ? { requests: options.requests } : {}),
  });
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    recorder.record(statusCode, responseTimeMs);
  });
  const result = await instance;
  const loadGeneratorCores = cpuCores();
  return {
    requestsPerSecond: recorder.okCount / result.duration,
    okCount: recorder.okCount,
    notOkCount: recorder.notOkCount,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: recorder.statusCodes,
    latencyMs: recorder.summary(),
    durationSeconds: result.duration,
    loadGeneratorCores,
  };
}

export interface PacedOptions {
  url: string;
  ratePerSecond: number;
  durationSeconds: number;
  maxConnections: number;
  headers?: Record<string, string>;
}

/**
 * Open-loop load at a fixed rate (autocannon's rate limit sends bursts once a second).
 * Latency counts from when a request was due, so a stalled server cannot hide its stall
 * by slowing the sender down (no coordinated omission).
 */
export async function pacedLoad(options: PacedOptions): Promise<LoadResult> {
  const target = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxConnections });
  const recorder = new LatencyRecorder();
  const cpuCores = cpuMeter();
  let errors = 0;
  let timeouts = 0;
  let inFlight = 0;
  let sent = 0;
  const intervalMs = 1000 / options.ratePerSecond;
  const startedAt = performance.now();
  const endsAt = startedAt + options.durationSeconds * 1000;

  const send = (dueAt: number) => {
    inFlight++;
    const outgoing = httpRequest(
      { agent, host: target.hostname, port: target.port, path: target.pathname + target.search, headers: options.headers, timeout: 10_000 },
      (response) => {
        response.resume();
        response.once('end', () => {
          recorder.record(response.statusCode ?? 0, performance.now() - dueAt);
          inFlight--;
        });
      },
    );
    let timedOut = false;
    outgoing.once('timeout', () => {
      timedOut = true;
      timeouts++;
      outgoing.destroy(new Error('timeout'));
    });
    outgoing.once('error', () => {
      if (!timedOut) errors++;
      inFlight--;
    });
    outgoing.end();
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const dueCount = Math.floor((Math.min(now, endsAt) - startedAt) / intervalMs);
      while (sent < dueCount) send(startedAt + sent++ * intervalMs);
      if (now < endsAt) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const drainDeadline = performance.now() + 10_000;
  while (inFlight > 0 && performance.now() < drainDeadline) await new Promise((resolve) => setTimeout(resolve, 5));
  const loadGeneratorCores = cpuCores();
  agent.destroy();
  const durationSeconds = (performance.now() - startedAt) / 1000;
  return {
    requestsPerSecond: recorder.okCount / options.durationSeconds,
    okCount: recorder.okCount,
    notOkCount: recorder.notOkCount,
    errors,
    timeouts,
    statusCodes: recorder.statusCodes,
    latencyMs: recorder.summary(),
    durationSeconds,
    loadGeneratorCores,
  };
}
