import type { Kysely } from 'kysely';
import { createIpRateLimiter, type IpRateLimiter } from './abuse/ip-rate-limit.ts';
import { createLoginLockout, SECOND_STEP_STREAK, type LoginLockout } from './abuse/login-lockout.ts';
import { createAuditLog } from './audit/audit-log.ts';
import type { AuditLog } from './audit/events.ts';
import { systemClock, type Clock } from './clock.ts';
import { createClientStatusCache, type ClientStatusCache } from './clients/status-cache.ts';
import type { Config } from './config.ts';
import { openKeyStore, type KeyStore } from './keys/key-store.ts';
import { createMailer, type Mailer } from './mail/mailer.ts';
import { loadServerSecret } from './keys/server-secret.ts';
import { createPasswordHasher, createPasswordPolicy, OWASP_ARGON2ID, type Argon2Parameters, type PasswordHasher, type PasswordPolicy } from './passwords/index.ts';
import type { DatabaseStats, DbOptions, DialectName } from './storage/db.ts';
import { openDatabaseWithRetry, type DatabaseRetryOptions } from './storage/open-with-retry.ts';
import type { Database } from './storage/schema.ts';
import { createAccessTokens, type AccessTokens } from './tokens/access-tokens.ts';
import { createDenylist, type Denylist } from './tokens/denylist.ts';
import { createSharedState, type SharedState, type SharedStateLog } from './shared/index.ts';
import { promoteAdmin } from './users/admin.ts';
import { createUserStatusCache, type UserStatusCache } from './users/status-cache.ts';

/** Everything the domain and HTTP layers use, wired in one place. */
export interface Deps {
  config: Readonly<Config>;
  clock: Clock;
  /** The database, through Kysely; storage/db.ts has the dialect-specific parts (ping, close). */
  db: Kysely<Database>;
  /** Where the data lives and whether this start created it empty; main.ts logs it. */
  databaseInfo: { dialect: DialectName; location: string; created: boolean };
  /** The connection pool and the count of failed queries, for metrics. */
  databaseStats(): DatabaseStats;
  /** Also the hashing pool's stats() (threads, busy, queued, rejected) for logs and metrics. */
  hasher: PasswordHasher;
  passwordPolicy: PasswordPolicy;
  keys: KeyStore;
  accessTokens: AccessTokens;
  denylist: Denylist;
  /** Counters, lockouts and revocation news shared with the other workers and instances. */
  shared: SharedState;
  ipRateLimiter: IpRateLimiter;
  loginLockout: LoginLockout;
  passwordChangeLockout: LoginLockout;
  /**
   * Wrong codes at the second step of a login, per user (scope mfa-login): per network, per hour, and a run
   * of consecutive failures only a right code or a new password clears (SECOND_STEP_STREAK).
   */
  mfaLoginLockout: LoginLockout;
  /**
   * Codes checked behind an access token once the password was right (disable, regenerate, adding a factor,
   * moving the address); per user (scope mfa), on the login second step's run of wrong codes too.
   */
  mfaLockout: LoginLockout;
  /** The first code that confirms an enrolment (scope mfa-enrol): budgets of its own, no run of wrong codes. */
  mfaEnrolLockout: LoginLockout;
  userStatus: UserStatusCache;
  /** Whether a client still exists and is enabled, at most a second old: client tokens live only as long as their client. */
  clientStatus: ClientStatusCache;
  /** The audit log: record() queues, a timer writes batches (audit/audit-log.ts); metrics listen to it. */
  audit: AuditLog & { stats(): { queued: number; dropped: number; written: number } };
  /** Verification, reset and email-change messages: SMTP_URL, or the log in development (src/mail/mailer.ts). */
  mailer: Mailer;
  /** What ADMIN_EMAIL did at start, for main.ts to log; undefined without it. */
  adminPromotion: { email: string; outcome: 'promoted' | 'already_admin' | 'no_such_user' } | undefined;
  /** Server secret from which each refresh token's child is derived (retry grace). */
  refreshDerivationSecret: Buffer;
  /** Server secret the WebAuthn user handles are derived under (an HMAC of the user id). */
  webauthnUserHandleSecret: Buffer;
  /** Server secret recovery codes are hashed under (an HMAC of the user id and the code). */
  recoveryCodeSecret: Buffer;
  close(): Promise<void>;
}

export interface DepsOverrides {
  clock?: Clock;
  /** A hasher owned by the caller (tests share one across apps); deps.close() leaves it open. */
  hasher?: PasswordHasher;
  /** Told when the database drops a pooled connection (the pool reconnects by itself). */
  onDatabaseConnectionLost?: DbOptions['onConnectionLost'];
  /** Argon2 cost of the hasher built from config (tests pass cheap parameters); OWASP's by default. */
  argon2Parameters?: Argon2Parameters;
  /** Where shared-state warnings go (Redis down, fallback); stderr by default. */
  sharedStateLog?: SharedStateLog;
  /** Waiting for an unreachable database at start: where each retry is told (stderr by default), a signal to stop waiting. */
  databaseRetry?: DatabaseRetryOptions;
  /** Waits between delivery attempts of a message the SMTP server refused for now (tests shorten them). */
  mailRetryDelaysMs?: readonly number[];
  /** Where the mailer logs (and, without SMTP_URL, writes the messages); the shared-state log by default. */
  mailLog?: SharedStateLog;
}

const stderrLog: SharedStateLog = (level, fields, message) => process.stderr.write(`gatehouse: ${level}: ${message} ${JSON.stringify(fields)}\n`);

/** The start-up line an operator reads while the database is away. */
export function databaseRetryMessage(notice: { location: string; code: string | undefined; delayMs: number }): string {
  return `database unreachable at ${notice.location} (${notice.code ?? 'no answer'}); retrying in ${notice.delayMs / 1000} s`;
}

