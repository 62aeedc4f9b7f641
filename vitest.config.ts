import { defineConfig } from 'vitest/config';

// CI asks for a JSON report so it can prove the PostgreSQL suites ran (scripts/check-test-report.mjs).
const reportFile = process.env.GATEHOUSE_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: reportFile ? ['default', 'json'] : ['default'],
    ...(reportFile ? { outputFile: { json: reportFile } } : {}),
  },
});
