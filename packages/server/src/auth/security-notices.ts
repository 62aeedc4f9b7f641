import type { Kysely } from 'kysely';
import type { CounterStore } from '../abuse/counter-store.ts';
import type { Clock } from '../clock.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { Database } from '../storage/schema.ts';
import { findUserById } from '../storage/users.ts';
import { addresseeName, MESSAGES_PER_ADDRESS_PER_HOUR } from './email-common.ts';

/** What a security notice tells the account's owner about. */
export type SecurityEvent =
  | 'password_changed'
  | 'password_reset'
  | 'totp_enabled'
  | 'totp_disabled'
  | 'recovery_codes_regenerated'
  | 'passkey_added'
  | 'passkey_deleted'
  | 'mfa_login_locked';

/**
 * The clause each notice says, in our words only: nothing a client sent (a passkey's name, say) goes into
 * a message, so a thief cannot word the owner's warning.
 */
export const SECURITY_EVENT_TEXT: Readonly<Record<SecurityEvent, string>> = Object.freeze({
  password_changed: 'the password was changed',
  password_reset: 'the password was reset through an emailed link',
  totp_enabled: 'two-factor authentication with an authenticator app was turned on',
  totp_disabled: 'two-factor authentication was turned off',
  recovery_codes_regenerated: 'new recovery codes were made (the old ones no longer work)',
  passkey_added: 'a passkey was added',
  passkey_deleted: 'a passkey was removed',
  mfa_login_locked: 'someone gave the right password and then wrong authentication codes many times in a row, so that step is locked for a while',
});

/**
 * Notices a verified address receives per hour at most: a loop of changes does not become a flood of
 * mail. An unverified one gets at most MESSAGES_PER_ADDRESS_PER_HOUR (3), as for every other message.
 */
export const SECURITY_NOTICES_PER_ADDRESS_PER_HOUR = 10;
const HOUR = 3600;

export interface SecurityNoticeDeps {
  db: Kysely<Database>;
  clock: Clock;
  mailer: Pick<Mailer, 'send' | 'afterAnswer'>;
  shared: { counters: CounterStore };
}

/**
 * Tells the account's owner, at the address on the account, that a sign-in factor changed or that its
 * second step is being guessed. Runs after the answer (no request waits on the lookup, the shared count or
 * SMTP); the message carries no link and no secret.
 */
export function notifySecurityEvent(deps: SecurityNoticeDeps, userId: number, event: SecurityEvent): void {
  deps.mailer.afterAnswer(async () => {
    const user = await findUserById(deps.db, userId);
    if (!user) return;
    const now = deps.clock.nowSeconds();
    const { count } = await deps.shared.counters.increment(`mail:security_notice:${user.email_normalized}`, HOUR, now);
    // An unverified address may be a stranger's (someone signed up with it): no more than any other
    // message a stranger could make us send there.
    const limit = user.email_verified_at === null ? MESSAGES_PER_ADDRESS_PER_HOUR : SECURITY_NOTICES_PER_ADDRESS_PER_HOUR;
    if (count > limit) return;
    const name = addresseeName(user);
    deps.mailer.send({
      to: { name, address: user.email },
      template: 'security_notice',
      values: { name, email: user.email, event: SECURITY_EVENT_TEXT[event], time: new Date(now * 1000).toISOString(), link: '', expires: '', new_email: '' },
    });
  }, 'security_notice');
}
