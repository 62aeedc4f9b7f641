/** The service's own timers: revocation sync, signing-key reload and scheduled rotation, and the purge of expired rows. */
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/events.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { rotationDetails } from '../keys/rotation.ts';
import { deleteDeadEmailTokens } from '../auth/email-tokens.ts';
import { deleteDeadMfaTickets } from '../mfa/login-step.ts';
import { deleteAuditEventsBefore } from '../storage/audit.ts';
import { deleteEndedSessions, deleteExpiredRefreshTokens } from '../storage/sessions.ts';
import type { Database } from '../storage/schema.ts';
import { REVOCATION_MARGIN_SECONDS, type Denylist } from '../tokens/denylist.ts';

export interface PurgeDeps {
  db: Kysely<Database>;
  clock: Clock;
  denylist: Denylist;
  accessTokenTtlSeconds: number;
  /** AUDIT_RETENTION_DAYS (0 keeps every event); without it the audit log is left alone. */
  config?: Pick<Config, 'auditRetentionDays'>;
}

export interface PurgeReport {
  sessionsDeleted: number;
  refreshTokensDeleted: number;
  auditEventsDeleted: number;
  /** MFA tickets past their 5 minutes or spent (mfa/login-step.ts). */
  mfaTicketsDeleted: number;
  /** Emailed links past their lifetime or spent (auth/email-tokens.ts). */
  emailTokensDeleted: number;
}

const DAY_MS = 86_400_000;

/** Deletes rows nothing can use any more; runs inside the process, no external cron. */
export async function purgeExpired(deps: PurgeDeps): Promise<PurgeReport> {
  const now = deps.clock.nowSeconds();
  // A session ended (expired or revoked) must outlive its last access token, issued at most a margin
  // after the end, or the denylist could not be rebuilt at start; then nothing needs it any more.
  const sessionsDeleted = await deleteEndedSessions(deps.db, now - deps.accessTokenTtlSeconds - REVOCATION_MARGIN_SECONDS);
  const refreshTokensDeleted = await deleteExpiredRefreshTokens(deps.db, now);
  deps.denylist.prune();
  const retentionDays = deps.config?.auditRetentionDays ?? 0;
  const auditEventsDeleted = retentionDays > 0 ? await deleteAuditEventsBefore(deps.db, deps.clock.now().getTime() - retentionDays * DAY_MS) : 0;
  const mfaTicketsDeleted = await deleteDeadMfaTickets(deps.db, now);
  const emailTokensDeleted = await deleteDeadEmailTokens(deps.db, now);
  return { sessionsDeleted, refreshTokensDeleted, auditEventsDeleted, mfaTicketsDeleted, emailTokensDeleted };
}

/** How often an instance checks whether KEY_ROTATION_DAYS has come: rotation waits at most this long past it. */
export const KEY_ROTATION_CHECK_INTERVAL_MS = 60 * 60_000;

export interface BackgroundTasks {
  stop(): void;
}

/**
 * Polls revocations made by other instances every few seconds, re-reads signing keys
 * (a rotation by `gatehouse keys rotate` or another instance) every minute, checks for a
 * scheduled key rotation every hour, and purges expired rows every few minutes.
 * Timers are unref'd: they never keep the process alive.
 */
export function startBackgroundTasks(
  deps: PurgeDeps & { keys: Pick<KeyStore, 'reload'> & Partial<Pick<KeyStore, 'rotateIfDue'>>; audit?: Pick<AuditLog, 'record'> },
  options: {
    syncIntervalMs: number;
    keyReloadIntervalMs: number;
    purgeIntervalMs: number;
    keyRotationCheckIntervalMs?: number;
    onError: (error: unknown) => void;
  },
): BackgroundTasks {
  const { keys } = deps;
  const checkKeyRotation = () =>
    keys
      .rotateIfDue?.()
      .then((timeline) => {
        // Only the instance that inserted the key gets a timeline back: one event per rotation.
        if (timeline) deps.audit?.record({ action: 'key.rotate', actor: { type: 'system' }, subject: { type: 'key', id: timeline.kid }, details: rotationDetails(timeline, false) });
      })
      .catch(options.onError);
  const timers = [
    setInterval(() => deps.denylist.sync().catch(options.onError), options.syncIntervalMs),
    setInterval(() => deps.keys.reload().catch(options.onError), options.keyReloadIntervalMs),
    setInterval(() => purgeExpired(deps).catch(options.onError), options.purgeIntervalMs),
    // Scheduled rotation (KEY_ROTATION_DAYS, a no-op when unset) runs on every instance; the key
    // store lets only one of them insert the new key. Checked at start too: instances restarted more
    // often than hourly would otherwise never check.
    ...(keys.rotateIfDue
      ? [setTimeout(checkKeyRotation, 0), setInterval(checkKeyRotation, options.keyRotationCheckIntervalMs ?? KEY_ROTATION_CHECK_INTERVAL_MS)]
      : []),
  ];
  for (const timer of timers) timer.unref();
  return {
    stop() {
      for (const timer of timers) clearInterval(timer);
    },
  };
}
