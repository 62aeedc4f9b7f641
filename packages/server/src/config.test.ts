import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const HS_SECRET = 'x'.repeat(32);

/** The ConfigError that loadConfig throws for env, or a failure if it does not throw one. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('uses the defaults of DESIGN.md with an empty environment', () => {
    expect(loadConfig({})).toEqual({
      host: '127.0.0.1',
      port: 2000,
      databaseUrl: 'sqlite:./data/gatehouse.db',
      redisUrl: undefined,
      redisKeyPrefix: 'gatehouse:',
      workers: 1,
      revocationSyncIntervalMs: 500,
      keyRotationDays: undefined,
      databaseTimeouts: { connectMs: 3000, queryMs: 5000 },
      jwt: {
        algorithm: 'EdDSA',
        secret: undefined,
        issuer: 'http://localhost:2000',
        audience: 'gatehouse',
        accessTokenTtlSeconds: 900,
        clientTokenTtlSeconds: 300,
        refreshTokenTtlSeconds: 2592000,
        refreshReuseGraceSeconds: 10,
      },
      password: { minLength: 15, maxLength: 1024, breachedCheck: true },
      limits: { rateLimitPerMinute: 30, loginMaxFailures: 10, loginMaxFailuresPerAccount: 100, bodyLimitBytes: 64 * 1024, introspectionPerMinute: 60000, revocationFeedPerMinute: 3000, ipv6PrefixLength: 64 },
      hashing: { poolSize: availableParallelism(), queueMax: 64 },
      sessions: { maxAgeSeconds: 90 * 86400, reauthMaxAgeSeconds: 300 },
      usersList: 'self',
      trustProxy: false,
      corsOrigins: [],
      keyEncryptionSecret: undefined,
      logLevel: 'info',
      adminEmail: undefined,
      roles: ['user', 'admin'],
      production: false,
      publicUrl: 'http://localhost:2000',
      mail: { smtpUrl: undefined, from: 'Gatehouse <no-reply@localhost>', templatesDir: undefined },
      requireEmailVerification: false,
      totpIssuer: 'Gatehouse',
      webauthn: { rpId: 'localhost', rpName: 'Gatehouse', origins: ['http://localhost:2000'] },
      auditRetentionDays: 365,
      metrics: { token: undefined, port: undefined, host: '127.0.0.1' },
    });
  });

  it('reads ROLES (user and admin always there), AUDIT_RETENTION_DAYS and the metrics settings, refusing bad values', () => {
    expect(loadConfig({ ROLES: 'editor, billing.read ,editor' }).roles).toEqual(['user', 'admin', 'editor', 'billing.read']);
    expect(loadConfig({ AUDIT_RETENTION_DAYS: '0' }).auditRetentionDays).toBe(0);
    expect(loadConfig({ METRICS_TOKEN: 'a'.repeat(16), METRICS_PORT: '9464', METRICS_HOST: '10.0.0.5' }).metrics).toEqual({ token: 'a'.repeat(16), port: 9464, host: '10.0.0.5' });
    expect(() => loadConfig({ ROLES: 'user,Admin Role' })).toThrow(/ROLES entry "Admin Role"/);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN must be at least 16 characters/);
    expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT must be an integer/);
    expect(() => loadConfig({ AUDIT_RETENTION_DAYS: '-1' })).toThrow(/AUDIT_RETENTION_DAYS/);
  });

  it('treats empty and blank values as unset', () => {
    expect(loadConfig({ PORT: '', JWT_ALG: '  ', DATABASE_URL: '' })).toMatchObject({ port: 2000, databaseUrl: 'sqlite:./data/gatehouse.db', jwt: { algorithm: 'EdDSA' } });
  });

  it('reads every variable of the table', () => {
    const config = loadConfig({
      HOST: '0.0.0.0',
      PORT: '8080',
      DATABASE_URL: 'postgres://gatehouse@db:5432/gatehouse',
      REDIS_URL: 'redis://cache:6379',
      JWT_ALG: 'RS256',
      JWT_ISSUER: 'https://auth.example.com',
      JWT_AUDIENCE: 'api',
      ACCESS_TOKEN_TTL: '600',
      REFRESH_TOKEN_TTL: '86400',
      REFRESH_REUSE_GRACE: '5',
      PASSWORD_MIN_LENGTH: '12',
      PASSWORD_BREACHED_CHECK: 'false',
      RATE_LIMIT_PER_MINUTE: '60',
      LOGIN_MAX_FAILURES: '5',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '50',
      IPV6_PREFIX_LENGTH: '56',
      HASH_POOL_SIZE: '3',
      HASH_QUEUE_MAX: '10',
      SESSION_MAX_AGE: '30d',
      REAUTH_MAX_AGE: '0',
      USERS_LIST: 'all',
      TRUST_PROXY: '10.0.0.0/8, 192.168.1.10,::1',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000',
      BODY_LIMIT: '1mb',
      KEY_ENCRYPTION_SECRET: 'k'.repeat(32),
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      databaseUrl: 'postgres://gatehouse@db:5432/gatehouse',
      redisUrl: 'redis://cache:6379',
      jwt: { algorithm: 'RS256', issuer: 'https://auth.example.com', audience: 'api', accessTokenTtlSeconds: 600, refreshTokenTtlSeconds: 86400, refreshReuseGraceSeconds: 5 },
      password: { minLength: 12, breachedCheck: false },
      limits: { rateLimitPerMinute: 60, loginMaxFailures: 5, loginMaxFailuresPerAccount: 50, bodyLimitBytes: 1024 * 1024, introspectionPerMinute: 60000, revocationFeedPerMinute: 3000, ipv6PrefixLength: 56 },
      hashing: { poolSize: 3, queueMax: 10 },
      sessions: { maxAgeSeconds: 30 * 86400, reauthMaxAgeSeconds: 0 },
      usersList: 'all',
      trustProxy: { addresses: ['10.0.0.0/8', '192.168.1.10', '::1'] },
      corsOrigins: ['https://app.example.com', 'http://localhost:3000'],
      keyEncryptionSecret: 'k'.repeat(32),
      logLevel: 'debug',
    });
  });

  it('reads the scale-out settings: WORKERS (a number or auto), durations in ms, s or m', () => {
    const config = loadConfig({
      WORKERS: '3',
      REDIS_KEY_PREFIX: 'team-a:',
      REVOCATION_SYNC_INTERVAL: '250ms',
      KEY_ROTATION_DAYS: '30',
      DB_CONNECT_TIMEOUT: '2s',
      DB_QUERY_TIMEOUT: '1m',
    });
    expect(config).toMatchObject({
      workers: 3,
      redisKeyPrefix: 'team-a:',
      revocationSyncIntervalMs: 250,
      keyRotationDays: 30,
      databaseTimeouts: { connectMs: 2000, queryMs: 60_000 },
    });
    expect(loadConfig({ WORKERS: 'auto' }).workers).toBe(availableParallelism());
    // Each worker has its own hashing threads: by default the cores are shared out.
    expect(loadConfig({ WORKERS: String(availableParallelism()) }).hashing.poolSize).toBe(1);
    for (const [name, value] of [['WORKERS', '0'], ['WORKERS', 'many'], ['REVOCATION_SYNC_INTERVAL', '10ms'], ['DB_QUERY_TIMEOUT', 'soon'], ['KEY_ROTATION_DAYS', '0']]) {
      expect(configError({ [name!]: value! }).problems[0]).toContain(name);
    }
  });

  it('raises the per-account failure budget with LOGIN_MAX_FAILURES unless it is set', () => {
    expect(loadConfig({ LOGIN_MAX_FAILURES: '500' }).limits.loginMaxFailuresPerAccount).toBe(500);
    expect(loadConfig({ LOGIN_MAX_FAILURES: '5' }).limits.loginMaxFailuresPerAccount).toBe(100);
    expect(configError({ LOGIN_MAX_FAILURES: '500', LOGIN_MAX_FAILURES_PER_ACCOUNT: '100' }).problems[0]).toMatch(/LOGIN_MAX_FAILURES_PER_ACCOUNT/);
  });

  it('reads TRUST_PROXY as a hop count or a list, and refuses a bare true with what to write instead', () => {
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toEqual({ hops: 2 });
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    const error = configError({ TRUST_PROXY: 'true' });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/TRUST_PROXY=true would trust/);
    expect(error.problems[0]).toMatch(/TRUST_PROXY=10\.0\.0\.0\/8/);
    expect(error.problems[0]).toMatch(/TRUST_PROXY=1/);
    expect(configError({ TRUST_PROXY: '10.0.0.0/33' }).problems[0]).toMatch(/10\.0\.0\.0\/33/);
    expect(configError({ TRUST_PROXY: 'proxy.local' }).problems[0]).toMatch(/proxy\.local/);
    expect(configError({ TRUST_PROXY: '11' }).problems[0]).toMatch(/hop count/);
  });

  it('defaults the issuer to the address it listens on, loopback and wildcards as localhost', () => {
    expect(loadConfig({ PORT: '8080' }).jwt.issuer).toBe('http://localhost:8080');
    expect(loadConfig({ HOST: '0.0.0.0', PORT: '3000' }).jwt.issuer).toBe('http://localhost:3000');
    expect(loadConfig({ HOST: 'auth.internal', PORT: '80' }).jwt.issuer).toBe('http://auth.internal');
    expect(loadConfig({ HOST: 'fd00::5', PORT: '2000' }).jwt.issuer).toBe('http://[fd00::5]:2000');
    expect(loadConfig({ HOST: '0.0.0.0', JWT_ISSUER: 'https://auth.example.com' }).jwt.issuer).toBe('https://auth.example.com');
  });

  it('accepts durations like 15m, 12h and 30d', () => {
    const config = loadConfig({ ACCESS_TOKEN_TTL: '15m', REFRESH_TOKEN_TTL: '30d', REFRESH_REUSE_GRACE: '30s' });
    expect(config.jwt).toMatchObject({ accessTokenTtlSeconds: 900, refreshTokenTtlSeconds: 30 * 86400, refreshReuseGraceSeconds: 30 });
    expect(loadConfig({ ACCESS_TOKEN_TTL: '1h' }).jwt.accessTokenTtlSeconds).toBe(3600);
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.jwt)).toBe(true);
    expect(() => {
      (config.jwt as { audience: string }).audience = 'changed';
    }).toThrow(TypeError);
  });

  it('lists every bad value together in one ConfigError', () => {
    const error = configError({ PORT: 'abc', JWT_ALG: 'XX', ACCESS_TOKEN_TTL: '-1' });
    expect(error.problems).toHaveLength(3);
    expect(error.problems.join('\n')).toMatch(/PORT/);
    expect(error.problems.join('\n')).toMatch(/JWT_ALG/);
    expect(error.problems.join('\n')).toMatch(/ACCESS_TOKEN_TTL/);
    for (const problem of error.problems) expect(error.message).toContain(problem);
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', '20.5'],
    ['DATABASE_URL', 'mysql://db/gatehouse'],
    ['DATABASE_URL', 'sqlite:'],
    ['REDIS_URL', 'http://cache:6379'],
    ['JWT_ALG', 'none'],
    ['JWT_ISSUER', 'not a url'],
    ['ACCESS_TOKEN_TTL', '0'],
    ['ACCESS_TOKEN_TTL', '15 minutes'],
    ['ACCESS_TOKEN_TTL', '2d'],
    ['REFRESH_TOKEN_TTL', 'forever'],
    ['PASSWORD_MIN_LENGTH', '0'],
    ['PASSWORD_MIN_LENGTH', '129'],
    ['PASSWORD_BREACHED_CHECK', 'maybe'],
    ['RATE_LIMIT_PER_MINUTE', '0'],
    ['LOGIN_MAX_FAILURES', '-3'],
    ['TRUST_PROXY', 'sometimes'],
    ['TRUST_PROXY', 'true'],
    ['IPV6_PREFIX_LENGTH', '129'],
    ['HASH_QUEUE_MAX', '0'],
    ['HASH_POOL_SIZE', 'many'],
    ['SESSION_MAX_AGE', 'forever'],
    ['USERS_LIST', 'everyone'],
    ['LOGIN_MAX_FAILURES_PER_ACCOUNT', '5'],
    ['CORS_ORIGINS', '*'],
    ['CORS_ORIGINS', 'https://app.example.com/path'],
    ['BODY_LIMIT', '10'],
    ['BODY_LIMIT', '1tb'],
    ['KEY_ENCRYPTION_SECRET', 'short'],
    ['LOG_LEVEL', 'loud'],
  ])('refuses %s=%j, naming the variable', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(name);
  });

  it('refuses a grace period as long as the refresh token lifetime', () => {
    expect(configError({ REFRESH_TOKEN_TTL: '60', REFRESH_REUSE_GRACE: '60' }).problems[0]).toMatch(/REFRESH_REUSE_GRACE/);
  });

  describe('HS256', () => {
    it('needs a JWT_SECRET', () => {
      expect(configError({ JWT_ALG: 'HS256' }).problems).toEqual([expect.stringMatching(/JWT_SECRET/)]);
    });

    it('refuses a JWT_SECRET shorter than 32 bytes, without echoing it', () => {
      const secret = 'y'.repeat(31);
      const error = configError({ JWT_ALG: 'HS256', JWT_SECRET: secret });
      expect(error.problems).toEqual([expect.stringMatching(/JWT_SECRET.*32 bytes/)]);
      expect(error.message).not.toContain(secret);
    });

    it('accepts a 32-byte JWT_SECRET', () => {
      expect(loadConfig({ JWT_ALG: 'HS256', JWT_SECRET: HS_SECRET }).jwt).toMatchObject({ algorithm: 'HS256', secret: HS_SECRET });
    });

    it('ignores JWT_SECRET for the asymmetric algorithms', () => {
      expect(loadConfig({ JWT_ALG: 'EdDSA', JWT_SECRET: HS_SECRET }).jwt.secret).toBeUndefined();
    });
  });

  describe('secrets in error messages', () => {
    it.each([
      ['DATABASE_URL', 'mysql://admin:hunter2-db-password@db.internal/gatehouse'],
      ['DATABASE_URL', 'postgres:/admin:hunter2-db-password@db.internal/gatehouse'],
      ['REDIS_URL', 'http://:hunter2-db-password@cache.internal:6379'],
      ['REDIS_URL', 'redis//:hunter2-db-password@cache'],
    ])('never echoes a password from %s', (name, value) => {
      const error = configError({ [name]: value, PORT: 'abc' });
      expect(error.problems).toHaveLength(2);
      expect(error.message).not.toContain('hunter2');
      expect(error.problems.join('\n')).not.toContain('hunter2');
      expect(error.message).toContain(name);
    });

    it('never echoes KEY_ENCRYPTION_SECRET', () => {
      const error = configError({ KEY_ENCRYPTION_SECRET: 'tooshort-secret' });
      expect(error.message).not.toContain('tooshort-secret');
    });
  });
});
