// The console is served by Gatehouse at /admin under a strict CSP (script-src 'self'; style-src 'self'):
// everything Vite emits must be a file, never an inline script or style.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The Gatehouse the dev server proxies the API to: its default listen address (PORT 2000), or GATEHOUSE_URL.
const gatehouse = (process.env.GATEHOUSE_URL || 'http://127.0.0.1:2000').replace(/\/+$/, '');

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/admin/',
  // @gatehouse/client from its source: no build order between the workspace packages, one bundle.
  resolve: { alias: { '@gatehouse/client': fileURLToPath(new URL('../client/src/index.ts', import.meta.url)) } },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill would be one more script; every browser with module scripts that this targets has modulepreload.
    modulePreload: { polyfill: false },
    // Small assets (icons, fonts) inlined as data: URLs would need img-src/font-src data: in the CSP.
    assetsInlineLimit: 0,
    sourcemap: true,
  },
  // `npm run dev -w @gatehouse/admin-console` against a Gatehouse on :2000, or at GATEHOUSE_URL (the API is same-origin in production).
  server: {
    proxy: Object.fromEntries(
      ['/login', '/logout', '/token', '/users', '/sessions', '/audit', '/keys', '/clients', '/me'].map((path) => [path, gatehouse]),
    ),
  },
});
