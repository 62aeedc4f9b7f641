import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { LockoutPolicy } from '../abuse/lockout-store.ts';
import { createClusterSharedState, type PrimaryChannel, type PrimaryToWorker, type WorkerToPrimary } from '../shared/cluster-ipc.ts';
import { createRestartBackoff } from './backoff.ts';
import { createSharedStateHost, type SharedStateHost, type WorkerChannel } from './shared-state-host.ts';

describe('restart back-off', () => {
  it('doubles from 1 s to at most 30 s while workers die young, and starts over after one lived a minute', () => {
    const backoff = createRestartBackoff({ initialMs: 1_000, maxMs: 30_000, stableAfterMs: 60_000 });
    const crashLoop = Array.from({ length: 8 }, () => backoff.nextDelayMs(200));
    expect(crashLoop).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    // A worker that served for a minute and then died is news, not a loop.
    expect(backoff.nextDelayMs(60_000)).toBe(1_000);
    expect(backoff.nextDelayMs(59_999)).toBe(2_000);
  });
});

/**
 * A worker and the primary's host in one process, wired by a channel that delivers like IPC
 * (asynchronously, in order); `deaf` makes the primary stop answering.
 */
function wire(host: SharedStateHost, options: { deaf?: () => boolean } = {}) {
  const toWorker = new EventEmitter();
  const workerSide: WorkerChannel = {
    isConnected: () => true,
    send(message: PrimaryToWorker, callback) {
      setImmediate(() => {
        toWorker.emit('message', message);
        callback(null);
      });
      return true;
    },
  };
  host.attach(workerSide);
  const channel: PrimaryChannel = {
    connected: true,
    send(message: WorkerToPrimary, callback) {
      setImmediate(() => {
        if (!options.deaf?.()) host.handle(workerSide, message);
        callback(null);
      });
      return true;
    },
    on: (event, listener) => toWorker.on(event, listener),
    off: (event, listener) => toWorker.off(event, listener),
  };
  return channel;
}

const policy: LockoutPolicy = { kind: 'window', maxFailures: 3, windowSeconds: 600 };
const quiet = () => {};

describe('workers sharing state through the primary', () => {
  it('count failures and budgets together, atomically, however the calls interleave', async () => {
    const host = createSharedStateHost();
    const one = createClusterSharedState(quiet, { channel: wire(host) });
    const two = createClusterSharedState(quiet, { channel: wire(host) });
    // Six concurrent reservations from two workers against a limit of three: exactly three allowed, then locked.
    const verdicts = await Promise.all([one, two, one, two, one, two].map((state) => state.lockouts.reserve('account:a', policy, 1_000)));
    expect(verdicts.filter((verdict) => verdict.allowed)).toHaveLength(3);
    expect(await one.lockouts.reserve('account:a', policy, 1_001)).toMatchObject({ allowed: false });
    await two.lockouts.reset('account:a');
    expect(await one.lockouts.reserve('account:a', policy, 1_002)).toEqual({ allowed: true });

    const counts = await Promise.all([one, two, one, two].map((state) => state.counters.increment('ip:x', 60, 1_000)));
    expect(counts.map((count) => count.count).sort()).toEqual([1, 2, 3, 4]);
  });

  it('a release on one worker gives back a slot reserved on the other', async () => {
    const host = createSharedStateHost();
    const one = createClusterSharedState(quiet, { channel: wire(host) });
    const two = createClusterSharedState(quiet, { channel: wire(host) });
    for (let attempt = 0; attempt < 3; attempt += 1) await one.lockouts.reserve('account:b', policy, 1_000);
    expect(await two.lockouts.reserve('account:b', policy, 1_000)).toMatchObject({ allowed: false });
    await two.lockouts.release('account:b', policy, 1_000);
    expect(await one.lockouts.reserve('account:b', policy, 1_000)).toEqual({ allowed: true, lockSecondsIfFailed: 600 });
  });

  it('tells every other worker of a revocation, not the one that made it', async () => {
    const host = createSharedStateHost();
    const states = [0, 1, 2].map(() => createClusterSharedState(quiet, { channel: wire(host) }));
    const heard = states.map(() => [] as string[][]);
    states.forEach((state, index) => state.revocations.subscribe((event) => heard[index]!.push(event.sessionIds)));
    states[0]!.revocations.publish({ sessionIds: ['s1', 's2'], revokedAt: 1_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard).toEqual([[], [['s1', 's2']], [['s1', 's2']]]);
  });

  it('falls back to its own memory, with one warning, when the primary does not answer, and says so in status()', async () => {
    const host = createSharedStateHost();
    let deaf = true;
    const warnings: string[] = [];
    const state = createClusterSharedState((level, _fields, message) => warnings.push(`${level}: ${message}`), { channel: wire(host, { deaf: () => deaf }), timeoutMs: 30 });
    const startedAt = performance.now();
    expect(await state.lockouts.reserve('account:c', policy, 1_000)).toEqual({ allowed: true });
    expect(performance.now() - startedAt).toBeLessThan(500);
    await state.lockouts.reserve('account:c', policy, 1_000);
    await state.lockouts.reserve('account:c', policy, 1_000);
    // Counted locally meanwhile: the limit still holds within this worker.
    expect(await state.lockouts.reserve('account:c', policy, 1_000)).toMatchObject({ allowed: false });
    expect(state.status()).toEqual({ 'cluster-primary': 'down' });
    expect(warnings.filter((warning) => warning.startsWith('warn'))).toHaveLength(1);
    deaf = false;
    await state.counters.increment('ip:y', 60, 1_000);
    expect(state.status()).toEqual({ 'cluster-primary': 'up' });
    expect(warnings.at(-1)).toMatch(/^info: the cluster primary answers again/);
  });

  it('keeps at most maxPending operations waiting for the primary; the rest run locally at once', async () => {
    const host = createSharedStateHost();
    const state = createClusterSharedState(quiet, { channel: wire(host, { deaf: () => true }), timeoutMs: 200, maxPending: 2 });
    const first = [state.counters.increment('ip:z', 60, 1_000), state.counters.increment('ip:z', 60, 1_000)];
    const startedAt = performance.now();
    // The third does not wait for the timeout.
    expect(await state.counters.increment('ip:z', 60, 1_000)).toEqual({ count: 1, resetAt: 1_060 });
    expect(performance.now() - startedAt).toBeLessThan(100);
    await Promise.all(first);
  });
});
