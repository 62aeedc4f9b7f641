/**
 * The only module that reads process.env. Every problem is collected and
 * reported together, so an operator fixes a bad deployment in one pass.
 */
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';

export type JwtAlgorithm = 'EdDSA' | 'ES256' | 'RS256' | 'HS256';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  host: string;
  port: number;
  databaseUrl: string;
  redisUrl: string | undefined;
  /** Prefix of every Redis key and channel, so several deployments (or test runs) can share one Redis. */
  redisKeyPrefix: string;
  /** Worker processes (node:cluster) on one port; 1 = no cluster. */
  workers: number;
  /** How often each process re-reads revocations from the database (the safety net beside pub/sub). */
  revocationSyncIntervalMs: number;
  /** Rotate the signing key on a schedule; undefined = only by command. */
  keyRotationDays: number | undefined;
  databaseTimeouts: {
    /** Give up opening a connection after this long (then 503). */
    connectMs: number;
    /** Give up on a query after this long (then 503). */
    queryMs: number;
  };
  jwt: {
    algorithm: JwtAlgorithm;
    /** HS256 only; never logged. */
    secret: string | undefined;
    issuer: string;
    audience: string;
    accessTokenTtlSeconds: number;
    /** Lifetime of a client_credentials (service-to-service) access token. */
    clientTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    refreshReuseGraceSeconds: number;
  };
  password: { minLength: number; maxLength: number; breachedCheck: boolean };
  limits: {
    rateLimitPerMinute: number;
    /** Consecutive failures per account and client network before that client is locked out of the account. */
    loginMaxFailures: number;
    /** Failures per account, from every client together, within an hour before the account is locked for everyone. */
    loginMaxFailuresPerAccount: number;
    bodyLimitBytes: number;
    /** POST /introspect requests per confidential client per minute, shared by every worker and instance. */
    introspectionPerMinute: number;
    /** GET /revocations requests per confidential client per minute. */
    revocationFeedPerMinute: number;
    /** IPv6 clients are counted per network of this prefix length (a /64 is one subscriber). */
    ipv6PrefixLength: number;
  };
  hashing: {
    /** Hashing threads; default one per core. */
    poolSize: number;
    /** Password jobs allowed to wait for a thread; past it, 503 with Retry-After. */
    queueMax: number;
  };
  sessions: {
    /** Absolute session lifetime from login, whatever the refreshes. */
    maxAgeSeconds: number;
    /**
     * REAUTH_MAX_AGE: a session signed into at most this long ago may add a second factor or a passkey
     * without typing the password again; 0 always asks for it.
     */
    reauthMaxAgeSeconds: number;
  };
  /** `self`: GET /users lists everyone only to admins; `all`: to every signed-in user (the tutorial). */
  usersList: 'self' | 'all';
  /** Who may set X-Forwarded-For: nobody, the nearest N hops, or the listed proxy addresses/CIDRs. */
  trustProxy: TrustProxy;
  corsOrigins: string[];
  keyEncryptionSecret: string | undefined;
  /** The secret being rotated away from: records still under it are read with it until `gatehouse keys reencrypt`. */
  keyEncryptionSecretPrevious: string | undefined;
  logLevel: LogLevel;
  /** An existing user promoted to admin at start (the first admin, without a SQL prompt). */
  adminEmail: string | undefined;
  /** ROLES: the roles a user may be given (always includes `user` and `admin`). */
  roles: string[];
  /** AUDIT_RETENTION_DAYS: audit events older than this are purged; 0 keeps them for ever. */
  auditRetentionDays: number;
  /** NODE_ENV=production: settings a flow needs (SMTP_URL…) are required at start instead of falling back to the log. */
  production: boolean;
  /** PUBLIC_URL: where users reach Gatehouse; links in emails and the WebAuthn origin derive from it. JWT_ISSUER by default. */
  publicUrl: string;
  mail: {
    /** SMTP_URL (smtp:// or smtps://, credentials in the URL); unset: messages go to the log with a warning (not in production). */
    smtpUrl: string | undefined;
    /** MAIL_FROM: the From header. */
    from: string;
    /** MAIL_TEMPLATES_DIR: a directory whose <name>.txt / <name>.html replace the built-in templates. */
    templatesDir: string | undefined;
  };
  /** REQUIRE_EMAIL_VERIFICATION: login refuses accounts whose email is not verified (off: the seed's session keeps working). */
  requireEmailVerification: boolean;
  /** TOTP_ISSUER: the issuer an authenticator app shows next to the account. */
  totpIssuer: string;
  webauthn: {
    /** WEBAUTHN_RP_ID: the relying party id (a registrable domain); PUBLIC_URL's host by default. */
    rpId: string;
    /** WEBAUTHN_RP_NAME */
    rpName: string;
    /** WEBAUTHN_ORIGINS: origins allowed to use the passkeys (comma-separated); PUBLIC_URL's origin by default. */
    origins: string[];
  };
  metrics: {
    /** METRICS_TOKEN: GET /metrics on the service port answers only with `Authorization: Bearer <token>`. */
    token: string | undefined;
    /** METRICS_PORT: /metrics on a separate listener (e.g. bound to a private interface), no token needed there. */
    port: number | undefined;
    /** METRICS_HOST: the address that listener binds; 127.0.0.1 by default. */
    host: string;
  };
}

