import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { readClaims, type Claims } from './claims.ts';
import { VerifyError } from './errors.ts';
import { answerFastify, answerNode, tokenFromHeaders, type FastifyReplyLike, type NodeResponseLike, type RequestHeaders } from './http.ts';
import { REALM, type AuthenticatedRequest, type Guard } from './guards.ts';
import { createKeySource, type FetchLike } from './keys.ts';
import { followRevocations, type RevocationFeedStatus, type RevocationFollower } from './revocations.ts';

/** What Gatehouse signs with; symmetric algorithms and `none` are never accepted. */
export type Algorithm = 'EdDSA' | 'ES256' | 'RS256';

export interface RevocationFeedOptions {
  /** A confidential client registered at Gatehouse (`gatehouse clients create … --type confidential`). */
  clientId: string;
  clientSecret: string;
  /** The feed's address; `<issuer>/revocations` by default. */
  url?: string;
  /** How long each long-poll request waits on the server for news, 1-30 s (default 25). */
  waitSeconds?: number;
  /** Bound on the revoked sessions remembered (default 100 000). */
  maxSessions?: number;
}

export interface VerifierOptions {
  /** Gatehouse's JWT_ISSUER, exactly as in its tokens, e.g. `https://auth.example.com`. */
  issuer: string;
  /** The audience (or audiences) this service accepts: Gatehouse's JWT_AUDIENCE, or a resource a client asked for. */
  audience: string | readonly string[];
  /** Accepted signing algorithms (default EdDSA, ES256, RS256). */
  algorithms?: readonly Algorithm[];
  /** Follow Gatehouse's revocation feed, so a logout is refused here within about a second. Off by default. */
  revocations?: RevocationFeedOptions | false;
  /** The JWKS address; found through `<issuer>/.well-known/oauth-authorization-server` when absent. */
  jwksUri?: string;
  /** Leeway for `exp` and `iat` against this machine's clock, in seconds (default 5). */
  clockToleranceSeconds?: number;
  /** Least time between two key-set fetches for an unknown `kid` (default 30 s). */
  jwksCooldownSeconds?: number;
  /** After this long the key set is refetched in the background, the last good set verifying meanwhile (default 300 s, Gatehouse's cache-control). */
  jwksMaxAgeSeconds?: number;
  /** Verified tokens remembered until their `exp`, so a token is checked once, not once per request (default 10 000). */
  cacheMaxEntries?: number;
  /** The realm named in WWW-Authenticate challenges (default: the first audience). */
  realm?: string;
  /** Timeout of discovery and key-set requests (default 5000 ms). */
  timeoutMs?: number;
  /** The clock, in epoch milliseconds (default Date.now); tests pass their own. */
  now?: () => number;
  /** fetch for discovery, keys and the feed (default globalThis.fetch). */
  fetch?: FetchLike;
  /** Told of background failures (feed requests); a message never holds a secret or a token. Default: console.warn, once per run of failures. */
  onError?: (error: Error) => void;
}

export interface VerifierStatus {
  /** `off` without the revocations option. */
  revocations: RevocationFeedStatus | { state: 'off' };
  cachedTokens: number;
}

/** The structural parts of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  hasRequestDecorator(name: string): boolean;
  decorateRequest(name: string, value: null): unknown;
  addHook(name: 'onRequest', hook: FastifyHook): unknown;
}

/** The request as the adapters see it: its headers. They set `auth` on it (declare it on your framework's request type). */
export interface RequestLike {
  headers: RequestHeaders;
}
export type ExpressMiddleware = (request: RequestLike, response: NodeResponseLike, next: (error?: Error) => void) => void;
export type FastifyHook = (request: RequestLike, reply: FastifyReplyLike, done: (error?: Error) => void) => void;
export type FastifyPlugin = ((instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void) => void) & Record<symbol, unknown>;

