import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, STRONG_PASSWORD, testDialects, type TestDatabase } from './helpers.ts';
import {
  buildService,
  listeningPids,
  liveWorkerPids,
  requestLines,
  requestOnFreshConnection,
  startService,
  waitUntil,
  type FreshResponse,
  type ServiceProcess,
} from './service-process.ts';

// Workers are processes: these run the built service (dist/main.js) with WORKERS=2 as a child process tree.
beforeAll(() => buildService(), 60_000);

const LOGIN_MAX_FAILURES = 4;
const RATE_LIMIT_PER_MINUTE = 30;

/** Revocation delays measured across both dialects, printed at the end for the report. */
const revocationDelaysMs: Record<string, number[]> = {};

describe.each(testDialects())('WORKERS=2 [workers] [%s]', (dialect) => {
  let database: TestDatabase;
  let service: ServiceProcess;
  // Each test speaks from addresses of its own (TRUST_PROXY=1 takes X-Forwarded-For), so budgets never mix.
  let nextAddress = 1;
  const freshAddress = () => `10.9.${Math.floor(nextAddress / 250)}.${(nextAddress++ % 250) + 1}`;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    service = await startService({
      DATABASE_URL: database.url,
      WORKERS: '2',
      // Info level: the primary's fork/exit lines and each request's line (with the pid that answered).
      LOG_LEVEL: 'info',
      TRUST_PROXY: '1',
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT_PER_MINUTE),
      LOGIN_MAX_FAILURES: String(LOGIN_MAX_FAILURES),
      // The database sync would refuse a revoked token within 60 s anyway: only the primary's forwarding is faster.
      REVOCATION_SYNC_INTERVAL: '60s',
    });
    await waitUntil(service, 60_000, () => new Set(listeningPids(service)).size === 2);
  }, 90_000);
  afterAll(async () => {
    await service?.stop();
    await database?.drop();
  });

  // Responses received so far: each has (or will have) its request line in the log.
  let answered = 0;

  async function send(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}) {
    const response = await requestOnFreshConnection(service.baseUrl, method, path, options);
    answered += 1;
    return response;
  }

  let trackedCount = 0;

  /** One request at a time, and the pid of the worker that answered it, from that request's log line. */
  async function sendTracked(method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}) {
    // Earlier answers' lines first, so that they are not taken for this one's.
    await waitUntil(service, 2_000, () => requestLines(service).length >= answered).catch(() => undefined);
    const before = requestLines(service).length;
    // A tag of its own in the URL: a late line of another request (a readiness probe) cannot pass for this one's.
    const taggedPath = `${path}${path.includes('?') ? '&' : '?'}tracked=${(trackedCount += 1)}`;
    const response = await send(method, taggedPath, options);
    const answeredAt = performance.now();
    const ours = () => requestLines(service).slice(before).filter((line) => line.method === method && line.url === taggedPath && line.status === response.status);
    await waitUntil(service, 5_000, () => ours().length > 0);
    expect(ours()).toHaveLength(1);
    return { ...response, answeredAt, pid: ours()[0]!.pid as number };
  }

  async function signup(email: string, address = freshAddress(), timeoutMs?: number): Promise<FreshResponse> {
    return send('POST', '/signup', {
      body: { name: 'Worker Test', email, password: STRONG_PASSWORD },
      headers: { 'x-forwarded-for': address },
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  }

  it('answers from both workers, never from the primary', async () => {
    const workers = liveWorkerPids(service);
    expect(workers).toHaveLength(2);
    expect(workers).not.toContain(service.pid);
    const answeredBy = new Set<number>();
    for (let index = 0; index < 6; index += 1) {
      const response = await sendTracked('GET', '/healthz');
      expect(response.status).toBe(200);
      answeredBy.add(response.pid);
    }
    expect([...answeredBy].sort()).toEqual([...workers].sort());
  });

  it('failures spread over both workers lock the account on both', async () => {
    const email = `locked-${dialect}@example.com`;
    expect((await signup(email)).status).toBe(201);
    const attacker = { 'x-forwarded-for': freshAddress() };
    const failedOn = new Set<number>();
    for (let attempt = 0; attempt < LOGIN_MAX_FAILURES; attempt += 1) {
      const response = await sendTracked('POST', '/login', { body: { email, password: 'wrong password, surely' }, headers: attacker });
      expect(response.status).toBe(403);
      failedOn.add(response.pid);
    }
    // Each worker saw only half the failures: apart, neither would have locked.
    expect(failedOn.size).toBe(2);
    const lockedOn = new Set<number>();
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const response = await sendTracked('POST', '/login', { body: { email, password: STRONG_PASSWORD }, headers: attacker });
      // Far below the per-address budget: this 429 is the account's lock.
      expect(response.status).toBe(429);
      expect(response.body).toMatchObject({ status: false, code: 429 });
      lockedOn.add(response.pid);
    }
    expect(lockedOn.size).toBe(2);
  });

  it('one per-address budget for both workers', async () => {
    const client = { 'x-forwarded-for': freshAddress() };
    const answeredBy = new Set<number>();
    for (let index = 0; index < RATE_LIMIT_PER_MINUTE; index += 1) {
      const response = await sendTracked('POST', '/token/refresh', { body: { refresh_token: 'not-a-refresh-token' }, headers: client });
      expect(response.status).not.toBe(429);
      answeredBy.add(response.pid);
    }
    expect(answeredBy.size).toBe(2);
    // Apart, each worker would have counted only half the budget and let these through.
    const refusedBy = new Set<number>();
    for (let index = 0; index < 2; index += 1) {
      const response = await sendTracked('POST', '/token/refresh', { body: { refresh_token: 'not-a-refresh-token' }, headers: client });
      expect(response.status).toBe(429);
      expect(response.body).toMatchObject({ status: false, code: 429 });
      refusedBy.add(response.pid);
    }
    expect(refusedBy.size).toBe(2);
  });

  it('a logout on one worker is refused by every worker within 1 s', async () => {
    const email = `leaver-${dialect}@example.com`;
    expect((await signup(email)).status).toBe(201);
    const delays: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      const login = await send('POST', '/login', { body: { email, password: STRONG_PASSWORD }, headers: { 'x-forwarded-for': freshAddress() } });
      expect(login.status).toBe(201);
      const bearer = { authorization: `Bearer ${login.body.token}` };
      const logout = await sendTracked('POST', '/logout', { body: {}, headers: bearer });
      expect(logout.status).toBe(200);
      const loggedOutAt = logout.answeredAt;
      // Poll until the worker that did not log out refuses too; the other has refused since its answer.
      const refusedBy = new Set<number>();
      let otherRefusedAfterMs: number | undefined;
      while (otherRefusedAfterMs === undefined) {
        const me = await sendTracked('GET', '/me', { headers: bearer });
        if (me.pid === logout.pid) expect(me.status).toBe(401);
        if (me.status === 401) {
          refusedBy.add(me.pid);
          if (me.pid !== logout.pid) otherRefusedAfterMs = me.answeredAt - loggedOutAt;
        } else {
          expect(me.status).toBe(200);
          expect(me.answeredAt - loggedOutAt).toBeLessThan(1_000);
        }
      }
      expect(refusedBy.size).toBeGreaterThanOrEqual(1);
      delays.push(otherRefusedAfterMs);
    }
    revocationDelaysMs[dialect] = delays;
    expect(Math.max(...delays)).toBeLessThan(1_000);
  });

  it('concurrent signups on both workers all succeed (SQLite busy is waited out, never a 500)', async () => {
    const emails = Array.from({ length: 16 }, (_, index) => `crowd-${index}-${dialect}@example.com`);
    const before = requestLines(service).length;
    const responses = await Promise.all(emails.map((email) => signup(email)));
    expect(responses.map((response) => response.status)).toEqual(emails.map(() => 201));
    await waitUntil(service, 5_000, () => requestLines(service).length >= before + emails.length);
    const signedUpBy = new Set(requestLines(service).slice(before).filter((line) => line.url === '/signup').map((line) => line.pid));
    expect(signedUpBy.size).toBe(2);
  });

  it('a worker killed with SIGKILL is replaced, and every signup acknowledged meanwhile can log in', async () => {
    const [victim, survivor] = liveWorkerPids(service);
    const statuses: number[] = [];
    const networkErrors: string[] = [];
    const acknowledged: string[] = [];
    let running = true;
    const signupLoop = async (loop: number) => {
      for (let index = 0; running; index += 1) {
        const email = `during-kill-${loop}-${index}-${dialect}@example.com`;
        try {
          const response = await signup(email, freshAddress(), 5_000);
          statuses.push(response.status);
          if (response.status === 201) acknowledged.push(email);
        } catch (error) {
          // The connection the killed worker held: no answer, so nothing was acknowledged.
          networkErrors.push((error as { code?: string }).code ?? (error as Error).message);
        }
      }
    };
    const loops = [0, 1, 2, 3].map(signupLoop);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const t0 = performance.now();
    process.kill(victim!, 'SIGKILL');
    await waitUntil(service, 20_000, () => liveWorkerPids(service).length === 2 && !liveWorkerPids(service).includes(victim!));
    const replacement = liveWorkerPids(service).find((pid) => pid !== survivor)!;
    await waitUntil(service, 30_000, () => listeningPids(service).includes(replacement));
    const t1 = performance.now();
    running = false;
    await Promise.all(loops);
    const t2 = performance.now();

    const restartLine = service.logLines().find((line) => line.role === 'primary' && line.worker?.pid === victim && /died/.test(line.msg));
    expect(restartLine).toMatchObject({ level: 40, worker: { pid: victim, signal: 'SIGKILL' } });
    expect(statuses.filter((status) => status >= 500 && status !== 503)).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(0);
    console.log(`[workers] [${dialect}] during the kill: ${acknowledged.length} signups acknowledged, statuses ${JSON.stringify(countBy(statuses))}, connections cut: ${JSON.stringify(networkErrors)}`);
    for (const email of acknowledged) {
      const login = await send('POST', '/login', { body: { email, password: STRONG_PASSWORD }, headers: { 'x-forwarded-for': freshAddress() } });
      expect(login.status, email).toBe(201);
    }
    console.log(`[workers] [${dialect}] timings: replaced+listening ${Math.round(t1 - t0)} ms, loops ${Math.round(t2 - t1)} ms, logins ${Math.round(performance.now() - t2)} ms`);
    // And the replacement takes its share of the requests.
    const answeredBy = new Set<number>();
    for (let index = 0; index < 6; index += 1) answeredBy.add((await sendTracked('GET', '/healthz')).pid);
    expect([...answeredBy].sort()).toEqual([survivor!, replacement].sort());
  }, 90_000);

  // Last: it ends the service.
  it('SIGTERM to the primary lets in-flight requests finish, then exits 0', async () => {
    const answeredAt: Array<{ status: number; afterSignal: boolean }> = [];
    let signalled = false;
    let firstAnswer!: () => void;
    const firstAnswered = new Promise<void>((resolve) => {
      firstAnswer = resolve;
    });
    // 24 signups, each a production Argon2id hash on one thread per worker: about a dozen in a row per worker.
    const requests = Array.from({ length: 24 }, (_, index) =>
      signup(`draining-${index}-${dialect}@example.com`).then((response) => {
        answeredAt.push({ status: response.status, afterSignal: signalled });
        firstAnswer();
      }),
    );
    // Signal once the first has been answered: every connection is in by then, and most are still hashing.
    await firstAnswered;
    signalled = true;
    process.kill(service.pid, 'SIGTERM');
    await Promise.all(requests);
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(answeredAt.map((answer) => answer.status)).toEqual(answeredAt.map(() => 201));
    // At least one was still being served when the signal came.
    expect(answeredAt.some((answer) => answer.afterSignal)).toBe(true);
    const primaryLines = service.logLines().filter((line) => line.role === 'primary');
    expect(primaryLines.at(-1)).toMatchObject({ msg: 'every worker drained; exiting' });
  });
});

afterAll(() => {
  for (const [dialect, delays] of Object.entries(revocationDelaysMs)) {
    const sorted = [...delays].sort((a, b) => a - b);
    const at = (quantile: number) => sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))]!.toFixed(1);
    console.log(`[workers] [${dialect}] logout on one worker → refused by the other: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms (n=${sorted.length})`);
  }
});

function countBy(values: number[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

