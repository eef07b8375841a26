import { availableParallelism, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Bench } from 'tinybench';
import { startKickDriver } from '../src/backend/workers/benchmarks.js';
import { defaultSpinChecks } from '../src/backend/workers/control.js';
import { latencyDistribution } from '../src/backend/workers/latency.js';
import type { RoundTripBatch } from '../src/backend/workers/ping-pong.js';
import { WorkersRun, workerScriptPath } from '../src/backend/workers/run-workers.js';
import { parseRunConfig } from '../src/config/run-config.js';
import { policyByName } from '../src/policy/index.js';
import type { BenchFigure } from './common.js';
// Types only: the levels run in workers/kick-breakdown.worker.ts, which bundles kick-breakdown.ts itself
// (every built entry imports the one shared chunk and no other: test/build/bundle.test.ts).
import type { BreakdownLevel } from './kick-breakdown.js';

/** kick-breakdown.ts `breakdownLevels`, in order. */
const breakdownLevels: readonly BreakdownLevel[] = ['raw', 'mailbox', 'casMode', 'notify'];
/** kick-breakdown.ts `BreakdownWord.i32s` (its target checks the buffer is that large). */
const breakdownBufferI32s = 80;

/**
 * `npm run bench -- kick-breakdown`: the raw spin ping-pong, then one item of the kick protocol at a time
 * (bench/kick-breakdown.ts says what each level adds), then the sibling kick itself on a real `workers`
 * run, all measured in interleaved rounds in one process (tinybench, one task per level, samples timed
 * in the driving worker). Reports each level's p50 round trip, what it adds to the level before, and its
 * ratio to raw.
 */
export interface BreakdownRow {
  level: BreakdownLevel | 'kick';
  /** Median of the trips timed one by one, net of the clock bracket, ns. */
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  /** Median of the per-batch means (as the kick benchmark's `roundTripNs`). */
  batchMedianNs: number;
  /** p50 minus the previous level's p50. */
  addedNs: number;
  ratioToRaw: number;
  trips: number;
}

export interface BreakdownReport {
  cpus: number;
  loadAverage: number[];
  rows: BreakdownRow[];
}

interface Remote {
  roundTrips(count: number, maxMs?: number, warmup?: number): RoundTripBatch;
}

interface Pair {
  remote: Comlink.Remote<Remote & { stop(): void; release?(): void }>;
  resume(): Promise<void>;
  pause(): Promise<void>;
  close(): Promise<void>;
}

function startLevel(level: BreakdownLevel): Pair {
  const buffer = new SharedArrayBuffer(breakdownBufferI32s * 4);
  const script = workerScriptPath('kick-breakdown.worker');
  const target = new Worker(script, { workerData: { buffer, role: 'target', level } });
  const driver = new Worker(script, { workerData: { buffer, role: 'driver', level } });
  const remote = Comlink.wrap<Remote & { stop(): void }>(nodeEndpoint(driver));
  return {
    remote,
    resume: async () => {},
    pause: async () => {},
    close: async () => {
      await remote.stop();
      remote[Comlink.releaseProxy]();
      await Promise.all([driver.terminate(), target.terminate()]);
    },
  };
}

/** The kick benchmark's rig (src/backend/workers/benchmarks.ts `startKickRig`, one core x 2). */
async function startKick(cpus: number): Promise<Pair> {
  const config = parseRunConfig(
    {
      machine: { cores: 1, smt: 2, memoryMiB: 64, vms: [{ vcpus: 1, guestMemoryMiB: 4, pin: [1] }] },
      workload: { mix: 'all-fast', exitIntervalCycles: 1e15, guestAccessesPerQuantum: 0 },
      run: { exits: 100_000_000 },
    },
    { endsByTime: true },
  );
  const spinChecks = defaultSpinChecks(2, cpus);
  const run = await WorkersRun.start(config, policyByName('asi'), { monitor: false, spinChecks, cpus });
  const { remote, close } = await startKickDriver(run, spinChecks);
  return {
    remote: remote as Pair['remote'],
    resume: async () => {
      await run.resume();
    },
    pause: async () => {
      await run.pause();
    },
    close,
  };
}

