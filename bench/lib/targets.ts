import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchUsers, type BenchUser } from '../peers/users.ts';
import type { GatehouseRuntime } from './node24.ts';
import type { TargetName } from './options.ts';
import { freePort, spawnServer, stopServer, waitUntilReady, type Pinning, type ServerProcess } from './processes.ts';

export const repoRoot = new URL('../../', import.meta.url).pathname;

export interface RunningTarget {
  name: TargetName;
  server: ServerProcess;
  baseUrl: string;
  requiresAuth: boolean;
  /** Headers of an authenticated GET /users (empty for ceiling). */
  authHeaders: Record<string, string>;
  token?: string;
}

function rootScripts(): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  return manifest.scripts ?? {};
}

/** Gatehouse is started the way `npm start` starts it, minus npm itself (so the pid is the server's). */
export function gatehouseNodeArguments(): string[] {
  const start = rootScripts().start ?? '';
  const [program, ...rest] = start.trim().split(/\s+/);
  if (program !== 'node' || rest.length === 0) throw new Error(`root "start" script is not "node …": ${start}`);
  return rest;
}

/**
 * `npm start` runs `prestart` first (e.g. bundling into dist/): run it once, as npm would.
 * Returns how Gatehouse will be started, for the report.
 */
export function prepareGatehouse(): string {
  const { prestart } = rootScripts();
  if (prestart) {
    execFileSync('npm', ['run', '--silent', 'prestart'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  }
  const start = `node ${gatehouseNodeArguments().join(' ')}`;
  return prestart ? `\`${prestart}\` once (prestart), then \`${start}\`` : `\`${start}\``;
}

export function gatehouseEntryExists(): boolean {
  try {
    const entry = gatehouseNodeArguments().find((argument) => !argument.startsWith('-') && /\.[cm]?[jt]s$/.test(argument));
    return entry !== undefined && existsSync(join(repoRoot, entry));
  } catch {
    return false;
  }
}

// Gatehouse settings a developer's shell or CI may carry; the suite measures the defaults (DESIGN.md).
const inheritedGatehouseSettings = [
  'REDIS_URL',
  'JWT_ALG',
  'JWT_SECRET',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'ACCESS_TOKEN_TTL',
  'REFRESH_TOKEN_TTL',
  'REFRESH_REUSE_GRACE',
  'TRUST_PROXY',
  'CORS_ORIGINS',
  'BODY_LIMIT',
  'KEY_ENCRYPTION_SECRET',
  'UV_THREADPOOL_SIZE',
];

export function gatehouseEnv(port: number, databasePath: string): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !inheritedGatehouseSettings.includes(name)));
  return {
    ...inherited,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: `sqlite:${databasePath}`,
    PASSWORD_MIN_LENGTH: '15',
    PASSWORD_BREACHED_CHECK: 'false',
    RATE_LIMIT_PER_MINUTE: '1000000000',
    LOGIN_MAX_FAILURES: '1000000000',
    LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000000000',
    // Every target answers GET /users with all 5 users, as the tutorial does.
    USERS_LIST: 'all',
    LOG_LEVEL: 'warn',
  };
}

/** runtime: another Node than this one (gatehouse-node24); by default this process's own. */
export async function startGatehouse(
  pinning: Pinning,
  databasePath: string,
  logPath: string,
  runtime?: GatehouseRuntime,
): Promise<{ server: ServerProcess; baseUrl: string }> {
  const port = await freePort();
  const server = spawnServer(pinning, runtime?.nodeArguments ?? gatehouseNodeArguments(), {
    cwd: repoRoot,
    env: gatehouseEnv(port, databasePath),
    logPath,
    ...(runtime ? { nodePath: runtime.nodePath } : {}),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(server, `${baseUrl}/healthz`, 60_000);
  } catch (error) {
    await stopServer(server);
    throw error;
  }
  return { server, baseUrl };
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // keep {} — the caller reports the status
  }
  return { status: response.status, json };
}

export async function signUp(baseUrl: string, user: BenchUser): Promise<void> {
  const { status, json } = await postJson(`${baseUrl}/signup`, { name: user.name, email: user.email, password: user.password });
  if (status !== 201 && status !== 409) throw new Error(`POST /signup ${user.email}: HTTP ${status} ${JSON.stringify(json)}`);
}