export interface Verifier {
  /** Verifies a token: signature, typ at+jwt, iss, aud, exp, iat, jti, the kind rules, and the revocation feed. Throws VerifyError. */
  verify(token: string): Promise<Claims>;
  /** Reads the token of a request's headers (Bearer or x-access-token) and verifies it. */
  verifyRequest(headers: RequestHeaders): Promise<Claims>;
  /** Express (or node:http) middleware: sets `req.auth`, or answers 401/400/403/503 per RFC 6750. Guards run after. */
  express(...guards: Guard[]): ExpressMiddleware;
  /** Fastify onRequest (or preHandler) hook: sets `request.auth`, or answers per RFC 6750. Guards run after. */
  fastify(...guards: Guard[]): FastifyHook;
  /** Fastify plugin: decorates `request.auth` and authenticates every route of the context it is registered in. */
  readonly fastifyPlugin: FastifyPlugin;
  /** Resolves once the keys are fetched and (with revocations) the feed has answered or failed once; rejects with keys_unavailable. */
  ready(): Promise<void>;
  status(): VerifierStatus;
  /** Stops following the feed; later verify() calls fail with verifier_closed. */
  close(): void;
}

const DEFAULT_ALGORITHMS: readonly Algorithm[] = ['EdDSA', 'ES256', 'RS256'];
const ALLOWED_ALGORITHMS = new Set<string>(DEFAULT_ALGORITHMS);
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'exp', 'iat', 'jti'];
const ACCESS_TOKEN_TYPE = 'at+jwt';

function warnOncePerStreak(): (error: Error) => void {
  let lastWarnedAt = 0;
  return (error) => {
    // Retries back off to 30 s; one line a minute at most tells an operator without flooding logs.
    if (Date.now() - lastWarnedAt < 60_000) return;
    lastWarnedAt = Date.now();
    console.warn(`@gatehouse/verify: ${error.message} (retrying)`);
  };
}

function toVerifyError(error: unknown): VerifyError {
  if (error instanceof VerifyError) return error;
  if (error instanceof joseErrors.JWTExpired) return new VerifyError('token_expired', 'token has expired', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) return new VerifyError('token_invalid', `token ${error.claim} check failed`, { cause: error });
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return new VerifyError('token_invalid', 'token algorithm is not accepted', { cause: error });
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return new VerifyError('token_invalid', 'token signature is invalid', { cause: error });
  return new VerifyError('token_invalid', 'token is malformed', { cause: error });
}

