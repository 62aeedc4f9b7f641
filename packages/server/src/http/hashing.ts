import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { PasswordHasher } from '../passwords/index.ts';

/**
 * Aborts when the client's connection closes before its answer was written, so a password job still
 * waiting for a hashing thread is dropped instead of computed for nobody.
 * The response's 'close' fires once per request, after the answer or when the socket went first;
 * the request's own 'close' cannot tell, as it also fires as soon as the body has been read.
 */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** One warn line (the pool rate-limits them) with the queue depth while password jobs are refused. */
export function logHashingRefusals(hasher: PasswordHasher, log: FastifyBaseLogger): () => void {
  return hasher.onQueueFull((report) => {
    log.warn({ hashing: report }, `hashing queue full (${report.queued} waiting): refusing password checks with 503`);
  });
}
