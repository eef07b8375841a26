import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { runningThreadsOf, WorkersRun, workerScriptPath } from '../src/backend/workers/run-workers.js';
import { parseMachineConfig } from '../src/config/machine-config.js';
import { parseRunConfig } from '../src/config/run-config.js';
import { simRegionBytes } from '../src/machine.js';
import { computeLayout } from '../src/memory/layout.js';
import { planRegions } from '../src/memory/regions.js';
import { policyByName } from '../src/policy/index.js';
import { type BenchFigure, benchTimeMs } from './common.js';
import type { SharedKernelBatch, SharedKernelPath } from './shared-kernel.js';

/**
 * `npm run bench -- shared-kernel`: the prototype of bench/shared-kernel.ts (the access kernel over a
 * shared WebAssembly memory, used from workers) against the JavaScript path, per cache access, with one
 * hyperthread of the core running and with both siblings running at once; then the all-fast exit rate
 * of the `workers` backend measured in the same run, and what it would become with the kernel's per-access
 * cost in place of the JavaScript path's.
 */

/** The workers bench's all-fast machine (benchmarks.ts `machineInput(1, 2)`). */
const machineInput = { cores: 1, smt: 2, memoryMiB: 64, vms: [{ vcpus: 2, guestMemoryMiB: 4 }] };
/**
 * Cache accesses (guest reads and handler line accesses through `CoreCaches.access`) per exit on that
 * workload: 8.31, 96% of them L1D hits, counted in a 4,000-exit sim run of asi on all-fast with
 * `exitIntervalCycles: 100` on the JavaScript path (ASI_EMU_DEBUG=1, `CoreCaches.prototype.access`
 * wrapped with a counter), 2026-12-06. The sim and the workers backend step the same state machine.
 */
export const cacheAccessesPerExit = 8.31;
/** The all-fast guest's working set (workload.ts `guestWorkingSetPages` default). */
const workingSetPages = 8;

export interface PathFigure {
  scenario: 'one sibling' | 'two siblings';
  path: SharedKernelPath;
  /** Median over the batches of ns per access (per worker). */
  nsPerAccess: number;
  hitRate: number;
  batches: number;
}

export interface SharedKernelReport {
  loadAverage: number[];
  paths: PathFigure[];
  exitsPerSecondPerThread: number;
  /**
   * Exits per CPU-second of the process (its hyperthread workers and the idle control thread): what one
   * hyperthread does per second of CPU, the figure the projections start from.
   */
  exitsPerCpuSecondPerThread: number;
  /** The same run on 1 core x 1 (no sibling): per wall-second and per CPU-second. */
  aloneExitsPerSecond: number;
  aloneExitsPerCpuSecond: number;
  /** The same run on 2 cores x 1 (two threads, no core shared): per wall-second per thread and per CPU-second. */
  apartExitsPerSecond: number;
  apartExitsPerCpuSecond: number;
  /** Projected all-fast exits/s per hyperthread with wasm-locked in place of js (two siblings). */
  projectedWasmLocked: number;
  /** The same with cache accesses free: the bound any access path can give. */
  projectedFreeAccesses: number;
}

async function runScenario(
  parties: number,
  paths: SharedKernelPath[],
  rounds: number,
  accesses: number,
): Promise<SharedKernelBatch[][]> {
  const config = parseMachineConfig(machineInput);
  const layout = computeLayout(config, planRegions(config));
  const buffer = new SharedArrayBuffer(layout.totalBytes);
  const memory = new WebAssembly.Memory({
    initial: Math.ceil(simRegionBytes(layout) / 65536),
    // As access-kernel.wat declares its memory (an imported memory's maximum may not exceed it).
    maximum: 8192,
    shared: true,
  });
  const barrier = new SharedArrayBuffer(4);
  const workers = Array.from(
    { length: parties },
    (_, thread) =>
      new Worker(workerScriptPath('shared-kernel.worker'), {
        workerData: {
          machineInput,
          buffer,
          memory,
          firstPfn: Math.floor(layout.frameCount / 2),
          workingSetPages,
          seed: 1 + thread,
          paths,
          rounds,
          accesses,
          barrier,
          parties,
        },
      }),
  );
  return Promise.all(
    workers.map(
      (worker) =>
        new Promise<SharedKernelBatch[]>((resolve, reject) => {
          worker.once('message', (batches: SharedKernelBatch[]) => {
            resolve(batches);
            void worker.terminate();
          });
          worker.once('error', reject);
        }),
    ),
  );
}