export interface BreakdownOptions {
  rounds?: number;
  batchesPerRound?: number;
  tripsPerBatch?: number;
  log?: (line: string) => void;
}

export async function measureKickBreakdown(options: BreakdownOptions = {}): Promise<BreakdownReport> {
  const rounds = options.rounds ?? 5;
  const batches = options.batchesPerRound ?? 20;
  const tripsPerBatch = options.tripsPerBatch ?? 100;
  const log = options.log ?? (() => {});
  const cpus = availableParallelism();
  const names: (BreakdownLevel | 'kick')[] = [...breakdownLevels, 'kick'];
  const pairs: Pair[] = [];
  try {
    for (const level of breakdownLevels) pairs.push(startLevel(level));
    pairs.push(await startKick(cpus));
    const tripsNs: number[][] = names.map(() => []);
    const batchMeansNs: number[][] = names.map(() => []);
    for (let round = 0; round < rounds; round++) {
      log(`kick breakdown: round ${round + 1} of ${rounds}`);
      const bench = new Bench({ time: 0, warmup: false, iterations: batches });
      names.forEach((name, i) => {
        bench.add(
          name,
          async () => {
            const batch = await pairs[i].remote.roundTrips(tripsPerBatch, 50);
            const meanNs = batch.bracketedNs / batch.bracketedTrips - batch.clockOverheadNs;
            batchMeansNs[i].push(meanNs);
            for (const ns of batch.tripNs) tripsNs[i].push(ns - batch.clockOverheadNs);
            return { overriddenDuration: meanNs / 1e6 };
          },
          { beforeAll: () => pairs[i].resume(), afterAll: () => pairs[i].pause() },
        );
      });
      await bench.run();
      for (const task of bench.tasks) {
        if (task.result.state !== 'completed')
          throw new Error(`kick breakdown: ${task.name} did not complete: ${task.result.state}`);
      }
    }
    const rows: BreakdownRow[] = [];
    names.forEach((level, i) => {
      const distribution = latencyDistribution(tripsNs[i]);
      const previous = rows.at(-1);
      const raw = rows[0]?.p50Ns ?? distribution.p50Ns;
      rows.push({
        level,
        p50Ns: distribution.p50Ns,
        p90Ns: distribution.p90Ns,
        p99Ns: distribution.p99Ns,
        batchMedianNs: median(batchMeansNs[i]),
        addedNs: previous ? distribution.p50Ns - previous.p50Ns : 0,
        ratioToRaw: distribution.p50Ns / Math.max(1, raw),
        trips: distribution.samples,
      });
    });
    return { cpus, loadAverage: loadavg(), rows };
  } finally {
    for (const pair of pairs) await pair.close();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The bench runner's figures: one a level (round trips per second at p50; the rest in `extra`). */
export async function runKickBreakdownBench(options: BreakdownOptions = {}): Promise<BenchFigure[]> {
  const report = await measureKickBreakdown({
    log: (line) => process.stdout.write(`  ${line}\n`),
    ...options,
  });
  return report.rows.map((row) => ({
    suite: 'kick-breakdown',
    name: row.level === 'kick' ? '+ step dispatch = the sibling kick' : levelTitle(row.level),
    opsPerSecond: 1e9 / row.p50Ns,
    rmePercent: 0,
    samples: row.trips,
    extra: {
      p50Ns: Math.round(row.p50Ns),
      p99Ns: Math.round(row.p99Ns),
      addedNs: Math.round(row.addedNs),
      ratioToRaw: Number(row.ratioToRaw.toFixed(2)),
      batchMedianNs: Math.round(row.batchMedianNs),
      cpus: report.cpus,
    },
  }));
}

function levelTitle(level: BreakdownLevel): string {
  return { raw: 'raw spin ping-pong', mailbox: '+ mailbox poll', casMode: '+ casMode', notify: '+ notify' }[
    level
  ];
}
