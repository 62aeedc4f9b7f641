// Peers run on plain Node like Gatehouse's own bundle: no TypeScript loader thread in any measured process.
import { build } from 'esbuild';
import type { TargetName } from './options.ts';

const peersDirectory = new URL('../peers/', import.meta.url).pathname;
// Inside the repo (git-ignored), so the bundles still find node_modules.
const outputDirectory = new URL('../out/peers/', import.meta.url).pathname;

/** Bundles each peer with its shared users module; packages stay in node_modules. Returns the entry files. */
export async function buildPeers(names: TargetName[]): Promise<Map<TargetName, string>> {
  const peers = names.filter((name) => !name.startsWith('gatehouse'));
  if (peers.length === 0) return new Map();
  await build({
    entryPoints: peers.map((name) => `${peersDirectory}${name}.ts`),
    outdir: outputDirectory,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  return new Map(peers.map((name) => [name, `${outputDirectory}${name}.mjs`]));
}