/** The workers bench's exit run (benchmarks.ts `timedRun`: asi, all-fast, an exit every ~100 cycles), no monitor. */
async function allFastExits(
  timeMs: number,
  machine: typeof machineInput = machineInput,
): Promise<{ perWallSecondPerThread: number; perCpuSecondPerThread: number }> {
  const config = parseRunConfig({
    machine,
    workload: { mix: 'all-fast', exitIntervalCycles: 100 },
    run: { exits: 100_000_000 },
  });
  const policy = policyByName('asi');
  const cpuBefore = process.cpuUsage();
  const run = await WorkersRun.start(config, policy, { monitor: false, timeMs });
  await run.waitForEnd();
  const result = await run.finish();
  const cpu = process.cpuUsage(cpuBefore);
  const threads = runningThreadsOf(run.machine, policy).length;
  return {
    perWallSecondPerThread: result.exits / result.wallSeconds / threads,
    perCpuSecondPerThread: result.exits / ((cpu.user + cpu.system) / 1e6),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function figuresOf(scenario: PathFigure['scenario'], perWorker: SharedKernelBatch[][]): PathFigure[] {
  const all = perWorker.flat();
  const paths = [...new Set(all.map((batch) => batch.path))];
  return paths.map((path) => {
    const batches = all.filter((batch) => batch.path === path);
    return {
      scenario,
      path,
      nsPerAccess: median(batches.map((batch) => batch.ns / batch.accesses)),
      hitRate: batches.reduce((sum, b) => sum + b.hits, 0) / batches.reduce((sum, b) => sum + b.accesses, 0),
      batches: batches.length,
    };
  });
}

export async function measureSharedKernel(
  options: { rounds?: number; accesses?: number; log?: (line: string) => void } = {},
): Promise<SharedKernelReport> {
  const rounds = options.rounds ?? 15;
  const accesses = options.accesses ?? 200_000;
  const log = options.log ?? (() => {});
  log('shared kernel: one sibling');
  const one = figuresOf(
    'one sibling',
    await runScenario(1, ['js', 'wasm-locked', 'wasm-unlocked'], rounds, accesses),
  );
  log('shared kernel: two siblings');
  const two = figuresOf('two siblings', await runScenario(2, ['js', 'wasm-locked'], rounds, accesses));
  log('shared kernel: all-fast exits on the workers backend (JavaScript path)');
  const exits = await allFastExits(benchTimeMs());
  // One hyperthread alone on its core: the exit path without a sibling to wait for or share lines with.
  const alone = await allFastExits(benchTimeMs(), {
    cores: 1,
    smt: 1,
    memoryMiB: 64,
    vms: [{ vcpus: 1, guestMemoryMiB: 4 }],
  });
  // Two hyperthreads on two cores: as many threads as 1 core x 2, but no core (lock, L1D, core word) shared.
  const apart = await allFastExits(benchTimeMs(), {
    cores: 2,
    smt: 1,
    memoryMiB: 64,
    vms: [{ vcpus: 2, guestMemoryMiB: 4 }],
  });
  const exitsPerSecondPerThread = exits.perWallSecondPerThread;
  // Per CPU-second: a descheduled hyperthread accrues none, so a loaded machine moves it less.
  const exitNs = 1e9 / exits.perCpuSecondPerThread;
  const pick = (path: SharedKernelPath) => two.find((figure) => figure.path === path)?.nsPerAccess ?? 0;
  const savedNs = cacheAccessesPerExit * (pick('js') - pick('wasm-locked'));
  return {
    loadAverage: loadavg(),
    paths: [...one, ...two],
    exitsPerSecondPerThread,
    exitsPerCpuSecondPerThread: exits.perCpuSecondPerThread,
    aloneExitsPerSecond: alone.perWallSecondPerThread,
    aloneExitsPerCpuSecond: alone.perCpuSecondPerThread,
    apartExitsPerSecond: apart.perWallSecondPerThread,
    apartExitsPerCpuSecond: apart.perCpuSecondPerThread,
    projectedWasmLocked: 1e9 / (exitNs - savedNs),
    projectedFreeAccesses: 1e9 / (exitNs - cacheAccessesPerExit * pick('js')),
  };
}

export async function runSharedKernelBench(): Promise<BenchFigure[]> {
  const report = await measureSharedKernel({ log: (line) => process.stdout.write(`  ${line}\n`) });
  const figures: BenchFigure[] = report.paths.map((figure) => ({
    suite: 'shared-kernel',
    name: `cache access, ${figure.scenario}: ${figure.path}`,
    opsPerSecond: 1e9 / figure.nsPerAccess,
    rmePercent: 0,
    samples: figure.batches,
    extra: { nsPerAccess: Number(figure.nsPerAccess.toFixed(1)), hitRate: Number(figure.hitRate.toFixed(3)) },
  }));
  const plain = (name: string, opsPerSecond: number): BenchFigure => ({
    suite: 'shared-kernel',
    name,
    opsPerSecond,
    rmePercent: 0,
    samples: 0,
    extra: { cacheAccessesPerExit, loadAverage1m: Number(report.loadAverage[0].toFixed(2)) },
  });
  figures.push(
    plain('all-fast exits per hyperthread, measured (JavaScript path)', report.exitsPerSecondPerThread),
  );
  figures.push(
    plain('all-fast exits per CPU-second, measured (JavaScript path)', report.exitsPerCpuSecondPerThread),
  );
  figures.push(plain('all-fast exits, 1 core x 1 (no sibling), per second', report.aloneExitsPerSecond));
  figures.push(
    plain('all-fast exits, 1 core x 1 (no sibling), per CPU-second', report.aloneExitsPerCpuSecond),
  );
  figures.push(
    plain('all-fast exits per hyperthread, 2 cores x 1 (no core shared)', report.apartExitsPerSecond),
  );
  figures.push(
    plain('all-fast exits, 2 cores x 1 (no core shared), per CPU-second', report.apartExitsPerCpuSecond),
  );
  figures.push(
    plain('all-fast exits per hyperthread, projected with wasm-locked', report.projectedWasmLocked),
  );
  figures.push(
    plain('all-fast exits per hyperthread, bound with free cache accesses', report.projectedFreeAccesses),
  );
  return figures;
}
