/**
 * The rotation timeline. A new key is published in the JWKS at once and signs only from
 * `activatesAt`, once every JWKS cache and every instance has seen it; the key it replaces
 * stops signing then and stays published until its last token has expired.
 */
import type { SigningKeyRow } from '../storage/signing-keys.ts';
import { REVOCATION_MARGIN_SECONDS } from '../tokens/denylist.ts';

/** The JWKS answer's cache-control max-age: how long a resource server may keep a JWKS without a new key. */
export const JWKS_MAX_AGE_SECONDS = 300;
/** How often every instance re-reads the keys table (the key-reload timer main.ts starts). */
export const KEY_RELOAD_INTERVAL_SECONDS = 60;
/**
 * Slack on top of those two: a few missed reloads (a database blip), clock skew between instances
 * and resource servers, caches that keep a JWKS past its max-age (jose's createRemoteJWKSet keeps
 * one 10 minutes by default, counted from its fetch, which this covers too).
 */
const ACTIVATION_MARGIN_SECONDS = 240;
/** From `keys rotate` to the first token signed with the new key: 300 + 60 + 240 = 600 s. */
export const KEY_ACTIVATION_DELAY_SECONDS = JWKS_MAX_AGE_SECONDS + KEY_RELOAD_INTERVAL_SECONDS + ACTIVATION_MARGIN_SECONDS;
/** Past a retired key's last token: an instance whose clock runs a little behind may sign with it a moment late. */
export const RETIRED_KEY_MARGIN_SECONDS = REVOCATION_MARGIN_SECONDS;

export interface RotationTimeline {
  kid: string;
  algorithm: string;
  /** In the JWKS from now on. */
  publishedAt: number;
  /** Every instance signs with it from then (by its clock). */
  activatesAt: number;
  /** The keys it replaces: they sign until activatesAt and stay published until `publishedUntil`. */
  replaces: Array<{ kid: string; publishedUntil: number }>;
}

export type KeyState = 'pending' | 'active' | 'retired';

/** A key signs from its activation (since creation for keys older than activation times) until retired. */
export function activationOf(row: Pick<SigningKeyRow, 'activates_at'>): number {
  return row.activates_at ?? 0;
}

export function keyState(row: Pick<SigningKeyRow, 'activates_at' | 'retired_at'>, now: number): KeyState {
  if (row.retired_at !== null && row.retired_at <= now) return 'retired';
  return activationOf(row) > now ? 'pending' : 'active';
}

/** Until when a key retired at `retiredAt` stays published: its last token has expired by then. */
export function publishedUntil(retiredAt: number, accessTokenTtlSeconds: number): number {
  return retiredAt + accessTokenTtlSeconds + RETIRED_KEY_MARGIN_SECONDS;
}

/** What the audit log keeps of a rotation (key ids and times, never key material): the CLI, the API and the scheduled rotation alike. */
export function rotationDetails(timeline: RotationTimeline, immediately: boolean): Record<string, unknown> {
  return {
    algorithm: timeline.algorithm,
    immediately,
    activates_at: new Date(timeline.activatesAt * 1000).toISOString(),
    replaces: timeline.replaces.map((old) => old.kid),
  };
}
