// node --import for processes the tests spawn: `@gatehouse/*` imports resolve to this checkout's
// packages/*/dist, even where node_modules' workspace links point at another checkout (a git worktree
// sharing node_modules). In the repository itself they point here anyway, and this changes nothing.
import { register } from 'node:module';

const packagesUrl = new URL('../../', import.meta.url).href;
register(
  `data:text/javascript,${encodeURIComponent(`
    export async function resolve(specifier, context, nextResolve) {
      const match = /^@gatehouse\\/([a-z-]+)$/.exec(specifier);
      if (match) return { url: ${JSON.stringify(packagesUrl)} + match[1] + '/dist/index.js', shortCircuit: true };
      return nextResolve(specifier, context);
    }
  `)}`,
);
