// Fails CI when a dialect's suites were skipped: every test named "[sqlite]" must
// have a passing "[postgres]" twin, nothing may be skipped or failed, and the suites
// that need Redis ("[redis]"), several worker processes ("[workers]") and Chromium ("[browser]") must have run.
import { readFileSync } from 'node:fs';

const reportPath = process.argv[2];
const report = JSON.parse(readFileSync(reportPath, 'utf8'));
const tests = report.testResults.flatMap((file) => file.assertionResults);
const count = (predicate) => tests.filter(predicate).length;
const byDialect = (dialect, status) => count((t) => t.fullName.includes(`[${dialect}]`) && t.status === status);

const problems = [];
const skipped = count((t) => t.status !== 'passed' && t.status !== 'failed');
const failed = count((t) => t.status === 'failed');
const sqlite = byDialect('sqlite', 'passed');
const postgres = byDialect('postgres', 'passed');
if (failed > 0) problems.push(`${failed} tests failed`);
if (skipped > 0) problems.push(`${skipped} tests were skipped or todo`);
if (sqlite === 0) problems.push('no SQLite suite ran');
if (postgres === 0) problems.push('no PostgreSQL suite ran (is TEST_DATABASE_URL set?)');
if (postgres !== sqlite) problems.push(`PostgreSQL ran ${postgres} tests but SQLite ${sqlite}: some PostgreSQL suites were skipped`);
const tagged = Object.fromEntries(['redis', 'workers', 'browser'].map((tag) => [tag, count((t) => t.fullName.includes(`[${tag}]`) && t.status === 'passed')]));
if (tagged.redis === 0) problems.push('no Redis suite ran (is TEST_REDIS_URL set?)');
if (tagged.workers === 0) problems.push('no multi-worker suite ran');
if (tagged.browser === 0) problems.push('no browser suite ran (is /usr/bin/chromium installed?)');

console.log(`test report: ${tests.length} tests, sqlite ${sqlite}, postgres ${postgres}, redis ${tagged.redis}, workers ${tagged.workers}, browser ${tagged.browser}, failed ${failed}, skipped ${skipped}`);
if (problems.length > 0) {
  console.error(`test report check failed:\n  - ${problems.join('\n  - ')}`);
  process.exit(1);
}
