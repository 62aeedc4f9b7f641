import { defineConfig } from 'vitest/config';

// CI asks for a JSON report so it can prove the PostgreSQL suites ran (scripts/check-test-report.mjs).
const reportFile = process.env.GATEHOUSE_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Prints the runtime and whether the PostgreSQL suites ran; fails under CI=true when they would not.
    globalSetup: ['scripts/vitest-global-setup.ts'],
    reporters: reportFile ? ['default', 'json'] : ['default'],
    ...(reportFile ? { outputFile: { json: reportFile } } : {}),
  },
});
