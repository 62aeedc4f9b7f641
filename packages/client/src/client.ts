import { errorFromAnswer, GatehouseError, isGatehouseError, MfaRequiredError } from './errors.ts';
import { memoryStorage, type StoredTokens, type TokenStorage } from './storage.ts';
import type {
  ChangePasswordRequest,
  LoginMfaRequest,
  LoginRequest,
  LoginUser,
  MeAnswer,
  MfaRequiredAnswer,
  PublicUser,
  SignupAnswer,
  SignupRequest,
  TokenAnswer,
} from './types.ts';

export interface GatehouseClientOptions {
  /** Where Gatehouse answers, e.g. `https://auth.example.com` (its issuer address); a path prefix is kept. */
  baseUrl: string;
  /** Where the tokens live; memoryStorage() by default, localStorageTokenStorage() to survive reloads. */
  storage?: TokenStorage;
  /** The fetch to use; globalThis.fetch by default. */
  fetch?: typeof fetch;
  /** Refresh this long before the access token expires (default 60 s, at most half its lifetime). */
  refreshMarginSeconds?: number;
  /** The time in milliseconds since the epoch; Date.now by default. Tests move it. */
  now?: () => number;
  /** The application signing users in (a public client registered with `gatehouse clients create`); Gatehouse's default client when unset. */
  clientId?: string;
  /** The API the access tokens are for (RFC 8707 resource), if the client may ask for it; Gatehouse's own audience when unset. */
  audience?: string;
  /** Called when Gatehouse refuses the refresh token (the session was logged out, revoked or expired); the tokens are gone. */
  onSessionEnd?: (error: GatehouseError) => void;
}

export interface RequestOptions {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

interface Answer {
  response: Response;
  body: unknown;
}

const DEFAULT_REFRESH_MARGIN_SECONDS = 60;

/**
 * A Gatehouse session for a browser or a Node app. Before each authenticated call the access token
 * is refreshed when it expires within the margin, and a 401 is answered by one refresh and one retry.
 * Refreshes are single-flight: however many calls need one at the same moment, one POST /token/refresh
 * is sent and they all wait for it, because presenting a spent refresh token again (after the server's
 * short retry grace) revokes the whole session.
 */
export class GatehouseClient {
  readonly #baseUrl: string;
  readonly #storage: TokenStorage;
  readonly #fetch: typeof fetch;
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #onSessionEnd: ((error: GatehouseError) => void) | undefined;
  readonly #loginFields: { client_id?: string; audience?: string };
  #refreshing: Promise<StoredTokens> | null = null;

  constructor(options: GatehouseClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#storage = options.storage ?? memoryStorage();
    // Bound: a browser's fetch called as a method of another object throws "Illegal invocation".
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#marginMs = (options.refreshMarginSeconds ?? DEFAULT_REFRESH_MARGIN_SECONDS) * 1000;
    this.#now = options.now ?? Date.now;
    this.#onSessionEnd = options.onSessionEnd;
    this.#loginFields = {
      ...(options.clientId ? { client_id: options.clientId } : {}),
      ...(options.audience ? { audience: options.audience } : {}),
    };
  }

