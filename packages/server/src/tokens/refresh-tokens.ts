import { createHash, createHmac, randomBytes } from 'node:crypto';

/** Opaque refresh tokens: 256 random bits, stored only as their SHA-256. */
export function generateRefreshToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * The child of a refresh token is an HMAC of the parent under a server secret,
 * so a retry within the grace window can recompute and return the same child
 * without the server ever storing a token in plaintext.
 */
export function deriveChildRefreshToken(parentToken: string, derivationSecret: Buffer): string {
  return createHmac('sha256', derivationSecret).update(parentToken).digest('base64url');
}

/** Refresh tokens are 43 base64url characters; anything else is refused before touching the database. */
export function looksLikeRefreshToken(token: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(token);
}
