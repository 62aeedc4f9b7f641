import type { Redis } from 'ioredis';
import type { CounterStore } from '../abuse/counter-store.ts';
import type { LockoutPolicy, LockoutStore } from '../abuse/lockout-store.ts';

/*
 * Counters and lockouts as Lua scripts: Redis runs each one alone, so a read, its arithmetic and
 * its write are one step for every worker and instance (no read-modify-write from Node).
 *
 * Time is the caller's clock (`now`, integer epoch seconds), exactly as in the memory stores, and
 * each script decides liveness from the stored timestamps. Redis's own expiry only collects
 * garbage, so it is set relative to `now` (EXPIRE expiresAt - now) rather than absolute
 * (EXPIREAT expiresAt): an instance whose clock is off, or a test's fixed clock, then never makes
 * Redis drop an entry that the arithmetic still holds live. GRACE_SECONDS more covers the skew
 * between instances' clocks.
 */
const GRACE_SECONDS = 1;

// string.format('%d') keeps stored integers plain: Redis would print a Lua number past 1e14 in exponent form.
const WRITE_ENTRY = `
local function store(key, now, fields, expiresAt)
  for index = 2, #fields, 2 do fields[index] = string.format('%d', fields[index]) end
  redis.call('HSET', key, unpack(fields))
  redis.call('EXPIRE', key, string.format('%d', expiresAt - now + ${GRACE_SECONDS}))
end
`;

/** CounterStore.increment: a fixed window opened by its first hit. Returns { count, resetAt }. */
const INCREMENT = `${WRITE_ENTRY}
local now, windowSeconds = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'count', 'resetAt')
local count, resetAt = tonumber(stored[1]), tonumber(stored[2])
if not count or not resetAt or resetAt <= now then
  count, resetAt = 0, now + windowSeconds
end
count = count + 1
store(KEYS[1], now, {'count', count, 'resetAt', resetAt}, resetAt)
return {count, resetAt}
`;

const READ_LOCKOUT = `
local stored = redis.call('HMGET', KEYS[1], 'failures', 'lockedUntil', 'expiresAt')
local failures, lockedUntil, expiresAt = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3])
local live = failures ~= nil and lockedUntil ~= nil and expiresAt ~= nil and expiresAt > now
`;

/**
 * applyReservation of src/abuse/lockout-store.ts, line for line. ARGV: now, kind, maxFailures, then
 * firstLockSeconds, maxLockSeconds, memorySeconds (doubling) or windowSeconds (window).
 * Returns { 1, lockSecondsIfFailed } when allowed (0: below the limit), { 0, retryAfterSeconds } when locked.
 */
const RESERVE = `${WRITE_ENTRY}
local now, kind, maxFailures = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
${READ_LOCKOUT}
if live and lockedUntil > now then
  return {0, lockedUntil - now}
end
if not live then failures = 0 end
failures = failures + 1
if kind == 'doubling' then
  local firstLockSeconds, maxLockSeconds, memorySeconds = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  lockedUntil = 0
  if failures >= maxFailures then
    local beyondLimit = math.min(math.max(failures - maxFailures, 0), 30)
    lockedUntil = now + math.min(maxLockSeconds, firstLockSeconds * 2 ^ beyondLimit)
  end
  expiresAt = math.max(now + memorySeconds, lockedUntil)
else
  if not live then expiresAt = now + tonumber(ARGV[4]) end
  lockedUntil = 0
  if failures >= maxFailures then lockedUntil = expiresAt end
end
store(KEYS[1], now, {'failures', failures, 'lockedUntil', lockedUntil, 'expiresAt', expiresAt}, expiresAt)
if lockedUntil > now then return {1, lockedUntil - now} end
return {1, 0}
`;

/** applyRelease: gives back one never-evaluated attempt, and the lock it set, if any. ARGV: now, maxFailures, lockSetUntil (0: none). */
const RELEASE = `${WRITE_ENTRY}
local now, maxFailures, lockSetUntil = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
${READ_LOCKOUT}
if not live then return 0 end
failures = math.max(0, failures - 1)
if failures < maxFailures or (lockSetUntil > 0 and lockedUntil == lockSetUntil) then lockedUntil = 0 end
store(KEYS[1], now, {'failures', failures, 'lockedUntil', lockedUntil, 'expiresAt', expiresAt}, expiresAt)
return 1
`;

interface GatehouseScripts {
  gatehouseIncrement(key: string, now: number, windowSeconds: number): Promise<[number, number]>;
  gatehouseReserve(key: string, now: number, kind: string, maxFailures: number, ...policyArguments: number[]): Promise<[number, number]>;
  gatehouseRelease(key: string, now: number, maxFailures: number, lockSetUntil: number): Promise<number>;
}

/**
 * The counter and lockout stores over one Redis connection. Commands fail (reject) when Redis
 * does; redis.ts decides what to do then. defineCommand sends each script by its SHA (EVALSHA)
 * and the source only when Redis has not seen it yet (after a restart, say).
 */
export function createRedisStores(redis: Redis, keyPrefix: string): { counters: CounterStore; lockouts: LockoutStore } {
  redis.defineCommand('gatehouseIncrement', { numberOfKeys: 1, lua: INCREMENT });
  redis.defineCommand('gatehouseReserve', { numberOfKeys: 1, lua: RESERVE });
  redis.defineCommand('gatehouseRelease', { numberOfKeys: 1, lua: RELEASE });
  const scripts = redis as unknown as GatehouseScripts;
  const counterKey = (key: string) => `${keyPrefix}counter:${key}`;
  const lockoutKey = (key: string) => `${keyPrefix}lockout:${key}`;
  const policyArguments = (policy: LockoutPolicy): number[] =>
    policy.kind === 'doubling' ? [policy.firstLockSeconds, policy.maxLockSeconds, policy.memorySeconds] : [policy.windowSeconds];

  return {
    counters: {
      async increment(key, windowSeconds, now) {
        const [count, resetAt] = await scripts.gatehouseIncrement(counterKey(key), now, windowSeconds);
        return { count, resetAt };
      },
    },
    lockouts: {
      async reserve(key, policy, now) {
        const [allowed, seconds] = await scripts.gatehouseReserve(lockoutKey(key), now, policy.kind, policy.maxFailures, ...policyArguments(policy));
        if (allowed !== 1) return { allowed: false, retryAfterSeconds: seconds };
        return seconds > 0 ? { allowed: true, lockSecondsIfFailed: seconds } : { allowed: true };
      },
      async release(key, policy, now, lockSetUntil) {
        await scripts.gatehouseRelease(lockoutKey(key), now, policy.maxFailures, lockSetUntil ?? 0);
      },
      async reset(key) {
        await redis.del(lockoutKey(key));
      },
    },
  };
}
