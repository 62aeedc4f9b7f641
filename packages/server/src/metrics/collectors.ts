import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { AuditEventInput } from '../audit/events.ts';
import type { LoginFailureReason } from '../auth/login.ts';
import type { Deps } from '../deps.ts';
import type { QueryErrorKind } from '../storage/db.ts';

/**
 * Gatehouse's metrics, in a registry of their own per app (several apps live in one test process, and
 * prom-client's global registry would mix them). Counters of outcomes listen to the audit log, so each
 * outcome is decided once, where it is recorded; gauges read the components' own stats when scraped.
 */
export interface GatehouseMetrics {
  registry: Registry;
  /** Called for every answer (onResponse): latency by route template and status, and 429s. */
  observeResponse(method: string, route: string, statusCode: number, elapsedMs: number): void;
  /** Stops listening to the audit log and the hashing pool (the app closes; they may outlive it). */
  stop(): void;
}

/** Latency buckets in seconds: a cached-token GET takes well under a millisecond, a login one Argon2 hash or more. */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HASHING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Login failure reasons (audit/events.ts); anything else is counted as `other`, so a label never grows unbounded. */
// Every reason auth/login.ts can give (the Record makes the compiler say when one is added there), and the
// per-client 429; anything else is counted as `other`.
const LOGIN_FAILURE_REASON_SET: Record<LoginFailureReason | 'rate_limited', true> = {
  unknown_email: true,
  wrong_password: true,
  locked: true,
  disabled: true,
  changed_during_login: true,
  email_not_verified: true,
  mfa_required: true,
  rate_limited: true,
};
const LOGIN_FAILURE_REASONS = Object.keys(LOGIN_FAILURE_REASON_SET);
const QUERY_ERROR_KINDS: QueryErrorKind[] = ['unavailable', 'constraint', 'other'];

let processRegistry: Registry | undefined;

