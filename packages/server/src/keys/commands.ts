/** `gatehouse keys …`: list, rotate [--now], reencrypt. Each reads the same environment as the service. */
import { parseArgs } from 'node:util';
import { writeAuditEvent } from '../audit/audit-log.ts';
import { systemClock } from '../clock.ts';
import { loadConfig } from '../config.ts';
import { createDb } from '../storage/db.ts';
import { listVerificationKeys, type SigningKeyRow } from '../storage/signing-keys.ts';
import { openKeyStore } from './key-store.ts';
import { reencryptAtRest } from './reencrypt.ts';
import { JWKS_MAX_AGE_SECONDS, KEY_RELOAD_INTERVAL_SECONDS, activationOf, keyState, rotationDetails, type RotationTimeline } from './rotation.ts';

const SUBCOMMANDS = ['list', 'rotate', 'reencrypt'];

/** Returns the exit code; 2 with the usage for a command it does not know. */
export async function runKeysCommand(argv: string[], usage: string): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { now: { type: 'boolean' } } });
  } catch {
    parsed = undefined;
  }
  const subcommand = parsed?.positionals.join(' ') ?? '';
  const immediately = parsed?.values.now === true;
  if (!SUBCOMMANDS.includes(subcommand) || (immediately && subcommand !== 'rotate')) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }

  const config = loadConfig();
  const database = await createDb(config.databaseUrl);
  try {
    await database.migrate();
    if (subcommand === 'reencrypt') {
      // Before opening the key store, which would need every record readable already.
      const report = await reencryptAtRest(database.kysely, config);
      await writeAuditEvent(database.kysely, systemClock, {
        action: 'key.reencrypt',
        actor: { type: 'operator' },
        details: { signing_keys: report.signingKeys, server_secrets: report.serverSecrets, totp_secrets: report.totpSecrets, from: report.from },
      });
      process.stdout.write(
        `re-encrypted under KEY_ENCRYPTION_SECRET: ${report.signingKeys} signing keys, ${report.serverSecrets} server secrets, ${report.totpSecrets} TOTP secrets ` +
          `(were plaintext: ${report.from.plaintext}, under KEY_ENCRYPTION_SECRET_PREVIOUS: ${report.from.previous}, ` +
          `already under KEY_ENCRYPTION_SECRET: ${report.from.current})\n`,
      );
      return 0;
    }
    const keys = await openKeyStore({ db: database.kysely, clock: systemClock, config });
    if (subcommand === 'rotate') {
      const timeline = await keys.rotate({ immediately });
      await writeAuditEvent(database.kysely, systemClock, {
        action: 'key.rotate',
        actor: { type: 'operator' },
        subject: { type: 'key', id: timeline.kid },
        details: rotationDetails(timeline, immediately),
      });
      process.stdout.write(describeRotation(timeline));
      return 0;
    }
    const now = systemClock.nowSeconds();
    for (const row of await listVerificationKeys(database.kysely, now)) {
      process.stdout.write(`${row.kid}  ${row.algorithm}  created ${iso(row.created_at)}  ${describeState(row, now)}\n`);
    }
    return 0;
  } finally {
    await database.close();
  }
}

function describeState(row: SigningKeyRow, now: number): string {
  const state = keyState(row, now);
  if (state === 'pending') return `pending, signs from ${iso(activationOf(row))}`;
  if (state === 'retired') return `retired, published until ${iso(row.expires_at)}`;
  return row.retired_at === null ? 'active' : `active until ${iso(row.retired_at)}, published until ${iso(row.expires_at)}`;
}

function describeRotation(timeline: RotationTimeline): string {
  const lines = [`new signing key ${timeline.kid} (${timeline.algorithm})`];
  const delay = timeline.activatesAt - timeline.publishedAt;
  if (delay > 0) {
    lines.push(
      `  published in the JWKS now:      ${iso(timeline.publishedAt)}`,
      `  signs on every instance from:   ${iso(timeline.activatesAt)} (in ${delay} s: JWKS caches (max-age ${JWKS_MAX_AGE_SECONDS} s) and every instance (key reload every ${KEY_RELOAD_INTERVAL_SECONDS} s) see it first)`,
    );
  } else {
    lines.push(
      `  signs now (--now):              ${iso(timeline.activatesAt)}; other instances switch at their next key reload (within ${KEY_RELOAD_INTERVAL_SECONDS} s)`,
      `  resource servers that cached the JWKS refuse its tokens until they fetch it again (at most ${JWKS_MAX_AGE_SECONDS} s)`,
    );
  }
  for (const old of timeline.replaces) {
    lines.push(`  old key ${old.kid} published until: ${iso(old.publishedUntil)} (its last token has expired by then)`);
  }
  return `${lines.join('\n')}\n`;
}

function iso(epochSeconds: number | null): string {
  return new Date(Number(epochSeconds) * 1000).toISOString();
}
