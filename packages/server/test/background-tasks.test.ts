import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startBackgroundTasks, type BackgroundTasks } from '../src/background/tasks.ts';
import type { Denylist } from '../src/tokens/denylist.ts';
import { startTestApp, type TestApp } from './helpers.ts';

const SYNC_MS = 5_000;
const RELOAD_MS = 60_000;
const PURGE_MS = 600_000;

/**
 * The service's timers, on fake intervals (only setInterval is faked: the database keeps its
 * real I/O). The tasks are the real ones on a real SQLite database, wrapped to count their runs.
 */
describe('background timers', () => {
  let test: TestApp;
  let tasks: BackgroundTasks | undefined;
  const calls = { sync: 0, reload: 0, purge: 0 };
  const errors: unknown[] = [];
  let failReload = false;

  beforeEach(async () => {
    test = await startTestApp('sqlite');
    calls.sync = calls.reload = calls.purge = 0;
    errors.length = 0;
    failReload = false;
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  });
  afterEach(async () => {
    tasks?.stop();
    tasks = undefined;
    vi.useRealTimers();
    await test.close();
  });

  function start(): BackgroundTasks {
    const real = test.deps.denylist;
    const denylist: Denylist = {
      isRevoked: (sessionId) => real.isRevoked(sessionId),
      addSessions: (ids, at) => real.addSessions(ids, at),
      sync: () => {
        calls.sync += 1;
        return real.sync();
      },
      // purgeExpired prunes the denylist once per run, after its deletes.
      prune: () => {
        calls.purge += 1;
        real.prune();
      },
      get size() {
        return real.size;
      },
      entries: () => real.entries(),
      onRevoked: (listener) => real.onRevoked(listener),
    };
    const keys = {
      reload: async () => {
        calls.reload += 1;
        if (failReload) throw new Error('database unreachable');
        await test.deps.keys.reload();
      },
    };
    tasks = startBackgroundTasks(
      { db: test.deps.db, clock: test.clock, denylist, keys, accessTokenTtlSeconds: 900 },
      { syncIntervalMs: SYNC_MS, keyReloadIntervalMs: RELOAD_MS, purgeIntervalMs: PURGE_MS, onError: (error) => errors.push(error) },
    );
    return tasks;
  }

  /** Advances fake time and lets the tasks' real database work finish. */
  async function advance(ms: number): Promise<void> {
    await vi.advanceTimersByTimeAsync(ms);
    for (let turn = 0; turn < 5; turn += 1) await new Promise((resolve) => setImmediate(resolve));
  }

  it('syncs the denylist every 5 s, reloads keys every minute and purges every 10 minutes', async () => {
    start();
    await advance(SYNC_MS - 1);
    expect(calls).toEqual({ sync: 0, reload: 0, purge: 0 });
    await advance(1);
    expect(calls).toEqual({ sync: 1, reload: 0, purge: 0 });
    await advance(RELOAD_MS - SYNC_MS);
    expect(calls).toEqual({ sync: 12, reload: 1, purge: 0 });
    await advance(PURGE_MS - RELOAD_MS);
    expect(calls).toEqual({ sync: 120, reload: 10, purge: 1 });
    expect(errors).toEqual([]);
  });

  it('a failing task reports to onError and keeps its timer running', async () => {
    start();
    failReload = true;
    await advance(2 * RELOAD_MS);
    expect(calls.reload).toBe(2);
    expect(errors).toHaveLength(2);
    expect((errors[0] as Error).message).toBe('database unreachable');
    failReload = false;
    await advance(RELOAD_MS);
    expect(calls.reload).toBe(3);
    expect(errors).toHaveLength(2);
    expect(calls.sync).toBe(36);
  });

  it('stop() clears every timer, and the timers never keep the process alive', async () => {
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    start();
    const timers = setIntervalSpy.mock.results.map((result) => result.value as NodeJS.Timeout);
    setIntervalSpy.mockRestore();
    expect(timers).toHaveLength(3);
    for (const timer of timers) expect(timer.hasRef()).toBe(false);
    expect(vi.getTimerCount()).toBe(3);
    tasks!.stop();
    expect(vi.getTimerCount()).toBe(0);
    await advance(PURGE_MS);
    expect(calls).toEqual({ sync: 0, reload: 0, purge: 0 });
  });
});
