/** What the client keeps between calls. expiresAt is by the client's own clock, so a skewed clock does not matter. */
export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, in milliseconds since the epoch by the client's clock (from expires_in). */
  expiresAt: number;
  /** Its lifetime in seconds, as the server said (expires_in). */
  expiresIn: number;
}

/**
 * Where the tokens live. Either method may be synchronous or return a promise; set(null) forgets them.
 * Several clients (tabs) may share one storage: a client rereads it before it refreshes.
 */
export interface TokenStorage {
  get(): StoredTokens | null | Promise<StoredTokens | null>;
  set(tokens: StoredTokens | null): void | Promise<void>;
}

/** The default: tokens live as long as the client object. Nothing a script injected later can read from storage. */
export function memoryStorage(): TokenStorage {
  let tokens: StoredTokens | null = null;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
  };
}

/** The part of the Web Storage API the adapter uses (window.localStorage, sessionStorage, or a stand-in). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Tokens in localStorage: they survive a reload and are shared by the tabs of an origin. Any script
 * running on the page can read them too, so use it only where no third-party script runs.
 */
export function localStorageTokenStorage(options: { key?: string; storage?: StorageLike } = {}): TokenStorage {
  const key = options.key ?? 'gatehouse.tokens';
  const storage = options.storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
  if (!storage) throw new TypeError('localStorageTokenStorage: no localStorage here; pass options.storage');
  return {
    get() {
      const text = storage.getItem(key);
      if (text === null) return null;
      try {
        const value = JSON.parse(text) as Partial<StoredTokens>;
        const valid =
          typeof value.accessToken === 'string' &&
          typeof value.refreshToken === 'string' &&
          typeof value.expiresAt === 'number' &&
          typeof value.expiresIn === 'number';
        return valid ? (value as StoredTokens) : null;
      } catch {
        // Not ours, or damaged: as if signed out.
        return null;
      }
    },
    set(tokens) {
      if (tokens === null) storage.removeItem(key);
      else storage.setItem(key, JSON.stringify(tokens));
    },
  };
}