/**
 * Process metrics (CPU, memory, handles, GC, event-loop delay) belong to the process, not to an app:
 * prom-client's collectors run once per process, and every app's registry shows the same objects.
 * Once, too, because each run starts an event-loop delay monitor and a GC observer that never stop.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export function createGatehouseMetrics(deps: Deps): GatehouseMetrics {
  const registry = new Registry();
  // The same metric objects (typed as plain descriptions, but they are the collectors themselves).
  for (const metric of processMetrics().getMetricsAsArray()) registry.registerMetric(metric as unknown as Metric);
  const registers = [registry];

  const httpDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route template (unmatched for a 404 without route) and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_BUCKETS,
    registers,
  });
  const rateLimited = new Counter({
    name: 'gatehouse_rate_limited_responses_total',
    help: 'Answers 429 (an address over its budget, or a locked account), by route template',
    labelNames: ['route'] as const,
    registers,
  });
  const logins = new Counter({
    name: 'gatehouse_logins_total',
    help: 'Password logins by outcome; a failure by reason (unknown_email, wrong_password, locked, disabled, changed_during_login, rate_limited)',
    labelNames: ['outcome', 'reason'] as const,
    registers,
  });
  const lockedOut = new Counter({
    name: 'gatehouse_locked_out_responses_total',
    help: 'Attempts refused because the account (or network) is locked out, by flow (login, password_change)',
    labelNames: ['flow'] as const,
    registers,
  });
  const lockouts = new Counter({
    name: 'gatehouse_lockouts_total',
    help: 'Times an account or network crossed the failure threshold and was locked out',
    registers,
  });
  const refreshes = new Counter({
    name: 'gatehouse_refreshes_total',
    help: 'Refresh-token exchanges by outcome',
    labelNames: ['outcome'] as const,
    registers,
  });
  const reuseDetections = new Counter({
    name: 'gatehouse_refresh_reuse_detections_total',
    help: 'Spent refresh tokens presented again past the retry grace: each revoked its whole session',
    registers,
  });
  // Zero from the start, so rate() and alerts see the series before the first event.
  logins.inc({ outcome: 'success', reason: 'none' }, 0);
  for (const reason of LOGIN_FAILURE_REASONS) logins.inc({ outcome: 'failure', reason }, 0);
  lockedOut.inc({ flow: 'login' }, 0);
  refreshes.inc({ outcome: 'success' }, 0);
  refreshes.inc({ outcome: 'failure' }, 0);

  function countAuditEvent(event: AuditEventInput): void {
    const outcome = event.outcome ?? 'success';
    switch (event.action) {
      case 'user.login':
        logins.inc({ outcome: 'success', reason: 'none' });
        return;
      case 'user.login_failed': {
        const reason = LOGIN_FAILURE_REASONS.includes(event.reason ?? '') ? event.reason! : 'other';
        logins.inc({ outcome: 'failure', reason });
        if (reason === 'locked') lockedOut.inc({ flow: 'login' });
        return;
      }
      case 'user.password_change':
        if (outcome === 'failure' && event.reason === 'locked') lockedOut.inc({ flow: 'password_change' });
        return;
      case 'user.lockout':
        lockouts.inc();
        return;
      case 'session.refresh':
        refreshes.inc({ outcome });
        return;
      case 'session.refresh_reuse':
        reuseDetections.inc();
        return;
      default:
    }
  }
  const stopAudit = deps.audit.subscribe(countAuditEvent);

  const hashingDuration = new Histogram({
    name: 'gatehouse_hashing_duration_seconds',
    help: 'Time a password hashing job ran on a hashing thread, by operation (argon2_hash, argon2_verify, scrypt_verify, pbkdf2_verify, bcrypt_verify)',
    labelNames: ['operation'] as const,
    buckets: HASHING_BUCKETS,
    registers,
  });
  const hashingWait = new Histogram({
    name: 'gatehouse_hashing_queue_wait_seconds',
    help: 'Time a password hashing job waited for a free hashing thread',
    buckets: [0, ...HASHING_BUCKETS],
    registers,
  });
  const stopHashing = deps.hasher.onJobDone((timing) => {
    hashingDuration.observe({ operation: timing.kind }, timing.runMs / 1000);
    hashingWait.observe(timing.waitMs / 1000);
  });
  new Gauge({
    name: 'gatehouse_hashing_queue_depth',
    help: 'Password hashing jobs waiting for a thread now (bounded by HASH_QUEUE_MAX)',
    registers,
    collect() {
      this.set(deps.hasher.stats().queued);
    },
  });
  new Gauge({
    name: 'gatehouse_hashing_threads_busy',
    help: 'Hashing threads working now',
    registers,
    collect() {
      this.set(deps.hasher.stats().busy);
    },
  });
  new Gauge({
    name: 'gatehouse_hashing_threads',
    help: 'Hashing threads in the pool (HASH_POOL_SIZE)',
    registers,
    collect() {
      this.set(deps.hasher.stats().threads);
    },
  });
  counterFromTotal(registers, 'gatehouse_hashing_rejected_total', 'Hashing jobs refused because the queue was full (each answered 503)', () => deps.hasher.stats().rejected);

  new Gauge({
    name: 'gatehouse_denylist_sessions',
    help: 'Revoked sessions whose access tokens are still refused (in memory; the same on every worker, so a cluster shows the largest)',
    aggregator: 'max',
    registers,
    collect() {
      this.set(deps.denylist.size);
    },
  });

  // Counted by storage/db.ts since the database opened; the counter moves by what is new since the last scrape.
  const queryErrorsSeen = { ...deps.databaseStats().queryErrors };
  const queryErrors = new Counter({
    name: 'gatehouse_db_query_errors_total',
    help: 'Database queries that failed, by kind: unavailable (connection lost, timeout, SQLite busy), constraint (a unique key), other',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      const now = deps.databaseStats().queryErrors;
      for (const kind of QUERY_ERROR_KINDS) {
        if (now[kind] > queryErrorsSeen[kind]) this.inc({ kind }, now[kind] - queryErrorsSeen[kind]);
        queryErrorsSeen[kind] = now[kind];
      }
    },
  });
  for (const kind of QUERY_ERROR_KINDS) queryErrors.inc({ kind }, 0);

  if (deps.databaseStats().pool) {
    new Gauge({
      name: 'gatehouse_db_pool_connections',
      help: 'PostgreSQL pool connections, by state (open, idle)',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const pool = deps.databaseStats().pool;
        if (!pool) return;
        this.set({ state: 'open' }, pool.total);
        this.set({ state: 'idle' }, pool.idle);
      },
    });
    new Gauge({
      name: 'gatehouse_db_pool_waiting_requests',
      help: 'Queries waiting for a free PostgreSQL pool connection',
      registers,
      collect() {
        this.set(deps.databaseStats().pool?.waiting ?? 0);
      },
    });
  }

  new Gauge({
    name: 'gatehouse_audit_queue_depth',
    help: 'Audit events recorded but not yet written to the database',
    registers,
    collect() {
      this.set(deps.audit.stats().queued);
    },
  });
  counterFromTotal(registers, 'gatehouse_audit_events_dropped_total', 'Audit events dropped because the database was away and the queue was full', () => deps.audit.stats().dropped);

  return {
    registry,
    observeResponse(method, route, statusCode, elapsedMs) {
      httpDuration.observe({ method, route, status_code: statusCode }, elapsedMs / 1000);
      if (statusCode === 429) rateLimited.inc({ route });
    },
    stop() {
      stopAudit();
      stopHashing();
    },
  };
}

/** A counter that follows a running total kept elsewhere (since this registry began), read at each scrape. */
function counterFromTotal(registers: Registry[], name: string, help: string, readTotal: () => number): void {
  let seen = readTotal();
  new Counter({
    name,
    help,
    registers,
    collect() {
      const total = readTotal();
      if (total > seen) this.inc(total - seen);
      seen = total;
    },
  });
}