export async function createDeps(config: Readonly<Config>, overrides: DepsOverrides = {}): Promise<Deps> {
  const clock = overrides.clock ?? systemClock;
  const { database, migration } = await openDatabaseWithRetry(config.databaseUrl, {
    timeouts: config.databaseTimeouts,
    ...(overrides.onDatabaseConnectionLost ? { onConnectionLost: overrides.onDatabaseConnectionLost } : {}),
    retry: { onRetry: (notice) => stderrLog('warn', { ...notice }, databaseRetryMessage(notice)), ...overrides.databaseRetry },
  });
  // After the database opens: a failed open then leaves no hashing threads behind.
  const hasher =
    overrides.hasher ??
    createPasswordHasher(overrides.argon2Parameters ?? OWASP_ARGON2ID, { threads: config.hashing.poolSize, queueMax: config.hashing.queueMax });
  try {
    const { createdDatabase } = migration;
    const db = database.kysely;
    const keys = await openKeyStore({ db, clock, config });
    // Loaded (or created) once, here, outside any request's transaction: creating one inside a transaction
    // could abort it on PostgreSQL when another instance creates the same secret at that moment.
    const secretDeps = { db, clock, keyEncryptionSecret: config.keyEncryptionSecret, keyEncryptionSecretPrevious: config.keyEncryptionSecretPrevious };
    const [refreshDerivationSecret, webauthnUserHandleSecret, recoveryCodeSecret] = await Promise.all([
      loadServerSecret(secretDeps, 'refresh-token-derivation'),
      loadServerSecret(secretDeps, 'webauthn_user_handle'),
      loadServerSecret(secretDeps, 'recovery_code_hmac'),
    ]);
    const adminPromotion = config.adminEmail ? { email: config.adminEmail, outcome: await promoteAdmin({ db, clock }, config.adminEmail) } : undefined;
    const denylist = createDenylist({ db, clock, accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds });
    await denylist.sync();
    const shared = await createSharedState(config, overrides.sharedStateLog ?? stderrLog);
    // Revocations made by other workers and instances reach this process's denylist at once.
    shared.revocations.subscribe((event) => denylist.addSessions(event.sessionIds, event.revokedAt));
    const { counters, lockouts } = shared;
    const audit = createAuditLog({ db, clock, log: overrides.sharedStateLog ?? stderrLog });
    const mailer = createMailer(config, {
      // LOG_LEVEL=silent (the tests) silences the development fallback too: the operator chose no log at all.
      // Not the shared-state log: its readers (and tests) count Redis and cluster warnings there.
      log: overrides.mailLog ?? (config.logLevel === 'silent' ? () => {} : stderrLog),
      ...(overrides.mailRetryDelaysMs ? { retryDelaysMs: overrides.mailRetryDelaysMs } : {}),
    });
    const { loginMaxFailures, loginMaxFailuresPerAccount } = config.limits;
    return {
      config,
      clock,
      db,
      databaseInfo: { dialect: database.dialect, location: database.location, created: createdDatabase },
      databaseStats: () => database.stats(),
      hasher,
      passwordPolicy: createPasswordPolicy({
        minLength: config.password.minLength,
        maxLength: config.password.maxLength,
        breachedCheck: config.password.breachedCheck,
      }),
      keys,
      accessTokens: createAccessTokens({ keys, clock, config }),
      denylist,
      shared,
      ipRateLimiter: createIpRateLimiter({ store: counters, clock, limitPerMinute: config.limits.rateLimitPerMinute }),
      loginLockout: createLoginLockout({ store: lockouts, clock, maxFailures: loginMaxFailures, maxFailuresPerAccount: loginMaxFailuresPerAccount }),
      passwordChangeLockout: createLoginLockout({
        store: lockouts,
        clock,
        maxFailures: loginMaxFailures,
        maxFailuresPerAccount: loginMaxFailuresPerAccount,
        scope: 'password-change',
      }),
      mfaLockout: createLoginLockout({
        store: lockouts,
        clock,
        maxFailures: loginMaxFailures,
        maxFailuresPerAccount: loginMaxFailuresPerAccount,
        scope: 'mfa',
        // Every code checked behind a session once its password was right (re-authentication, disable,
        // regenerate, moving the address) is on the second step's run of wrong codes: a session without a
        // second factor is no way around its lock. (Confirming an enrolment is on mfaEnrolLockout.)
        streak: SECOND_STEP_STREAK,
        streakScope: 'mfa-login',
      }),
      mfaEnrolLockout: createLoginLockout({
        store: lockouts,
        clock,
        maxFailures: loginMaxFailures,
        maxFailuresPerAccount: loginMaxFailuresPerAccount,
        scope: 'mfa-enrol',
      }),
      mfaLoginLockout: createLoginLockout({
        store: lockouts,
        clock,
        maxFailures: loginMaxFailures,
        maxFailuresPerAccount: loginMaxFailuresPerAccount,
        scope: 'mfa-login',
        streak: SECOND_STEP_STREAK,
      }),
      userStatus: createUserStatusCache({ db, clock }),
      clientStatus: createClientStatusCache({ db, clock }),
      refreshDerivationSecret,
      webauthnUserHandleSecret,
      recoveryCodeSecret,
      adminPromotion,
      audit,
      mailer,
      async close() {
        // First: deferred flow steps still write tokens and audit events.
        await mailer.close();
        await audit.close();
        // An injected hasher belongs to the caller (tests share one across apps).
        if (!overrides.hasher) await hasher.close();
        await shared.close();
        await database.close();
      },
    };
  } catch (error) {
    if (!overrides.hasher) await hasher.close();
    await database.close();
    throw error;
  }
}
