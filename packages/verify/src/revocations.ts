import type { FetchLike } from './keys.ts';

export interface RevocationFollowerOptions {
  /** Gatehouse's GET /revocations. */
  url: string;
  clientId: string;
  clientSecret: string;
  fetch: FetchLike;
  /** Epoch milliseconds. */
  now: () => number;
  /** How long each request waits on the server for news (long poll), 1-30 s. */
  waitSeconds: number;
  /** Bound on the revoked sessions remembered; past it the oldest go first. */
  maxSessions: number;
  /** A request failed; the follower retries with back-off. Messages hold no secret and no token. */
  onError: (error: Error) => void;
}

export interface RevocationFeedStatus {
  /** `connecting` before the first answer, `live` while answers come, `retrying` after a failure, `closed`. */
  state: 'connecting' | 'live' | 'retrying' | 'closed';
  /** Revoked sessions remembered now. */
  revokedSessions: number;
  /** When the last answer arrived (epoch ms): how fresh the list is. */
  lastAnswerAt: number | undefined;
  consecutiveFailures: number;
}

export interface RevocationFollower {
  isRevoked(sessionId: string): boolean;
  /** Settles once the first request has been answered or has failed. */
  readonly firstAttempt: Promise<void>;
  status(): RevocationFeedStatus;
  close(): void;
}

interface FeedAnswer {
  cursor: string;
  reset: boolean;
  revoked: Array<{ sid: string; exp: number }>;
}

class FeedRequestError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
    readonly cursorRefused = false,
  ) {
    super(message);
    this.name = 'FeedRequestError';
  }
}

const MAX_BACKOFF_MS = 30_000;
const FIRST_BACKOFF_MS = 500;
/** Past the long poll's own wait, how long an answer may take before the request is dropped and made again. */
const REQUEST_SLACK_MS = 10_000;
const PRUNE_INTERVAL_MS = 60_000;
/** Least time between the starts of two requests: under a storm of logouts, at most five requests a second. */
const MIN_REQUEST_INTERVAL_MS = 200;

/** RFC 6749 section 2.3.1: id and secret are form-url-encoded before they are joined and base64-encoded. */
function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${btoa(`${encode(clientId)}:${encode(clientSecret)}`)}`;
}

function retryAfterMs(response: Response): number | undefined {
  const seconds = Number(response.headers.get('retry-after'));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) * 1000 : undefined;
}

function readAnswer(body: unknown): FeedAnswer {
  const data = (body as { data?: Partial<FeedAnswer> } | null)?.data;
  const valid =
    typeof data?.cursor === 'string' &&
    typeof data.reset === 'boolean' &&
    Array.isArray(data.revoked) &&
    data.revoked.every((entry) => typeof entry?.sid === 'string' && typeof entry.exp === 'number');
  if (!valid) throw new FeedRequestError('revocation feed answered an unexpected body', undefined);
  return data as FeedAnswer;
}

/**
 * Follows Gatehouse's revocation feed: one long-poll request at a time, answered as soon as a
 * session is revoked (or after waitSeconds with nothing new), so a logout reaches this process
 * within about a second at the cost of about two idle requests a minute, and at most five a second
 * under a storm of logouts. Failures back off exponentially (0.5 s to 30 s, jittered, or the
 * server's Retry-After).
 */
export function followRevocations(options: RevocationFollowerOptions): RevocationFollower {
  /** session id → epoch seconds after which every access token of it has expired. */
  const revoked = new Map<string, number>();
  const authorization = basicCredentials(options.clientId, options.clientSecret);
  let cursor: string | undefined;
  let state: RevocationFeedStatus['state'] = 'connecting';
  let lastAnswerAt: number | undefined;
  let consecutiveFailures = 0;
  let lastPruneAt = options.now();
  const closing = new AbortController();
  let settleFirst!: () => void;
  const firstAttempt = new Promise<void>((resolve) => (settleFirst = resolve));

  function remember(answer: FeedAnswer): void {
    // A snapshot (reset) is merged, never swapped in: it may come from an instance that has not yet
    // heard of a revocation another instance told us, and nothing in it could un-revoke a session.
    for (const { sid, exp } of answer.revoked) {
      revoked.delete(sid); // re-inserted at the end: Map order stays roughly the order of expiry
      revoked.set(sid, exp);
    }
    while (revoked.size > options.maxSessions) revoked.delete(revoked.keys().next().value as string);
    const now = options.now();
    if (now - lastPruneAt >= PRUNE_INTERVAL_MS) {
      lastPruneAt = now;
      const nowSeconds = Math.floor(now / 1000);
      for (const [sid, exp] of revoked) if (exp <= nowSeconds) revoked.delete(sid);
    }
    cursor = answer.cursor;
  }

  async function poll(): Promise<FeedAnswer> {
    const query = new URLSearchParams({ wait: String(options.waitSeconds) });
    if (cursor !== undefined) query.set('since', cursor);
    const response = await options.fetch(`${options.url}?${query}`, {
      headers: { authorization, accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.any([closing.signal, AbortSignal.timeout(options.waitSeconds * 1000 + REQUEST_SLACK_MS)]),
    });
    if (response.status === 200) return readAnswer(await response.json());
    await response.body?.cancel();
    // 400: the cursor is refused (a server bug, or a proxy mangled it); start over with a snapshot.
    throw new FeedRequestError(`revocation feed answered HTTP ${response.status}`, retryAfterMs(response), response.status === 400);
  }

  function pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        closing.signal.removeEventListener('abort', done);
        resolve();
      }
      closing.signal.addEventListener('abort', done, { once: true });
    });
  }

  async function run(): Promise<void> {
    while (!closing.signal.aborted) {
      let delayMs = 0;
      const startedAt = performance.now();
      try {
        remember(await poll());
        consecutiveFailures = 0;
        lastAnswerAt = options.now();
        state = 'live';
        delayMs = MIN_REQUEST_INTERVAL_MS - (performance.now() - startedAt);
      } catch (error) {
        if (closing.signal.aborted) break;
        consecutiveFailures += 1;
        state = 'retrying';
        const refused = error instanceof FeedRequestError ? error : undefined;
        if (refused?.cursorRefused) cursor = undefined;
        const backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (consecutiveFailures - 1)) * (0.8 + Math.random() * 0.4);
        // A refused cursor is retried at once the first time: the snapshot it leads to is the fix.
        delayMs = refused?.cursorRefused && consecutiveFailures === 1 ? 0 : (refused?.retryAfterMs ?? backoff);
        try {
          options.onError(refused ?? new Error(`revocation feed request failed: ${(error as Error).message}`));
        } catch {
          // A throwing onError must not end the loop: the feed is what keeps revoked tokens out.
        }
      } finally {
        settleFirst();
      }
      if (delayMs > 0) await pause(delayMs);
    }
  }

  void run();

  return {
    isRevoked: (sessionId) => revoked.has(sessionId),
    firstAttempt,
    status: () => ({ state, revokedSessions: revoked.size, lastAnswerAt, consecutiveFailures }),
    close() {
      state = 'closed';
      closing.abort();
      settleFirst();
    },
  };
}
