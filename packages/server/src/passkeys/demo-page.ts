import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the test page lives; /passkeys/demo/demo.js is its bundle. */
export const PASSKEY_DEMO_PATH = '/passkeys/demo';

/**
 * The page's policy: its one script from here, calls to this origin only, nothing else (no styles,
 * images, frames, forms posting anywhere, <base> tricks). It replaces the API's `default-src 'none'`
 * on the page and its script alone.
 */
export const PASSKEY_DEMO_CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/**
 * The demo's sources (page.html, demo.js), found from this module's place: the sources
 * (packages/server/src/passkeys) and the bundle `npm start` runs (dist/main.js) sit at different depths.
 */
export function findPasskeyDemoSources(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  const here = join(from, 'demo');
  if (existsSync(join(here, 'page.html'))) return here;
  for (let directory = from; ; directory = dirname(directory)) {
    const candidate = join(directory, 'packages', 'server', 'src', 'passkeys', 'demo');
    if (existsSync(join(candidate, 'page.html'))) return candidate;
    if (dirname(directory) === directory) return undefined;
  }
}

export interface PasskeyDemo {
  html: string;
  script: () => Promise<string>;
}

/**
 * The page, and its script bundled once on first request with esbuild (a dependency: scripts/build.mjs
 * uses it too) from demo.js and @simplewebauthn/browser (a dev dependency, which is why the page is a
 * development tool). Undefined when the sources are not there.
 */
export function loadPasskeyDemo(sources: string | undefined = findPasskeyDemoSources()): PasskeyDemo | undefined {
  if (!sources) return undefined;
  const html = readFileSync(join(sources, 'page.html'), 'utf8');
  let bundle: Promise<string> | undefined;
  const script = () => {
    bundle ??= (async () => {
      const { build } = await import('esbuild');
      const result = await build({
        entryPoints: [join(sources, 'demo.js')],
        bundle: true,
        write: false,
        format: 'esm',
        target: 'es2020',
        minify: true,
        legalComments: 'none',
        logLevel: 'silent',
      });
      return result.outputFiles[0]!.text;
    })();
    // A failed build (the dev dependency missing) is tried again on the next request instead of cached.
    bundle.catch(() => {
      bundle = undefined;
    });
    return bundle;
  };
  return { html, script };
}