  /** Creates an account. It does not log in: call login() next. */
  async signup(body: SignupRequest, options: { signal?: AbortSignal } = {}): Promise<PublicUser> {
    const answer = (await this.#call('/signup', { method: 'POST', body, ...options })) as SignupAnswer;
    return answer.data as PublicUser;
  }

  /**
   * Logs in and keeps the tokens; resolves to the user. The clientId and audience options are sent
   * unless the body names its own; refreshes keep them (Gatehouse binds them to the session).
   * For an account with two-factor authentication the right password gets no tokens: this throws an
   * MfaRequiredError (code 'mfa_required') carrying the ticket for completeMfaLogin(), and stores nothing.
   */
  async login(body: LoginRequest, options: { signal?: AbortSignal } = {}): Promise<LoginUser> {
    const sentAt = this.#now();
    const answer = await this.#send('/login', { method: 'POST', body: { ...this.#loginFields, ...body }, ...options }, undefined);
    if (answer.response.status >= 400) throw errorFromAnswer(answer.response.status, answer.body, answer.response.headers);
    if (answer.response.status === 200) throw mfaRequiredFrom(answer.body as MfaRequiredAnswer, sentAt);
    return this.#keepTokens(answer.body as TokenAnswer, sentAt);
  }

  /**
   * The second step of a login that threw an MfaRequiredError: the ticket and the code the user's
   * authenticator app shows now (6 digits) or one of their recovery codes. Keeps the tokens exactly as
   * login() does and resolves to the user. Sent with the clientId option, as the login was. A wrong or
   * spent code throws 'forbidden' (the ticket allows a few tries); an unknown, expired, spent or
   * exhausted ticket 'unauthorized' (log in again); too many tries 'rate_limited'.
   */
  async completeMfaLogin(ticket: string, code: string, options: { signal?: AbortSignal } = {}): Promise<LoginUser> {
    const sentAt = this.#now();
    const body: LoginMfaRequest = {
      mfa_ticket: ticket,
      code,
      ...(this.#loginFields.client_id !== undefined ? { client_id: this.#loginFields.client_id } : {}),
    };
    const answer = (await this.#call('/login/mfa', { method: 'POST', body, ...options })) as TokenAnswer;
    return this.#keepTokens(answer, sentAt);
  }

  /** The signed-in user. */
  async me(options: { signal?: AbortSignal } = {}): Promise<PublicUser> {
    const answer = (await this.request('/me', options)) as MeAnswer;
    return answer.data as PublicUser;
  }

  /** Changes the password; Gatehouse revokes the user's other sessions, this one stays. */
  async changePassword(body: ChangePasswordRequest, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.request('/me/password', { method: 'POST', body, ...options });
  }

  /**
   * Revokes this session ({ all: true }: every session of the user) and forgets the tokens. An expired
   * access token is refreshed first; a session already over counts as logged out. On any other failure
   * (the network, a 503) the tokens are kept and the error thrown, so the logout can be retried.
   */
  async logout(options: { all?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    if (!(await this.#storage.get())) return;
    try {
      await this.request('/logout', { method: 'POST', ...(options.all ? { body: { all: true } } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      if (!isGatehouseError(error, 'session_ended') && !isGatehouseError(error, 'not_signed_in')) throw error;
    }
    await this.#storage.set(null);
  }

  /** Refreshes the tokens now (joining a refresh already under way). */
  async refresh(): Promise<void> {
    await this.#refreshOnce(await this.#storedTokens());
  }

  /** Whether tokens are stored (they may still be refused: a call tells). */
  async isSignedIn(): Promise<boolean> {
    return (await this.#storage.get()) !== null;
  }

  /** A live access token, refreshed first if it expires within the margin: for calling your other services. */
  async accessToken(): Promise<string> {
    return (await this.#freshTokens()).accessToken;
  }

  /**
   * An authenticated call to another Gatehouse route (path relative to baseUrl, query included):
   * resolves to the parsed JSON answer, throws a GatehouseError for a status of 400 or more.
   */
  async request<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
    // The access token goes only to Gatehouse: "/x" stays under baseUrl, ".evil.example/x" or "//host" would not.
    if (!path.startsWith('/') || path.startsWith('//')) throw new GatehouseError('invalid_request', 'path must start with a single "/" (a route of Gatehouse, relative to baseUrl)');
    let tokens = await this.#freshTokens();
    let answer = await this.#send(path, options, tokens.accessToken);
    if (answer.response.status === 401) {
      tokens = await this.#refreshOnce(tokens);
      answer = await this.#send(path, options, tokens.accessToken);
    }
    if (answer.response.status >= 400) throw errorFromAnswer(answer.response.status, answer.body, answer.response.headers);
    return answer.body as T;
  }

  // ---- tokens ------------------------------------------------------------------------------

  /** A token answer of /login or /login/mfa: stores its tokens, resolves to its user. */
  async #keepTokens(answer: TokenAnswer, sentAt: number): Promise<LoginUser> {
    await this.#storage.set(tokensFrom(answer, sentAt));
    return answer.data as LoginUser;
  }

  async #storedTokens(): Promise<StoredTokens> {
    const tokens = await this.#storage.get();
    if (!tokens) throw new GatehouseError('not_signed_in', 'not signed in: call login() first');
    return tokens;
  }

  #expiresSoon(tokens: StoredTokens): boolean {
    const margin = Math.min(this.#marginMs, (tokens.expiresIn * 1000) / 2);
    return this.#now() >= tokens.expiresAt - margin;
  }

  async #freshTokens(): Promise<StoredTokens> {
    const tokens = await this.#storedTokens();
    if (!this.#expiresSoon(tokens)) return tokens;
    try {
      return await this.#refreshOnce(tokens);
    } catch (error) {
      // An early refresh that failed for a passing reason (network, 503) leaves a token still good for a while.
      if (isGatehouseError(error, 'session_ended') || isGatehouseError(error, 'not_signed_in') || this.#now() >= tokens.expiresAt) throw error;
      return tokens;
    }
  }

  /** One refresh at a time: callers that need one while it runs get its result. */
  #refreshOnce(stale: StoredTokens): Promise<StoredTokens> {
    this.#refreshing ??= this.#refresh(stale).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #refresh(stale: StoredTokens): Promise<StoredTokens> {
    const current = await this.#storedTokens();
    // Another call, or another tab sharing the storage, has refreshed since `stale` was read.
    if (current.accessToken !== stale.accessToken && !this.#expiresSoon(current)) return current;
    const sentAt = this.#now();
    const answer = await this.#send('/token/refresh', { method: 'POST', body: { refresh_token: current.refreshToken } }, undefined);
    if (answer.response.status === 201) {
      const tokens = tokensFrom(answer.body as TokenAnswer, sentAt);
      await this.#storage.set(tokens);
      return tokens;
    }
    const error = errorFromAnswer(answer.response.status, answer.body, answer.response.headers);
    if (answer.response.status !== 401) throw error;
    const latest = await this.#storage.get();
    if (latest && latest.refreshToken !== current.refreshToken) return latest;
    await this.#storage.set(null);
    const ended = new GatehouseError('session_ended', `session ended: ${error.message}`, {
      status: 401,
      ...(error.envelope ? { envelope: error.envelope } : {}),
      cause: error,
    });
    this.#onSessionEnd?.(ended);
    throw ended;
  }

  // ---- HTTP --------------------------------------------------------------------------------

  /** An unauthenticated call: the parsed answer, or a GatehouseError for a status of 400 or more. */
  async #call(path: string, options: RequestOptions): Promise<unknown> {
    const answer = await this.#send(path, options, undefined);
    if (answer.response.status >= 400) throw errorFromAnswer(answer.response.status, answer.body, answer.response.headers);
    return answer.body;
  }

  async #send(path: string, options: RequestOptions, accessToken: string | undefined): Promise<Answer> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`;
    let response: Response;
    try {
      response = await this.#fetch(`${this.#baseUrl}${path}`, {
        method: options.method ?? 'GET',
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (cause) {
      throw new GatehouseError('network_error', `no answer from ${this.#baseUrl}: ${(cause as Error).message ?? String(cause)}`, { cause });
    }
    return { response, body: await readBody(response) };
  }
}

export function createGatehouseClient(options: GatehouseClientOptions): GatehouseClient {
  return new GatehouseClient(options);
}

function tokensFrom(answer: TokenAnswer, sentAt: number): StoredTokens {
  if (typeof answer?.token !== 'string' || typeof answer.refresh_token !== 'string' || typeof answer.expires_in !== 'number') {
    throw new GatehouseError('invalid_response', 'the answer carries no tokens');
  }
  // From the time the request left: never later than the server's own expiry, whatever the clocks say.
  return { accessToken: answer.token, refreshToken: answer.refresh_token, expiresIn: answer.expires_in, expiresAt: sentAt + answer.expires_in * 1000 };
}

function mfaRequiredFrom(answer: MfaRequiredAnswer, sentAt: number): MfaRequiredError {
  const challenge = answer?.data;
  if (challenge?.mfa_required !== true || typeof challenge.mfa_ticket !== 'string' || typeof challenge.expires_in !== 'number') {
    throw new GatehouseError('invalid_response', 'the 200 answer of /login is neither tokens nor an MFA ticket', { status: 200 });
  }
  return new MfaRequiredError(challenge.mfa_ticket, challenge.expires_in, sentAt + challenge.expires_in * 1000);
}

async function readBody(response: Response): Promise<unknown> {
  const type = response.headers.get('content-type') ?? '';
  let text: string;
  try {
    text = await response.text();
  } catch (cause) {
    throw new GatehouseError('network_error', 'the answer was cut off', { status: response.status, cause });
  }
  if (text.length === 0) return undefined;
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new GatehouseError('invalid_response', `the ${response.status} answer is not valid JSON`, { status: response.status, cause });
  }
}
