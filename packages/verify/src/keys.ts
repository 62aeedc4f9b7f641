import { createRemoteJWKSet, customFetch, errors as joseErrors, type CryptoKey, type FlattenedJWSInput, type JWSHeaderParameters, type RemoteJWKSet } from 'jose';
import { VerifyError } from './errors.ts';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface KeySourceOptions {
  issuer: string;
  /** Skips discovery when given. */
  jwksUri: string | undefined;
  fetch: FetchLike;
  /** Epoch milliseconds. */
  now: () => number;
  /** Least time between two refetches for an unknown kid. */
  cooldownMs: number;
  /**
   * After this long a key set is refetched in the background, whatever the kids; until a refetch
   * succeeds the last good set keeps verifying (an issuer that is down must not take services down).
   */
  maxAgeMs: number;
  timeoutMs: number;
}

export interface KeySource {
  /** jwtVerify's key resolver: the key for the token's kid, refetching the set (at most once per cooldown) for an unknown one. */
  resolve(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
  /** Discovers and fetches the key set now; rejects with keys_unavailable. */
  load(): Promise<void>;
}

/** After a failed discovery, requests are refused at once for this long instead of each trying again. */
const DISCOVERY_RETRY_MS = 2000;

/** RFC 8414 section 3: the well-known segment goes between the host and the issuer's path. */
export function metadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

const unavailable = (message: string, cause?: unknown) => new VerifyError('keys_unavailable', message, { cause });

async function discoverJwksUri(options: KeySourceOptions): Promise<string> {
  const response = await options.fetch(metadataUrl(options.issuer), {
    headers: { accept: 'application/json' },
    redirect: 'manual',
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw unavailable(`discovery answered HTTP ${response.status}`);
  }
  const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  // RFC 8414 section 3.3: a document naming another issuer must not be used.
  if (metadata.issuer !== options.issuer) throw unavailable('discovery document names another issuer');
  if (typeof metadata.jwks_uri !== 'string') throw unavailable('discovery document has no jwks_uri (HS256 deployments publish no keys)');
  return metadata.jwks_uri;
}

/**
 * The issuer's public keys through jose's createRemoteJWKSet (fetching, caching, key import, kid and
 * alg matching). Its cooldown and max age read the system clock and its max age blocks the request
 * that finds the set old (and refuses it when the fetch fails), so the verifier keeps both decisions
 * itself, on its own clock: jose is told never to refetch on its own, and this asks it to.
 * - an old set is refetched in the background while the last good one keeps verifying
 *   (stale-while-revalidate), at most once per cooldown, whether the last attempt failed or not;
 * - an unknown kid refetches in the foreground, at most once per cooldown.
 */
export function createKeySource(options: KeySourceOptions): KeySource {
  let keySet: RemoteJWKSet | undefined;
  let pending: Promise<RemoteJWKSet> | undefined;
  let failure: { at: number; error: VerifyError } | undefined;
  let lastFetchAt = Number.NEGATIVE_INFINITY;
  /** When the set in use was fetched (successfully). */
  let loadedAt = Number.NEGATIVE_INFINITY;

  const jwksFetch = (url: string, init: RequestInit) => {
    lastFetchAt = options.now();
    return options.fetch(url, init);
  };

  function getKeySet(): Promise<RemoteJWKSet> {
    if (keySet) return Promise.resolve(keySet);
    if (failure && options.now() - failure.at < DISCOVERY_RETRY_MS) return Promise.reject(failure.error);
    pending ??= (async () => {
      try {
        const jwksUri = options.jwksUri ?? (await discoverJwksUri(options));
        const remote = createRemoteJWKSet(new URL(jwksUri), {
          timeoutDuration: options.timeoutMs,
          cooldownDuration: Number.POSITIVE_INFINITY,
          cacheMaxAge: Number.POSITIVE_INFINITY,
          [customFetch]: jwksFetch,
        });
        await remote.reload();
        loadedAt = options.now();
        keySet = remote;
        failure = undefined;
        return remote;
      } catch (error) {
        const refused = error instanceof VerifyError ? error : unavailable('could not fetch the issuer\'s keys', error);
        failure = { at: options.now(), error: refused };
        throw refused;
      } finally {
        pending = undefined;
      }
    })();
    return pending;
  }

  /** Refetches an old set without holding up the request; a failure keeps the last good set. */
  function revalidate(remote: RemoteJWKSet): void {
    const now = options.now();
    if (remote.reloading || now - loadedAt < options.maxAgeMs || now - lastFetchAt < options.cooldownMs) return;
    remote.reload().then(
      () => {
        loadedAt = options.now();
      },
      () => {}, // tried again after the cooldown; meanwhile the last good keys verify
    );
  }

  return {
    async load() {
      await getKeySet();
    },
    async resolve(header, token) {
      const remote = await getKeySet();
      revalidate(remote);
      if (typeof header.kid !== 'string') throw new VerifyError('token_invalid', 'token has no kid');
      const known = remote.jwks()?.keys.some((key) => key.kid === header.kid) ?? false;
      if (!known) {
        // A new key (a rotation) or a forged kid: look again, but only once per cooldown, so a
        // flood of made-up kids costs the issuer one request per cooldown at most.
        // A refetch already under way is joined, whoever started it.
        if (!remote.reloading && options.now() - lastFetchAt < options.cooldownMs) throw new VerifyError('token_invalid', 'unknown signing key');
        try {
          await remote.reload();
          loadedAt = options.now();
        } catch (error) {
          throw unavailable('could not refetch the issuer\'s keys', error);
        }
      }
      try {
        return await remote(header, token);
      } catch (error) {
        if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys || error instanceof joseErrors.JOSENotSupported) {
          throw new VerifyError('token_invalid', 'no usable key for this token', { cause: error });
        }
        // jose refetches nothing here (no max age, no cooldown of its own), so this is unexpected.
        throw unavailable('could not fetch the issuer\'s keys', error);
      }
    },
  };
}
