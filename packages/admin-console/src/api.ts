// The admin API as the console uses it (the shapes of the HTTP contract in DESIGN.md / the OpenAPI
// document). Every call goes through @gatehouse/client, which keeps the tokens in memory only and
// refreshes them single-flight before they expire and on a 401.
import { createGatehouseClient, MfaRequiredError, type GatehouseClient, type operations } from '@gatehouse/client';

// The answers' shapes come from the generated OpenAPI types: they cannot drift from the server.
type JsonBody<T> = T extends { content: { 'application/json': infer Body } } ? Body : never;
type DataOf<Operation extends { responses: Record<number, unknown> }> = NonNullable<JsonBody<Operation['responses'][200]> extends { data: infer Data } ? Data : never>;

export type AdminUser = DataOf<operations['getUser']>;
export type UserSession = DataOf<operations['listUserSessions']>['sessions'][number];
export type AuditEvent = DataOf<operations['listAuditEvents']>['events'][number];
export type SigningKey = DataOf<operations['listSigningKeys']>['keys'][number];
export type ServiceClient = DataOf<operations['listClients']>['clients'][number];
/** The user POST /login and POST /login/mfa answer with: id, email, name. */
export type SignedInUser = NonNullable<JsonBody<operations['logInMfa']['responses'][201]>['data']>;

export interface UserFilters {
  email?: string;
  role?: string;
  disabled?: 'true' | 'false';
}

export interface AuditFilters {
  action?: string;
  user_id?: string;
  outcome?: string;
  since?: string;
  until?: string;
}

interface Envelope<T> {
  status: boolean;
  code: number;
  message: string;
  data: T;
}

/** The query string of the set, non-empty values. */
export function queryOf(values: Record<string, string | number | undefined | null>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `?${text}` : '';
}

export const PAGE_SIZE = 20;

export class AdminApi {
  constructor(readonly client: GatehouseClient) {}

  async #data<T>(path: string, options: { method?: string; body?: unknown } = {}): Promise<Envelope<T>> {
    return this.client.request<Envelope<T>>(path, options);
  }

  /** GET /users keeps the seed's bare shape: no envelope. */
  listUsers(filters: UserFilters, cursor: string | null): Promise<{ users: AdminUser[]; next_cursor: string | null }> {
    return this.client.request(`/users${queryOf({ ...filters, limit: PAGE_SIZE, cursor })}`);
  }

  async getUser(id: number): Promise<AdminUser> {
    return (await this.#data<AdminUser>(`/users/${id}`)).data;
  }

  async updateUser(id: number, changes: Partial<Pick<AdminUser, 'name' | 'email' | 'roles' | 'disabled'>>): Promise<AdminUser> {
    return (await this.#data<AdminUser>(`/users/${id}`, { method: 'PATCH', body: changes })).data;
  }

  async deleteUser(id: number): Promise<void> {
    await this.#data<null>(`/users/${id}`, { method: 'DELETE' });
  }

  async listSessions(userId: number, activeOnly: boolean): Promise<UserSession[]> {
    return (await this.#data<{ sessions: UserSession[] }>(`/users/${userId}/sessions${activeOnly ? '?active=true' : ''}`)).data.sessions;
  }

  async revokeSession(sessionId: string): Promise<void> {
    await this.#data<null>(`/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' });
  }

  async revokeUserSessions(userId: number): Promise<number> {
    return (await this.#data<{ revoked: number }>(`/users/${userId}/sessions/revoke`, { method: 'POST' })).data.revoked;
  }

  async listAudit(filters: AuditFilters, cursor: string | null): Promise<{ events: AuditEvent[]; next_cursor: string | null }> {
    return (await this.#data<{ events: AuditEvent[]; next_cursor: string | null }>(`/audit${queryOf({ ...filters, limit: PAGE_SIZE, cursor })}`)).data;
  }

  async listKeys(): Promise<SigningKey[]> {
    return (await this.#data<{ keys: SigningKey[] }>('/keys')).data.keys;
  }

  async rotateKey(now: boolean): Promise<{ kid: string; activates_at: string }> {
    return (await this.#data<{ kid: string; activates_at: string }>('/keys/rotate', { method: 'POST', body: { now } })).data;
  }

  async listClients(): Promise<ServiceClient[]> {
    return (await this.#data<{ clients: ServiceClient[] }>('/clients')).data.clients;
  }

  async setClientDisabled(id: string, disabled: boolean): Promise<ServiceClient> {
    return (await this.#data<ServiceClient>(`/clients/${encodeURIComponent(id)}`, { method: 'PATCH', body: { disabled } })).data;
  }
}

export interface SignedIn {
  api: AdminApi;
  user: SignedInUser;
}

/**
 * The password was right and the account has two-factor authentication: a code is due. The ticket
 * stays in this closure (memory only) and works with this client only.
 */
export interface SecondFactorStep {
  /** Seconds the step stays open (the ticket's lifetime). */
  expiresIn: number;
  /** POST /login/mfa with the code: the session, if it is an admin's. */
  complete(code: string): Promise<SignedIn>;
}

export type SignInResult = { signedIn: SignedIn } | { secondFactor: SecondFactorStep };

/**
 * The roles the access token carries. Only to turn a non-admin away at once with a clear message:
 * the server checks the role on every admin call, whatever this says.
 */
export function tokenRoles(accessToken: string): string[] {
  try {
    const payload = accessToken.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const roles = (JSON.parse(json) as { roles?: unknown }).roles;
    return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [];
  } catch {
    return [];
  }
}

export class NotAnAdmin extends Error {}

/**
 * Logs in through POST /login (as any app does) and keeps the session only if it is an admin's. An
 * account with two-factor authentication gets no session yet: the second step, to finish with a code.
 */
export async function signIn(email: string, password: string, onSessionEnd: (message: string) => void): Promise<SignInResult> {
  const client = createGatehouseClient({ baseUrl: location.origin, onSessionEnd: (error) => onSessionEnd(error.message) });
  let user: SignedInUser;
  try {
    user = await client.login({ email, password });
  } catch (error) {
    if (!(error instanceof MfaRequiredError)) throw error;
    const { ticket, expiresIn } = error;
    return { secondFactor: { expiresIn, complete: async (code) => adminOnly(client, await client.completeMfaLogin(ticket, code)) } };
  }
  return { signedIn: await adminOnly(client, user) };
}

async function adminOnly(client: GatehouseClient, user: SignedInUser): Promise<SignedIn> {
  if (!tokenRoles(await client.accessToken()).includes('admin')) {
    await client.logout().catch(() => undefined);
    throw new NotAnAdmin('This account has no admin role.');
  }
  return { api: new AdminApi(client), user };
}
