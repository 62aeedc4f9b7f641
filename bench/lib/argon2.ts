// Scenario (c): the login ceiling, measured without HTTP on the core the servers get.
import { execFile } from 'node:child_process';
import type { BenchOptions } from './options.ts';
import { trackChild, type Pinning } from './processes.ts';
import { median, type Log } from './stats.ts';
import { repoRoot } from './targets.ts';

function runChild(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeout: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, options, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    trackChild(child);
  });
}
const scriptPath = new URL('./argon2-rate.ts', import.meta.url).pathname;

interface HashRun {
  hashesPerSecond: number;
  hashes: number;
  elapsedSeconds: number;
  threadPoolSize: number;
  inFlight: number;
}

export interface Argon2Figure {
  hashesPerSecond: number;
  parameters: { algorithm: 'argon2id'; memoryKiB: number; timeCost: number; parallelism: number };
  threadPoolSize: number;
  cores: string;
  runs: HashRun[];
}

export async function runArgon2(pinning: Pinning, options: BenchOptions, log: Log): Promise<Argon2Figure> {
  const nodeArguments = ['--import', 'tsx', scriptPath, String(options.hashSeconds)];
  const [command, args] = pinning.used
    ? [pinning.tasksetPath!, ['-c', String(pinning.serverCore), process.execPath, ...nodeArguments]]
    : [process.execPath, nodeArguments];
  const runs: HashRun[] = [];
  for (let run = 1; run <= options.runs; run++) {
    // The default pool, as Gatehouse gets it (gatehouseEnv drops UV_THREADPOOL_SIZE too).
    const { UV_THREADPOOL_SIZE: _ignored, ...env } = process.env;
    const stdout = await runChild(command, args, { cwd: repoRoot, env, timeout: (options.hashSeconds + 60) * 1000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as HashRun;
    runs.push(result);
    log(`(c) run ${run}/${options.runs}: ${result.hashesPerSecond.toFixed(1)} Argon2id hashes/s (pool ${result.threadPoolSize}, ${result.inFlight} in flight)`);
  }
  return {
    hashesPerSecond: median(runs.map((run) => run.hashesPerSecond)),
    parameters: { algorithm: 'argon2id', memoryKiB: 19_456, timeCost: 2, parallelism: 1 },
    threadPoolSize: runs[0]?.threadPoolSize ?? 4,
    cores: pinning.used ? `core ${pinning.serverCore} (same as the servers)` : 'not pinned',
    runs,
  };
}