export async function logIn(baseUrl: string, email: string, password: string): Promise<string> {
  const { status, json } = await postJson(`${baseUrl}/login`, { email, password });
  if ((status !== 200 && status !== 201) || typeof json.token !== 'string') throw new Error(`POST /login ${email}: HTTP ${status} ${JSON.stringify(json)}`);
  return json.token;
}

/** peerEntry: the bundled peer (see build-peers.ts), run with plain node; node24: how gatehouse-node24 runs. */
export async function startTarget(
  name: TargetName,
  pinning: Pinning,
  workDirectory: string,
  peerEntry?: string,
  node24?: GatehouseRuntime,
): Promise<RunningTarget> {
  const logPath = join(workDirectory, `${name}.log`);
  let server: ServerProcess;
  let baseUrl: string;
  if (name === 'gatehouse' || name === 'gatehouse-node24') {
    if (name === 'gatehouse-node24' && !node24) throw new Error('Node 24 was not prepared');
    const runtime = name === 'gatehouse-node24' ? node24 : undefined;
    ({ server, baseUrl } = await startGatehouse(pinning, join(workDirectory, `${name}.db`), logPath, runtime));
    for (const user of benchUsers) await signUp(baseUrl, user);
  } else {
    const port = await freePort();
    if (!peerEntry) throw new Error(`no bundle for peer ${name}`);
    server = spawnServer(pinning, [peerEntry], { cwd: repoRoot, env: { ...process.env, PORT: String(port) }, logPath });
    baseUrl = `http://127.0.0.1:${port}`;
    await waitUntilReady(server, `${baseUrl}/healthz`, 30_000);
  }
  const requiresAuth = name !== 'ceiling';
  if (!requiresAuth) return { name, server, baseUrl, requiresAuth, authHeaders: {} };
  const user = benchUsers[0]!;
  const token = await logIn(baseUrl, user.email, user.password);
  return { name, server, baseUrl, requiresAuth, token, authHeaders: { authorization: `Bearer ${token}` } };
}

function base64UrlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Tokens every target must refuse with 401. */
export function forgedTokens(token: string): Record<string, string> {
  const [header = '', payload = '', signature = ''] = token.split('.');
  // Change a middle character: the last one may only carry padding bits.
  const middle = Math.floor(signature.length / 2);
  const flipped = signature[middle] === 'A' ? 'B' : 'A';
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  const otherSubject = claims.sub === '2' ? '3' : '2';
  return {
    'signature byte changed': `${header}.${payload}.${signature.slice(0, middle)}${flipped}${signature.slice(middle + 1)}`,
    'claims changed (sub), signature kept': `${header}.${base64UrlJson({ ...claims, sub: otherSubject })}.${signature}`,
    'alg none, no signature': `${base64UrlJson({ alg: 'none', typ: 'JWT' })}.${payload}.`,
  };
}

async function getUsers(target: RunningTarget, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const response = await fetch(`${target.baseUrl}/users`, { headers });
  return { status: response.status, body: await response.text() };
}

/** The suite measures nobody who accepts a forged token or fails a valid one. */
export async function checkTarget(target: RunningTarget): Promise<string[]> {
  const problems: string[] = [];
  const expectStatus = async (label: string, headers: Record<string, string>, expected: number) => {
    const { status, body } = await getUsers(target, headers);
    if (status !== expected) {
      problems.push(`${label}: expected ${expected}, got ${status}`);
      return;
    }
    if (expected === 200) {
      const users = (JSON.parse(body) as { users?: Array<{ id?: unknown; email?: unknown }> }).users;
      if (!Array.isArray(users) || users.length < benchUsers.length || users.some((user) => user.id === undefined || typeof user.email !== 'string')) {
        problems.push(`${label}: body is not {"users":[{id,email}…]} with ${benchUsers.length} users: ${body.slice(0, 200)}`);
      }
    }
  };
  if (!target.requiresAuth || !target.token) {
    await expectStatus('GET /users', {}, 200);
    return problems;
  }
  await expectStatus('valid token (Authorization: Bearer)', target.authHeaders, 200);
  await expectStatus('valid token (x-access-token)', { 'x-access-token': target.token }, 200);
  await expectStatus('no token', {}, 401);
  for (const [label, forged] of Object.entries(forgedTokens(target.token))) {
    await expectStatus(`forged token: ${label}`, { authorization: `Bearer ${forged}` }, 401);
  }
  return problems;
}
