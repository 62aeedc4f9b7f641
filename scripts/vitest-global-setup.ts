// Says, at the start and again at the end of a test run, which runtime ran it and whether the
// PostgreSQL, Redis and browser suites were skipped; under CI a run without them fails instead of passing quietly.
import { existsSync } from 'node:fs';

/** Why the PostgreSQL suites will not run, or undefined when they will. */
export function postgresSkipReason(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.TEST_DATABASE_URL) return 'TEST_DATABASE_URL is not set';
  const wanted = env.TEST_DIALECTS?.split(',').map((name) => name.trim());
  if (wanted && !wanted.includes('postgres')) return `TEST_DIALECTS=${env.TEST_DIALECTS} leaves them out`;
  return undefined;
}

export default function setup(): () => void {
  const skipReason = postgresSkipReason(process.env);
  const postgresLine = skipReason
    ? `PostgreSQL suites skipped: ${skipReason} (only SQLite was tested)`
    : 'PostgreSQL suites included (TEST_DATABASE_URL is set)';
  const redisLine = process.env.TEST_REDIS_URL ? 'Redis suites included (TEST_REDIS_URL is set)' : 'Redis suites skipped: TEST_REDIS_URL is not set';
  const hasChromium = existsSync('/usr/bin/chromium');
  const browserLine = hasChromium ? 'browser suite included (/usr/bin/chromium)' : 'browser suite skipped: /usr/bin/chromium is missing (apt-get install -y chromium)';
  const line = `${postgresLine}; ${redisLine}; ${browserLine}`;
  if ((skipReason || !process.env.TEST_REDIS_URL) && process.env.CI === 'true') {
    throw new Error(`${line}; CI must test PostgreSQL and Redis too: set TEST_DATABASE_URL=postgres://… and TEST_REDIS_URL=redis://…`);
  }
  if (!hasChromium && process.env.CI === 'true') throw new Error(`${line}; CI must run the admin console in Chromium (.ci/run installs it)`);
  const runtime = `Node ${process.version}`;
  console.log(`\n${runtime}; ${line}\n`);
  return () => console.log(`\n${runtime}; ${line}\n`);
}