export type TrustProxy = false | { hops: number } | { addresses: string[] };

export const SMTP_REQUIRED_IN_PRODUCTION =
  'SMTP_URL is required with NODE_ENV=production: email verification and password reset send mail (smtp://user:pass@host:587 or smtps://…)';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 * 1024, mib: 1024 * 1024 };
const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ALGORITHMS: JwtAlgorithm[] = ['EdDSA', 'ES256', 'RS256', 'HS256'];

/** Reads values one by one, remembering every problem instead of stopping at the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max} (got "${value}")`);
      return fallback;
    }
    return Number(value);
  }

  /** Seconds, or a duration such as 15m, 12h, 30d. */
  duration(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = /^(\d+)\s*([smhd]?)$/i.exec(value);
    const seconds = match ? Number(match[1]) * (DURATION_UNITS[(match[2] || 's').toLowerCase()] ?? 1) : NaN;
    if (!Number.isSafeInteger(seconds) || seconds < min || seconds > max) {
      this.problems.push(`${name} must be a duration from ${min}s to ${max}s, in seconds or like 15m/12h/30d (got "${value}")`);
      return fallback;
    }
    return seconds;
  }

  /** Milliseconds from a duration such as 500ms, 2s or 1m; a bare number is seconds, as elsewhere. */
  durationMs(name: string, fallbackMs: number, minMs: number, maxMs: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallbackMs;
    const match = /^(\d+)\s*(ms|s|m)?$/i.exec(value);
    const unitMs = { ms: 1, s: 1000, m: 60_000 }[(match?.[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm'];
    const milliseconds = match ? Number(match[1]) * unitMs : NaN;
    if (!Number.isSafeInteger(milliseconds) || milliseconds < minMs || milliseconds > maxMs) {
      this.problems.push(`${name} must be a duration from ${minMs}ms to ${maxMs}ms, like 500ms, 2s or 1m (got "${value}")`);
      return fallbackMs;
    }
    return milliseconds;
  }

  /** Bytes, or a size such as 64kb, 1mb. */
  size(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = /^(\d+)\s*([a-z]*)$/i.exec(value);
    const unit = match ? SIZE_UNITS[(match[2] || 'b').toLowerCase()] : undefined;
    const bytes = match && unit ? Number(match[1]) * unit : NaN;
    if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) {
      this.problems.push(`${name} must be a size from ${min} to ${max} bytes, like 65536 or 64kb (got "${value}")`);
      return fallback;
    }
    return bytes;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(value)) return true;
    if (['0', 'false', 'no', 'off'].includes(value)) return false;
    this.problems.push(`${name} must be true or false (got "${value}")`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const found = allowed.find((candidate) => candidate.toLowerCase() === value.toLowerCase());
    if (!found) this.problems.push(`${name} must be one of ${allowed.join(', ')} (got "${value}")`);
    return found ?? fallback;
  }

  url(name: string, fallback: string | undefined, protocols: string[]): string | undefined {
    const value = this.raw(name) ?? fallback;
    if (value === undefined) return undefined;
    let protocol: string | undefined;
    try {
      protocol = new URL(value).protocol;
    } catch {
      protocol = undefined;
    }
    if (!protocol || !protocols.includes(protocol)) {
      // Never echo the value: a database or Redis URL may hold a password.
      this.problems.push(`${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
    }
    return value;
  }
}

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const read = new EnvReader(env);

  const databaseUrl = read.string('DATABASE_URL', 'sqlite:./data/gatehouse.db');
  if (!/^sqlite:.+/.test(databaseUrl) && !/^postgres(ql)?:\/\/.+/.test(databaseUrl)) {
    read.problems.push('DATABASE_URL must be sqlite:<file path> or postgres://…');
  }

  const algorithm = read.oneOf('JWT_ALG', ALGORITHMS, 'EdDSA');
  const secret = read.raw('JWT_SECRET');
  if (algorithm === 'HS256' && (secret === undefined || Buffer.byteLength(secret) < 32)) {
    read.problems.push('JWT_ALG=HS256 needs JWT_SECRET of at least 32 bytes');
  }
  const keyEncryptionSecret = read.raw('KEY_ENCRYPTION_SECRET');
  if (keyEncryptionSecret !== undefined && Buffer.byteLength(keyEncryptionSecret) < 32) {
    read.problems.push('KEY_ENCRYPTION_SECRET must be at least 32 bytes');
  }
  const keyEncryptionSecretPrevious = read.raw('KEY_ENCRYPTION_SECRET_PREVIOUS');
  if (keyEncryptionSecretPrevious !== undefined && Buffer.byteLength(keyEncryptionSecretPrevious) < 32) {
    read.problems.push('KEY_ENCRYPTION_SECRET_PREVIOUS must be at least 32 bytes');
  }
  if (keyEncryptionSecretPrevious !== undefined && keyEncryptionSecret === undefined) {
    read.problems.push('KEY_ENCRYPTION_SECRET_PREVIOUS needs KEY_ENCRYPTION_SECRET (the new secret) as well');
  }

  const workers = readWorkers(read);
  const minLength = read.integer('PASSWORD_MIN_LENGTH', 15, 1, 128);
  const loginMaxFailures = read.integer('LOGIN_MAX_FAILURES', 10, 1, 1_000_000_000);
  const maxLength = read.integer('PASSWORD_MAX_LENGTH', 1024, 128, 4096);
  const corsOrigins = (read.raw('CORS_ORIGINS') ?? '').split(',').map((origin) => origin.trim()).filter(Boolean);
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) read.problems.push(`CORS_ORIGINS entry "${origin}" must be an origin like https://app.example.com`);
  }

  const host = read.string('HOST', '127.0.0.1');
  const port = read.integer('PORT', 2000, 0, 65535);
  // A bad PUBLIC_URL or JWT_ISSUER is reported (once, where it is read); the links then fall back to the listen address.
  const publicUrl = parsesAsUrl(read.url('PUBLIC_URL', undefined, ['http:', 'https:']) ?? read.raw('JWT_ISSUER')) ?? defaultIssuer(host, port);
  const config: Config = {
    host,
    port,
    databaseUrl,
    redisUrl: read.url('REDIS_URL', undefined, ['redis:', 'rediss:']),
    redisKeyPrefix: read.string('REDIS_KEY_PREFIX', 'gatehouse:'),
    workers,
    revocationSyncIntervalMs: read.durationMs('REVOCATION_SYNC_INTERVAL', 500, 100, 60_000),
    keyRotationDays: read.raw('KEY_ROTATION_DAYS') === undefined ? undefined : read.integer('KEY_ROTATION_DAYS', 90, 1, 3650),
    databaseTimeouts: {
      connectMs: read.durationMs('DB_CONNECT_TIMEOUT', 3000, 100, 120_000),
      queryMs: read.durationMs('DB_QUERY_TIMEOUT', 5000, 100, 600_000),
    },
    jwt: {
      algorithm,
      secret: algorithm === 'HS256' ? secret : undefined,
      issuer: read.url('JWT_ISSUER', undefined, ['http:', 'https:']) ?? defaultIssuer(host, port),
      audience: read.string('JWT_AUDIENCE', 'gatehouse'),
      accessTokenTtlSeconds: read.duration('ACCESS_TOKEN_TTL', 900, 10, 86400),
      clientTokenTtlSeconds: read.duration('CLIENT_TOKEN_TTL', 300, 10, 86400),
      refreshTokenTtlSeconds: read.duration('REFRESH_TOKEN_TTL', 2592000, 60, 31536000),
      refreshReuseGraceSeconds: read.duration('REFRESH_REUSE_GRACE', 10, 0, 300),
    },
    password: { minLength, maxLength, breachedCheck: read.boolean('PASSWORD_BREACHED_CHECK', true) },
    limits: {
      rateLimitPerMinute: read.integer('RATE_LIMIT_PER_MINUTE', 30, 1, 1_000_000_000),
      loginMaxFailures,
      // Unset, it follows a raised LOGIN_MAX_FAILURES so the per-account budget is never the tighter one.
      loginMaxFailuresPerAccount: read.integer('LOGIN_MAX_FAILURES_PER_ACCOUNT', Math.max(100, loginMaxFailures), 1, 1_000_000_000),
      bodyLimitBytes: read.size('BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
      introspectionPerMinute: read.integer('INTROSPECTION_RATE_LIMIT', 60_000, 1, 1_000_000_000),
      revocationFeedPerMinute: read.integer('REVOCATION_FEED_RATE_LIMIT', 3000, 1, 1_000_000_000),
      ipv6PrefixLength: read.integer('IPV6_PREFIX_LENGTH', 64, 1, 128),
    },
    hashing: {
      // Each worker process has its own threads: by default the cores are shared out among the workers.
      poolSize: read.integer('HASH_POOL_SIZE', Math.max(1, Math.floor(availableParallelism() / workers)), 1, 256),
      queueMax: read.integer('HASH_QUEUE_MAX', 64, 1, 1_000_000),
    },
    sessions: {
      maxAgeSeconds: read.duration('SESSION_MAX_AGE', 90 * 86400, 60, 10 * 365 * 86400),
      reauthMaxAgeSeconds: read.duration('REAUTH_MAX_AGE', 300, 0, 86400),
    },
    usersList: read.oneOf('USERS_LIST', ['self', 'all'] as const, 'self'),
    trustProxy: readTrustProxy(read),
    corsOrigins,
    keyEncryptionSecret,
    keyEncryptionSecretPrevious,
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    adminEmail: read.raw('ADMIN_EMAIL'),
    roles: readRoles(read),
    production: read.raw('NODE_ENV') === 'production',
    publicUrl,
    mail: {
      smtpUrl: read.url('SMTP_URL', undefined, ['smtp:', 'smtps:']),
      from: read.string('MAIL_FROM', `Gatehouse <no-reply@${new URL(publicUrl).hostname}>`),
      templatesDir: read.raw('MAIL_TEMPLATES_DIR'),
    },
    requireEmailVerification: read.boolean('REQUIRE_EMAIL_VERIFICATION', false),
    totpIssuer: read.string('TOTP_ISSUER', 'Gatehouse'),
    webauthn: {
      rpId: read.string('WEBAUTHN_RP_ID', new URL(publicUrl).hostname),
      rpName: read.string('WEBAUTHN_RP_NAME', 'Gatehouse'),
      origins: (read.raw('WEBAUTHN_ORIGINS') ?? new URL(publicUrl).origin).split(',').map((origin) => origin.trim()).filter(Boolean),
    },
    auditRetentionDays: read.integer('AUDIT_RETENTION_DAYS', 365, 0, 36500),
    metrics: {
      token: readMetricsToken(read),
      port: read.raw('METRICS_PORT') === undefined ? undefined : read.integer('METRICS_PORT', 9464, 1, 65535),
      host: read.string('METRICS_HOST', '127.0.0.1'),
    },
  };
  if (config.limits.loginMaxFailuresPerAccount < config.limits.loginMaxFailures) {
    read.problems.push('LOGIN_MAX_FAILURES_PER_ACCOUNT must be at least LOGIN_MAX_FAILURES');
  }
  if (config.jwt.refreshReuseGraceSeconds >= config.jwt.refreshTokenTtlSeconds) {
    read.problems.push('REFRESH_REUSE_GRACE must be shorter than REFRESH_TOKEN_TTL');
  }
  // Verification and password reset send mail; in production a message must not end up in a log instead (src/mail/mailer.ts).
  if (config.production && config.mail.smtpUrl === undefined) read.problems.push(SMTP_REQUIRED_IN_PRODUCTION);

  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

/**
 * Without JWT_ISSUER the issuer is the address the service listens on, so discovery clients that
 * compare the issuer with the URL they fetched (RFC 8414 section 3.3) accept it. Loopback and
 * wildcard addresses become `localhost`; a public deployment sets JWT_ISSUER to its public URL.
 */
export function defaultIssuer(host: string, port: number): string {
  const local = ['127.0.0.1', '::1', '0.0.0.0', '::', 'localhost', ''].includes(host);
  const name = local ? 'localhost' : isIP(host) === 6 ? `[${host}]` : host;
  return port === 80 ? `http://${name}` : `http://${name}:${port}`;
}

/** The URL without trailing slashes when it parses as http(s), else undefined. */
function parsesAsUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? value.replace(/\/+$/, '') : undefined;
  } catch {
    return undefined;
  }
}

/** A role name: what a token's roles claim and `ROLES` may hold. */
export const ROLE_PATTERN = /^[a-z][a-z0-9_.:-]{0,63}$/;

/** ROLES: comma-separated role names; `user` and `admin` are always there (the default role and the operator's). */
function readRoles(read: EnvReader): string[] {
  const listed = (read.raw('ROLES') ?? 'user,admin').split(',').map((role) => role.trim()).filter(Boolean);
  for (const role of listed) {
    if (!ROLE_PATTERN.test(role)) read.problems.push(`ROLES entry "${role}" must be lowercase letters, digits and _ . : - (starting with a letter, at most 64)`);
  }
  return [...new Set(['user', 'admin', ...listed])];
}

/** METRICS_TOKEN: long enough that guessing it is hopeless (it guards process and traffic details, not accounts). */
function readMetricsToken(read: EnvReader): string | undefined {
  const token = read.raw('METRICS_TOKEN');
  if (token !== undefined && token.length < 16) read.problems.push('METRICS_TOKEN must be at least 16 characters');
  return token;
}

/** WORKERS: a number, or `auto` for one per core. */
function readWorkers(read: EnvReader): number {
  const value = read.raw('WORKERS');
  if (value?.toLowerCase() === 'auto') return availableParallelism();
  return read.integer('WORKERS', 1, 1, 256);
}

/**
 * TRUST_PROXY names who may speak for the client in X-Forwarded-For. A bare `true` would
 * let any client write its own address there, so it is refused with what to write instead.
 */
function readTrustProxy(read: EnvReader): TrustProxy {
  const value = read.raw('TRUST_PROXY');
  if (value === undefined || ['false', '0', 'no', 'off'].includes(value.toLowerCase())) return false;
  if (['true', 'yes', 'on'].includes(value.toLowerCase())) {
    read.problems.push(
      'TRUST_PROXY=true would trust an X-Forwarded-For any client can write; list your proxies instead, ' +
        'e.g. TRUST_PROXY=10.0.0.0/8,192.168.1.10 (addresses or CIDRs), or give the number of proxies in front, e.g. TRUST_PROXY=1',
    );
    return false;
  }
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops < 1 || hops > 10) read.problems.push(`TRUST_PROXY hop count must be from 1 to 10 (got "${value}")`);
    return { hops };
  }
  const addresses = value.split(',').map((entry) => entry.trim()).filter(Boolean);
  for (const entry of addresses) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const maxPrefix = family === 6 ? 128 : 32;
    const prefixValid = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !prefixValid || rest.length > 0) {
      read.problems.push(`TRUST_PROXY entry "${entry}" must be an IP address or a CIDR like 10.0.0.0/8 (or the whole value a hop count)`);
    }
  }
  return { addresses };
}

function deepFreeze<T extends object>(value: T): Readonly<T> {
  for (const child of Object.values(value)) {
    if (child && typeof child === 'object') deepFreeze(child);
  }
  return Object.freeze(value);
}
