import type { AuditLog, RequestContext } from '../audit/events.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { CounterStore } from '../abuse/counter-store.ts';
import type { Kysely } from 'kysely';
import type { Database } from '../storage/schema.ts';
import type { EmailTokenPurpose } from './email-tokens.ts';

export interface EmailFlowDeps {
  db: Kysely<Database>;
  clock: Clock;
  config: Pick<Config, 'publicUrl' | 'requireEmailVerification'>;
  mailer: Pick<Mailer, 'send' | 'afterAnswer'>;
  shared: { counters: CounterStore };
  audit: Pick<AuditLog, 'record'>;
}

/** Messages of one kind one address receives per hour at most: a flood of requests does not become a flood of mail. */
export const MESSAGES_PER_ADDRESS_PER_HOUR = 3;
/** Forgot-password and public resend requests one client network may make per hour (429 beyond). */
export const REQUESTS_PER_CLIENT_PER_HOUR = 20;
const HOUR = 3600;

/** Where each link lands: a page Gatehouse serves (http/routes/account-email.ts) that POSTs the token. */
export const LINK_PATHS: Readonly<Record<EmailTokenPurpose, string>> = Object.freeze({
  verify_email: '/account/verify-email',
  reset_password: '/account/reset-password',
  change_email: '/account/confirm-email',
});

export function emailLink(config: Pick<Config, 'publicUrl'>, purpose: EmailTokenPurpose, token: string): string {
  return `${config.publicUrl.replace(/\/+$/, '')}${LINK_PATHS[purpose]}?token=${encodeURIComponent(token)}`;
}

/**
 * Counts a message to this address (whether or not it is registered, so the count says nothing)
 * and says whether it may go. Counted before the check, atomically in the shared store: concurrent
 * requests cannot outrun it, and every worker and instance shares the budget.
 */
export async function mayMailAddress(deps: Pick<EmailFlowDeps, 'shared' | 'clock'>, purpose: EmailTokenPurpose, emailNormalized: string): Promise<boolean> {
  const { count } = await deps.shared.counters.increment(`mail:${purpose}:${emailNormalized}`, HOUR, deps.clock.nowSeconds());
  return count <= MESSAGES_PER_ADDRESS_PER_HOUR;
}

/** The per-client budget of the public mail-sending routes: an answer that does not depend on the address, so 429 reveals nothing. */
export async function countClientRequest(deps: Pick<EmailFlowDeps, 'shared' | 'clock'>, scope: string, network: string): Promise<void> {
  const now = deps.clock.nowSeconds();
  const { count, resetAt } = await deps.shared.counters.increment(`${scope}:client:${network}`, HOUR, now);
  if (count > REQUESTS_PER_CLIENT_PER_HOUR) throw new AppError('rate_limited', 'too many requests from this address', { retryAfterSeconds: Math.max(1, resetAt - now) });
}

/**
 * The name a message may greet its reader with: the account's name only once the address is verified.
 * Before that the name is whatever someone typed at signup, perhaps a stranger using this address, and a
 * message we send must not carry a stranger's words into someone else's mailbox (spam, phishing text).
 */
export function addresseeName(user: { name: string; email_verified_at: number | string | null }): string {
  return user.email_verified_at === null ? '' : user.name;
}

export function linkInvalid(): AppError {
  return new AppError('link_invalid', 'the token is invalid, expired or already used');
}

export function withContext(context: RequestContext | undefined): { context?: RequestContext } {
  return context ? { context } : {};
}