export function createVerifier(options: VerifierOptions): Verifier {
  const audiences = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (!options.issuer || audiences.length === 0 || audiences.some((audience) => !audience)) throw new TypeError('@gatehouse/verify: issuer and audience are required');
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0 || algorithms.some((algorithm) => !ALLOWED_ALGORITHMS.has(algorithm))) {
    throw new TypeError(`@gatehouse/verify: algorithms must be among ${DEFAULT_ALGORITHMS.join(', ')}`);
  }
  const now = options.now ?? Date.now;
  const fetchImpl: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  const toleranceSeconds = options.clockToleranceSeconds ?? 5;
  const cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
  const realm = options.realm ?? audiences[0]!;
  const onError = options.onError ?? warnOncePerStreak();
  const timeoutMs = options.timeoutMs ?? 5000;

  const keys = createKeySource({
    issuer: options.issuer,
    jwksUri: options.jwksUri,
    fetch: fetchImpl,
    now,
    cooldownMs: (options.jwksCooldownSeconds ?? 30) * 1000,
    maxAgeMs: (options.jwksMaxAgeSeconds ?? 300) * 1000,
    timeoutMs,
  });

  let follower: RevocationFollower | undefined;
  if (options.revocations) {
    const feed = options.revocations;
    const waitSeconds = feed.waitSeconds ?? 25;
    if (!Number.isInteger(waitSeconds) || waitSeconds < 1 || waitSeconds > 30) throw new TypeError('@gatehouse/verify: revocations.waitSeconds must be 1-30');
    follower = followRevocations({
      url: feed.url ?? `${options.issuer.replace(/\/+$/, '')}/revocations`,
      clientId: feed.clientId,
      clientSecret: feed.clientSecret,
      fetch: fetchImpl,
      now,
      waitSeconds,
      maxSessions: feed.maxSessions ?? 100_000,
      onError,
    });
  }
  let feedStarted = follower === undefined;
  let closed = false;

  /** Keyed by the exact token text; only signature and claims checks are remembered, revocation is checked on every use. */
  const verified = new Map<string, Claims>();

  function checkRevocation(claims: Claims): Claims {
    if (claims.kind === 'user' && follower?.isRevoked(claims.sessionId)) throw new VerifyError('token_revoked', 'session has been revoked');
    return claims;
  }

  /** The synchronous fast path: a token verified before and not yet expired. */
  function fromCache(token: string): Claims | undefined {
    const claims = verified.get(token);
    if (claims === undefined) return undefined;
    if (claims.expiresAt + toleranceSeconds > now() / 1000) return checkRevocation(claims);
    verified.delete(token);
    return undefined;
  }

  async function verifyUncached(token: string): Promise<Claims> {
    if (closed) throw new VerifyError('verifier_closed', 'the verifier is closed');
    // Until the feed has answered once, a revoked session is not known yet: wait for that first answer (or failure).
    if (!feedStarted) {
      await follower!.firstAttempt;
      feedStarted = true;
    }
    const currentDate = new Date(now());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys.resolve, {
        algorithms,
        issuer: options.issuer,
        audience: audiences,
        typ: ACCESS_TOKEN_TYPE,
        requiredClaims: REQUIRED_CLAIMS,
        currentDate,
        clockTolerance: toleranceSeconds,
      }));
    } catch (error) {
      throw toVerifyError(error);
    }
    const claims = readClaims(payload, Math.floor(currentDate.getTime() / 1000), toleranceSeconds);
    if (verified.size >= cacheMaxEntries) verified.delete(verified.keys().next().value as string);
    verified.set(token, claims);
    return checkRevocation(claims);
  }

  async function verify(token: string): Promise<Claims> {
    if (closed) throw new VerifyError('verifier_closed', 'the verifier is closed');
    return fromCache(token) ?? verifyUncached(token);
  }

  /** Calls back synchronously for a cached token, so a framework hook can continue without a promise. */
  function authenticate(headers: RequestHeaders, guards: Guard[], callback: (error: VerifyError | undefined, claims?: Claims) => void): void {
    let claims: Claims | undefined;
    let token: string;
    try {
      if (closed) throw new VerifyError('verifier_closed', 'the verifier is closed');
      token = tokenFromHeaders(headers);
      claims = fromCache(token);
      if (claims) for (const check of guards) check.check(claims);
    } catch (error) {
      return callback(toVerifyError(error));
    }
    if (claims) return callback(undefined, claims);
    verifyUncached(token).then(
      (verifiedClaims) => {
        try {
          for (const check of guards) check.check(verifiedClaims);
        } catch (error) {
          return callback(toVerifyError(error));
        }
        callback(undefined, verifiedClaims);
      },
      (error: unknown) => callback(toVerifyError(error)),
    );
  }

  function admit(request: RequestLike, claims: Claims): void {
    const admitted = request as RequestLike & AuthenticatedRequest;
    admitted.auth = claims;
    admitted[REALM] = realm;
  }

  const fastifyHook = (...guards: Guard[]): FastifyHook =>
    function gatehouseVerify(request, reply, done) {
      authenticate(request.headers, guards, (error, claims) => {
        if (error) return answerFastify(reply, error, realm);
        admit(request, claims!);
        done();
      });
    };

  const plugin = function gatehouseVerifyPlugin(instance: FastifyInstanceLike, _options: unknown, done: (error?: Error) => void) {
    if (!instance.hasRequestDecorator('auth')) instance.decorateRequest('auth', null);
    instance.addHook('onRequest', fastifyHook());
    done();
  } as FastifyPlugin;
  // Like fastify-plugin: the hook applies to the context the plugin is registered in, not a child of it.
  plugin[Symbol.for('skip-override')] = true;
  plugin[Symbol.for('fastify.display-name')] = '@gatehouse/verify';

  return {
    verify,
    async verifyRequest(headers) {
      return verify(tokenFromHeaders(headers));
    },
    express: (...guards) =>
      function gatehouseVerify(request, response, next) {
        authenticate(request.headers, guards, (error, claims) => {
          if (error) return answerNode(response, error, realm);
          admit(request, claims!);
          next();
        });
      },
    fastify: fastifyHook,
    fastifyPlugin: plugin,
    async ready() {
      await keys.load();
      if (follower) await follower.firstAttempt;
    },
    status: () => ({ revocations: follower?.status() ?? { state: 'off' }, cachedTokens: verified.size }),
    close() {
      closed = true;
      follower?.close();
      verified.clear();
    },
  };
}
