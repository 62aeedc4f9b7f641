import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Deps } from '../../deps.ts';
import { envelope } from '../envelope.ts';

export const ADMIN_CONSOLE_PATH = '/admin';

/**
 * The console's policy: its own scripts and styles only (Vite emits them as files, never inline),
 * calls to this origin only (the admin API), no plugins, no framing, no <base> trick, forms posting
 * only here. It replaces the API's `default-src 'none'` on these answers alone.
 */
export const ADMIN_CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/**
 * packages/admin-console/dist, found from this module's place: the sources (packages/server/src/…)
 * and the bundle `npm start` runs (dist/main.js at the root) sit at different depths.
 */
export function findAdminConsoleDist(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let directory = from; ; directory = dirname(directory)) {
    const candidate = join(directory, 'packages', 'admin-console', 'dist');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(directory) === directory) return undefined;
  }
}

/** The admin console's static files at /admin, with a strict CSP; any other path below it is the app's page. */
export async function adminConsoleRoutes(app: FastifyInstance, _deps: Deps, root: string | null = findAdminConsoleDist() ?? null): Promise<void> {
  await app.register(async (scope) => {
    scope.addHook('onRequest', (_request, reply, done) => {
      reply.header('content-security-policy', ADMIN_CONSOLE_CSP);
      done();
    });

    if (!root) {
      // A checkout where nothing ran the build (npm start and npm run build do): say so instead of a bare 404.
      const notBuilt = (_request: unknown, reply: FastifyReply) =>
        reply.code(404).send(envelope(404, 'admin console not built - run npm run build'));
      scope.get(ADMIN_CONSOLE_PATH, { schema: { hide: true } }, notBuilt);
      scope.get(`${ADMIN_CONSOLE_PATH}/*`, { schema: { hide: true } }, notBuilt);
      return;
    }

    // serve: false: only reply.sendFile, which refuses paths leaving root; the routes below pick the file.
    await scope.register(fastifyStatic, { root, serve: false, dotfiles: 'ignore', etag: true, lastModified: true });
    const page = (_request: unknown, reply: FastifyReply) => reply.sendFile('index.html', { cacheControl: false });
    scope.get(ADMIN_CONSOLE_PATH, { schema: { hide: true } }, page);
    scope.get<{ Params: { '*': string } }>(`${ADMIN_CONSOLE_PATH}/*`, { schema: { hide: true } }, (request, reply) => {
      const path = request.params['*'];
      const lastSegment = path.slice(path.lastIndexOf('/') + 1);
      // A page of the app (/admin/users/7) has no dot; a file does, and a missing one is a 404.
      if (!lastSegment.includes('.')) return page(request, reply);
      // Vite names the bundles by their content hash: a browser may keep them for good.
      if (path.startsWith('assets/')) return reply.sendFile(path, { maxAge: '365d', immutable: true });
      return reply.sendFile(path, { cacheControl: false });
    });
  });
}
