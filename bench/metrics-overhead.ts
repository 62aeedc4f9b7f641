// What the metrics hooks cost a cheap route: GET / on the built service with metrics off and with
// METRICS_TOKEN set (the onResponse histogram hook on), side by side in one run, interleaved A/B/A/B
// so drift on a shared machine hits both. `node --import tsx bench/metrics-overhead.ts [seconds] [rounds]`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { buildService, freePort, REPO_ROOT } from '../packages/server/test/service-process.ts';

const seconds = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 3);

async function start(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [`${REPO_ROOT}dist/main.js`], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt += 1) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child };
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('service did not start');
}

async function load(url: string): Promise<number> {
  const result = await autocannon({ url: `${url}/`, connections: 16, duration: seconds });
  return result.requests.average;
}

buildService();
const directory = mkdtempSync(join(tmpdir(), 'gatehouse-metrics-bench-'));
const off = await start({ DATABASE_URL: `sqlite:${join(directory, 'off.db')}` });
const on = await start({ DATABASE_URL: `sqlite:${join(directory, 'on.db')}`, METRICS_TOKEN: 'bench-metrics-token-0123456789' });
try {
  await load(off.url); // warm-up, both
  await load(on.url);
  const results = { off: [] as number[], on: [] as number[] };
  for (let round = 0; round < rounds; round += 1) {
    results.off.push(await load(off.url));
    results.on.push(await load(on.url));
  }
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  process.stdout.write(`GET / req/s, ${rounds} rounds of ${seconds} s, 16 connections\n`);
  process.stdout.write(`  metrics off: ${results.off.map(Math.round).join(', ')} (mean ${Math.round(mean(results.off))})\n`);
  process.stdout.write(`  metrics on:  ${results.on.map(Math.round).join(', ')} (mean ${Math.round(mean(results.on))})\n`);
  process.stdout.write(`  on / off: ${(mean(results.on) / mean(results.off)).toFixed(3)}\n`);
} finally {
  off.child.kill('SIGTERM');
  on.child.kill('SIGTERM');
  rmSync(directory, { recursive: true, force: true });
}
