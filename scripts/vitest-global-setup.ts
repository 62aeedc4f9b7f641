// Says, at the start and again at the end of a test run, which runtime ran it and whether the
// PostgreSQL suites were skipped; under CI a run without them fails instead of passing quietly.

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
  const line = `${postgresLine}; ${redisLine}`;
  if ((skipReason || !process.env.TEST_REDIS_URL) && process.env.CI === 'true') {
    throw new Error(`${line}; CI must test PostgreSQL and Redis too: set TEST_DATABASE_URL=postgres://… and TEST_REDIS_URL=redis://…`);
  }
  const runtime = `Node ${process.version}`;
  console.log(`\n${runtime}; ${line}\n`);
  return () => console.log(`\n${runtime}; ${line}\n`);
}
