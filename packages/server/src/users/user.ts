import type { UserRow } from '../storage/users.ts';

export interface PublicUser {
  id: number;
  name: string;
  email: string;
  roles: string[];
  /** ISO 8601. */
  created_at: string;
}

/** Emails compare case-insensitively: NFC, trimmed, lowercased. */
export function normalizeEmail(email: string): string {
  return email.normalize('NFC').trim().toLowerCase();
}

export function parseRoles(rolesJson: string): string[] {
  try {
    const roles: unknown = JSON.parse(rolesJson);
    return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [];
  } catch {
    return [];
  }
}

/** The only shape of a user that leaves the server: no hash, no internal columns. */
export function toPublicUser(row: UserRow): PublicUser {
  return {
    id: Number(row.id),
    name: row.name,
    email: row.email,
    roles: parseRoles(row.roles),
    created_at: new Date(Number(row.created_at) * 1000).toISOString(),
  };
}
