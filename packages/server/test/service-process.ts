import { execFileSync, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root: scripts/build.mjs writes dist/ here. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Bundles the service as `npm start` runs it (dist/main.js on plain Node). */
export function buildService(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO_ROOT, stdio: 'pipe' });
}

/** The built service running as a child process: crashes show as an exit, logs as pino JSON lines. */
export interface ServiceProcess {
  baseUrl: string;
  /** The process started (with WORKERS > 1, the cluster primary). */
  pid: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** stdout's JSON log lines so far. */
  logLines(): Array<Record<string, any>>;
  isRunning(): boolean;
  /** Throws with the output's tail when the process has exited. */
  assertRunning(): void;
  /** SIGTERM (graceful shutdown), then SIGKILL if it has not exited within 10 s (or killAfterMs). */
  stop(killAfterMs?: number): Promise<void>;
  /** How the process ended; resolves when it has. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startService(env: Record<string, string>, options: { cwd?: string } = {}): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [`${REPO_ROOT}dist/main.js`], {
    cwd: options.cwd ?? REPO_ROOT,
    // Only what is named here: the test runner's own DATABASE_URL or LOG_LEVEL must not leak in.
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: '1000000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let exit: string | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = `exited with code ${code} signal ${signal}`;
      resolve({ code, signal });
    }),
  );

  const service: ServiceProcess = {
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    exited,
    output: () => stdout + stderr,
    logLines: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, any>),
    isRunning: () => exit === undefined,
    assertRunning() {
      if (exit !== undefined) throw new Error(`service ${exit}; output:\n${(stdout + stderr).slice(-3000)}`);
    },
    async stop(killAfterMs = 10_000) {
      if (exit !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await waitUntil(service, 20_000, async () => (await fetch(`${service.baseUrl}/healthz`)).status === 200);
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}

/**
 * Retries `check` until it returns true, failing at once if the service exits and at the deadline
 * otherwise. Polls for a process to come back, never to let time pass for an expiry.
 */
export async function waitUntil(service: ServiceProcess, deadlineMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    service.assertRunning();
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    service.assertRunning();
    if (Date.now() > deadline) {
      throw new Error(`not true within ${deadlineMs} ms${lastError ? ` (last error: ${String(lastError)})` : ''}; output:\n${service.output().slice(-3000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The workers of a WORKERS > 1 service alive now, from the primary's fork and exit lines (needs LOG_LEVEL=info). */
export function liveWorkerPids(service: ServiceProcess): number[] {
  const live = new Set<number>();
  for (const line of service.logLines()) {
    if (line.role !== 'primary' || typeof line.worker?.pid !== 'number') continue;
    if (/^forked worker/.test(line.msg)) live.add(line.worker.pid);
    else live.delete(line.worker.pid);
  }
  return [...live];
}

/** Pids of the processes that have said they listen (pino's own line, at LOG_LEVEL=info). */
export function listeningPids(service: ServiceProcess): number[] {
  return service.logLines().filter((line) => /^Server listening/.test(line.msg ?? '')).map((line) => line.pid as number);
}

/** The per-request log lines (LOG_LEVEL=info): each names the pid of the process that answered. */
export function requestLines(service: ServiceProcess): Array<Record<string, any>> {
  return service.logLines().filter((line) => line.msg === 'request');
}

export interface FreshResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/**
 * One request on a connection of its own (Connection: close, no agent), so that the cluster's
 * round-robin hands each request to the next worker instead of reusing a kept-alive one.
 */
export function requestOnFreshConnection(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<FreshResponse> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${baseUrl}${path}`,
      {
        method,
        agent: false,
        headers: {
          connection: 'close',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          ...options.headers,
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
        });
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('request timed out')));
    request.on('error', reject);
    request.end(payload);
  });
}
