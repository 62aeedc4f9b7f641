// Bundles the server's TypeScript into dist/ with esbuild (about 0.1 s), so the service
// runs on plain Node: no TypeScript loader in the process, less memory, faster start.
// Pure-ESM libraries whose index pulls in far more than we use are bundled and tree-shaken
// (about 14 MB less resident memory); everything else, native addons included, stays in node_modules.
// zxcvbn-ts stays there too: a worker thread require()s its CommonJS build on the first password check.
// Then the admin console (packages/admin-console, Vite), only when a source is newer than its dist/.
import { mkdirSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { buildAdminConsole } from '../packages/admin-console/build.mjs';

const root = new URL('../', import.meta.url);
const BUNDLED = new Set(['kysely', 'jose', '@sinclair/typebox']);
const { dependencies } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const external = Object.keys(dependencies).filter((name) => !BUNDLED.has(name));
const outdir = new URL('dist/', root).pathname;
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: ['main', 'cli'].map((name) => new URL(`packages/server/src/${name}.ts`, root).pathname),
  outdir,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  sourcemap: true,
  logLevel: 'warning',
});
await buildAdminConsole({ quiet: true });
