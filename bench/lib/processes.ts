import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Pinning {
  used: boolean;
  /** Why pinning is off, or the cores used. */
  description: string;
  tasksetPath?: string;
  serverCore?: number;
  loadGeneratorCore?: number;
}

/** Cpus_allowed_list of this process, e.g. "0-1" or "2,5". */
function allowedCores(): number[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((text) => text.startsWith('Cpus_allowed_list:'));
  if (!line) return [];
  const cores: number[] = [];
  for (const part of line.split(':')[1]!.trim().split(',')) {
    const [first, last] = part.split('-').map(Number);
    if (first === undefined || Number.isNaN(first)) continue;
    for (let core = first; core <= (last ?? first); core++) cores.push(core);
  }
  return cores;
}

function findTaskset(): string | undefined {
  for (const directory of (process.env.PATH ?? '/usr/bin').split(':')) {
    if (existsSync(`${directory}/taskset`)) return `${directory}/taskset`;
  }
  return existsSync('/usr/bin/taskset') ? '/usr/bin/taskset' : undefined;
}

/**
 * Servers go on the first allowed core, this process (the load generator) on the second.
 * `taskset -a -p` moves every thread of this process; threads made later inherit it.
 */
export function setUpPinning(wanted: boolean): Pinning {
  if (!wanted) return { used: false, description: 'not pinned (--no-pin)' };
  const cores = allowedCores();
  if (cores.length < 2) return { used: false, description: `not pinned (${cores.length} core allowed)` };
  const tasksetPath = findTaskset();
  if (!tasksetPath) return { used: false, description: 'not pinned (taskset not found)' };
  const [serverCore, loadGeneratorCore] = cores as [number, number];
  execFileSync(tasksetPath, ['-a', '-p', '-c', String(loadGeneratorCore), String(process.pid)], { stdio: 'ignore' });
  return {
    used: true,
    description: `taskset: servers on core ${serverCore}, load generator on core ${loadGeneratorCore}`,
    tasksetPath,
    serverCore,
    loadGeneratorCore,
  };
}

const children = new Set<ChildProcess>();

/** Killed with this process, so an interrupted run leaves nothing behind. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}
process.on('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  logPath: string;
  exited: Promise<number | null>;
}

/** Starts `node <nodeArguments>` on the server core, output to logPath; nodePath picks another Node than this one. */
export function spawnServer(
  pinning: Pinning,
  nodeArguments: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; logPath: string; nodePath?: string },
): ServerProcess {
  const logFd = openSync(options.logPath, 'a');
  const node = options.nodePath ?? process.execPath;
  const [command, args] = pinning.used
    ? [pinning.tasksetPath!, ['-c', String(pinning.serverCore), node, ...nodeArguments]]
    : [node, nodeArguments];
  // taskset execs node, so the pid is the server's own (RSS and CPU are read from it).
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  children.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  return { child, pid: child.pid, logPath: options.logPath, exited };
}

export function logTail(logPath: string, lines = 20): string {
  try {
    return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls url until it answers 200; fails early if the process dies. */
export async function waitUntilReady(server: ServerProcess, url: string, timeoutMs: number): Promise<void> {
  let exitCode: number | null | undefined;
  void server.exited.then((code) => {
    exitCode = code;
  });
  const deadline = performance.now() + timeoutMs;
  let lastProblem = 'no answer';
  while (performance.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`exited with code ${exitCode} before it was ready:\n${logTail(server.logPath)}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
      lastProblem = `HTTP ${response.status}`;
    } catch (error) {
      lastProblem = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`not ready after ${timeoutMs} ms (${lastProblem}):\n${logTail(server.logPath)}`);
}

export async function stopServer(server: ServerProcess, graceMs = 5000): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  const stopped = await Promise.race([server.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!stopped) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function readRssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : 0;
}

const clockTicksPerSecond = 100; // USER_HZ; 100 on every Linux architecture Node supports

/** utime + stime of all the process's threads, in seconds. */
function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

/** Busy time of every core of the machine, in seconds (user, nice, system, irq, softirq, steal). */
function readMachineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / clockTicksPerSecond;
}

export function readRssMB(pid: number): number {
  return (readRssKiB(pid) * 1024) / 1e6;
}

export interface ProcessUsage {
  peakRssMB: number;
  /** CPU seconds used per wall second (1 = one core busy). */
  cpuCores: number;
  /** Cores busy with anything but this server and the load generator: other processes make a run noisy. */
  otherCores: number;
}

/** Samples VmRSS every 100 ms while load runs; stop() gives the peak, the CPU share and the machine's other load. */
export function sampleProcess(pid: number): { stop(): ProcessUsage } {
  const startedAt = performance.now();
  const cpuAtStart = readCpuSeconds(pid);
  const machineAtStart = readMachineBusySeconds();
  const ownCpuAtStart = process.cpuUsage();
  let peakRssKiB = readRssKiB(pid);
  const timer = setInterval(() => {
    try {
      peakRssKiB = Math.max(peakRssKiB, readRssKiB(pid));
    } catch {
      // the process is gone; the run will report its errors
    }
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      let cpuSeconds = 0;
      try {
        peakRssKiB = Math.max(peakRssKiB, readRssKiB(pid));
        cpuSeconds = readCpuSeconds(pid) - cpuAtStart;
      } catch {
        // gone
      }
      const ownCpu = process.cpuUsage(ownCpuAtStart);
      const ownSeconds = (ownCpu.user + ownCpu.system) / 1e6;
      const wallSeconds = (performance.now() - startedAt) / 1000;
      const otherSeconds = Math.max(0, readMachineBusySeconds() - machineAtStart - cpuSeconds - ownSeconds);
      return { peakRssMB: (peakRssKiB * 1024) / 1e6, cpuCores: cpuSeconds / wallSeconds, otherCores: otherSeconds / wallSeconds };
    },
  };
}

export interface QuietStats {
  maxWaitSeconds: number;
  /** Once this much waiting is spent, measurements start without waiting (keeps the run bounded). */
  totalBudgetSeconds: number;
  waits: number;
  waitedSeconds: number;
  /** Measurements that started while other processes were still busy. */
  startedNoisy: number;
}

export const quietStats: QuietStats = { maxWaitSeconds: 0, totalBudgetSeconds: 45, waits: 0, waitedSeconds: 0, startedNoisy: 0 };

/** Before a measurement, waits (bounded) until other processes leave the machine nearly idle. */
export async function waitForQuietMachine(): Promise<void> {
  if (quietStats.maxWaitSeconds <= 0 || quietStats.waitedSeconds >= quietStats.totalBudgetSeconds) return;
  const startedAt = performance.now();
  quietStats.waits++;
  for (;;) {
    const before = readMachineBusySeconds();
    await sleep(250);
    const busyCores = (readMachineBusySeconds() - before) / 0.25;
    const waitedSeconds = (performance.now() - startedAt) / 1000;
    if (busyCores < 0.1 || waitedSeconds >= quietStats.maxWaitSeconds) {
      quietStats.waitedSeconds += waitedSeconds;
      if (busyCores >= 0.1) quietStats.startedNoisy++;
      return;
    }
  }
}
