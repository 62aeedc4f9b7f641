// Builds the console into dist/ with Vite, only when a source is newer than the last build, so
// `npm start` (scripts/build.mjs) and the browser test pay for it once. Vite writes into a fresh
// directory that then replaces dist/, so a Gatehouse serving dist/ never sees it half-written.
// `node build.mjs --force` rebuilds regardless.
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
export const consoleDist = join(here, 'dist');
// The client's sources are bundled in (vite.config.mjs aliases @gatehouse/client to them).
const SOURCES = ['index.html', 'vite.config.mjs', 'build.mjs', 'src', '../client/src'].map((path) => join(here, path));

function newestModification(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestModification(join(path, name))));
}

/** Whether dist/ is missing or older than a source file. */
export function adminConsoleIsStale() {
  const built = join(consoleDist, 'index.html');
  if (!existsSync(built)) return true;
  return Math.max(...SOURCES.map(newestModification)) > statSync(built).mtimeMs;
}

/** Builds when stale (or always, with force); resolves to whether it built. */
export async function buildAdminConsole({ force = false, quiet = false } = {}) {
  if (!force && !adminConsoleIsStale()) return false;
  let build;
  try {
    ({ build } = await import('vite'));
  } catch (error) {
    // An install without dev dependencies (npm ci --omit=dev) cannot build: serve what was built, if anything.
    if (force || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    console.warn(`admin console: not rebuilt, Vite is not installed (${existsSync(consoleDist) ? 'serving the last build' : '/admin answers 404 until it is built'})`);
    return false;
  }
  const staging = join(here, `.dist-${process.pid}-${Date.now()}`);
  try {
    await build({ configFile: join(here, 'vite.config.mjs'), logLevel: quiet ? 'warn' : 'info', build: { outDir: staging } });
    const previous = `${staging}-old`;
    if (existsSync(consoleDist)) renameSync(consoleDist, previous);
    renameSync(staging, consoleDist);
    rmSync(previous, { recursive: true, force: true });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildAdminConsole({ force: process.argv.includes('--force') });
}
