/**
 * Gatehouse's OpenAPI document as the server serves it, for tools:
 *
 *   node --import tsx scripts/openapi.ts dump [file]    print (or write) /openapi.json
 *   node --import tsx scripts/openapi.ts lint           Redocly's recommended rules (redocly.yaml); a warning fails too
 *   node --import tsx scripts/openapi.ts types --write  regenerate packages/client/src/generated/openapi.ts
 *   node --import tsx scripts/openapi.ts types --check  fail when that file differs from what the document generates
 *
 * The document comes from a real app (buildApp on a throwaway SQLite database, default settings),
 * never from a file kept beside the code, so neither the lint nor the client's types can describe a
 * server that no longer exists. npm scripts: lint:openapi, generate:client-types, check:client-types.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { loadConfig } from '../packages/server/src/config.ts';
import { createDeps } from '../packages/server/src/deps.ts';
import { buildApp } from '../packages/server/src/http/app.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENT_TYPES = join(ROOT, 'packages/client/src/generated/openapi.ts');
const TYPES_HEADER =
  "// Generated from Gatehouse's OpenAPI document by `npm run generate:client-types`; do not edit.\n" +
  '// CI runs `npm run check:client-types`, which fails when this file differs from what the server generates.\n';

/** GET /openapi.json of an app with the default settings on a database made for the occasion. */
async function servedDocument(): Promise<Record<string, unknown>> {
  const directory = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-'));
  try {
    // Only DATABASE_URL is set, so the document is the same on every machine (servers: the default issuer).
    const config = loadConfig({ DATABASE_URL: `sqlite:${join(directory, 'gatehouse.db')}`, LOG_LEVEL: 'silent' });
    const deps = await createDeps(config);
    try {
      const app = await buildApp(deps, { logger: false });
      try {
        const response = await app.inject({ method: 'GET', url: '/openapi.json' });
        if (response.statusCode !== 200) throw new Error(`GET /openapi.json answered ${response.statusCode}: ${response.body.slice(0, 300)}`);
        return JSON.parse(response.body) as Record<string, unknown>;
      } finally {
        await app.close();
      }
    } finally {
      await deps.close();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

async function clientTypes(document: Record<string, unknown>): Promise<string> {
  const nodes = await openapiTS(document as unknown as Parameters<typeof openapiTS>[0], { silent: true });
  return TYPES_HEADER + astToString(nodes);
}

interface RedoclyReport {
  version?: string;
  totals: { errors: number; warnings: number };
  problems: Array<{ ruleId: string; severity: string; message: string; location?: Array<{ pointer?: string }> }>;
}

function lint(document: Record<string, unknown>): number {
  const directory = mkdtempSync(join(tmpdir(), 'gatehouse-openapi-'));
  try {
    const file = join(directory, 'openapi.json');
    writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
    const run = spawnSync(join(ROOT, 'node_modules/.bin/redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format=json'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    });
    let report: RedoclyReport;
    try {
      report = JSON.parse(run.stdout) as RedoclyReport;
    } catch {
      process.stderr.write(`openapi lint: redocly gave no report (exit ${run.status}):\n${run.stdout}\n${run.stderr}\n`);
      return 1;
    }
    const { errors, warnings } = report.totals;
    for (const problem of report.problems) {
      process.stdout.write(`  ${problem.severity.padEnd(7)} ${problem.ruleId}  ${problem.location?.[0]?.pointer ?? ''}\n          ${problem.message}\n`);
    }
    const operations = Object.values((document.paths ?? {}) as Record<string, object>).reduce((count, item) => count + Object.keys(item).length, 0);
    process.stdout.write(`openapi lint (redocly ${report.version ?? '?'}, recommended rules + redocly.yaml): ${operations} operations, ${errors} errors, ${warnings} warnings\n`);
    // Redocly exits 0 on warnings; here they fail too.
    return errors + warnings === 0 ? 0 : 1;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const [command, argument] = process.argv.slice(2);
  if (command === 'dump') {
    const text = `${JSON.stringify(await servedDocument(), null, 2)}\n`;
    if (argument) writeFileSync(argument, text);
    else process.stdout.write(text);
    return 0;
  }
  if (command === 'lint') return lint(await servedDocument());
  if (command === 'types' && (argument === '--write' || argument === '--check')) {
    const generated = await clientTypes(await servedDocument());
    const target = relative(ROOT, CLIENT_TYPES);
    if (argument === '--write') {
      writeFileSync(CLIENT_TYPES, generated);
      process.stdout.write(`wrote ${target}\n`);
      return 0;
    }
    let committed = '';
    try {
      committed = readFileSync(CLIENT_TYPES, 'utf8');
    } catch {
      // missing: reported as stale below
    }
    if (committed === generated) {
      process.stdout.write(`${target} matches the server's OpenAPI document\n`);
      return 0;
    }
    const committedLines = committed.split('\n');
    const generatedLines = generated.split('\n');
    const found = generatedLines.findIndex((line, index) => line !== committedLines[index]);
    const firstDifference = found === -1 ? generatedLines.length : found;
    process.stderr.write(
      `${target} is stale: it differs from what the server's OpenAPI document generates ` +
        `(first at line ${firstDifference + 1}: ${JSON.stringify(generatedLines[firstDifference] ?? '')}). ` +
        'Run `npm run generate:client-types` and commit the result.\n',
    );
    return 1;
  }
  process.stderr.write('usage: node --import tsx scripts/openapi.ts dump [file] | lint | types --write|--check\n');
  return 2;
}

// Exit explicitly: the hashing pool's threads or a pool timer must not hold the script open.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`openapi: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
