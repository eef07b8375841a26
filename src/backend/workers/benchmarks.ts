import { availableParallelism, cpus as cpuList } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Bench } from 'tinybench';
import { parseRunConfig, type RunConfigInput } from '../../config/run-config.js';
import { ThreadStat, threadStatIndex } from '../../memory/layout.js';
import { policyByName } from '../../policy/index.js';
import { defaultSpinChecks, workersLimits } from './control.js';
import type { KickDriverSetup } from './kick-bench.js';
import { type LatencyDistribution, latencyDistribution, p999SamplesMin } from './latency.js';
import {
  defaultPingPongOptions,
  PingPongField,
  type PingPongMode,
  type PingPongOptions,
  type RoundTripBatch,
} from './ping-pong.js';
import { runningThreadsOf, WorkersRun, workerScriptPath } from './run-workers.js';

/**
 * The `workers` backend's benchmarks (DESIGN.md "Performance goals"), run through tinybench and
 * reported as JSON (`asi-emu bench --backend workers --json out.json`):
 *
 * - kick: the sibling-kick round trip on the real protocol (kick-bench.ts) next to a raw Atomics
 *   ping-pong between two workers measured in the same run: spin when hyperthreads <= CPUs, wait/notify
 *   when they outnumber them. Goal: ratio <= 1.2 against spin, <= 1.5 against wait/notify. Each of
 *   the three is also a distribution of at least `p999SamplesMin` trips timed one by one (p50, p90,
 *   p99, p99.9 and a log-scale histogram: latency.ts), and the ratio is given on p50 and p99 too.
 * - exits: VM exits per second per hyperthread on the all-fast mix (handled entirely in isolation).
 *   Goal: >= 2 million.
 * - policies: guest steps (and exits) per second under each policy and mix.
 * - scaling: exit throughput for 1, 2, 4, 8 core pairs where the CPUs allow (and 1, 2, 4, ... single
 *   hyperthread cores), against linear from the smallest. Goal: >= 0.8 of linear up to the CPU count.
 *
 * Only one measurement's workers run at a time: a spinning partner of another measurement would take a
 * CPU from this one. Cross-thread round trips are timed in the thread that drives them and handed to
 * tinybench as `overriddenDuration` (one sample = the mean round trip of one batch); each batch also
 * hands back every trip it timed, the samples of the distributions.
 */
export interface WorkersBenchOptions {
  kick?: boolean;
  exits?: boolean;
  /** Policies for the policy-throughput table (none: skip it). */
  policies?: string[];
  mixes?: string[];
  /** Core pairs to try (only those that fit the CPUs run unless none does). */
  scaling?: number[];
  /**
   * Time per measurement, ms (default 1000): the exit, policy and scaling runs. The kick suite is
   * counted in trips instead (`tripsPerSample`, `batchesPerRound`, `kickRounds`).
   */
  timeMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** A smoke run for tests: 10 round trips per sample, 2 samples; checks the report's shape, not figures. */
  quick?: boolean;
}

export interface KickFigures {
  /**
   * Sibling-kick round trip (net of the clock bracket), ns: the median of the per-batch means, as are
   * the raw figures (a shared machine deschedules a batch now and then; the mean is reported too).
   */
  roundTripNs: number;
  roundTripMeanNs: number;
  kicksPerSecond: number;
  rawSpinRoundTripNs: number;
  rawWaitRoundTripNs: number;
  /** roundTripNs over the baseline that applies: spin when threads <= cpus, wait/notify otherwise. */
  ratio: number;
  baseline: 'spin' | 'wait';
  /** Threads that compete for CPUs: the driver (A) and every running hyperthread. */
  threads: number;
  cpus: number;
  rmePercent: number;
  /** Batches of trips (tinybench samples) behind `roundTripNs` and `rmePercent`. */
  batches: number;
  /** Trips timed one by one behind the percentiles (the distribution's `samples`). */
  samples: number;
  /** The kick round trip's distribution (net of the clock bracket): p50Ns ... p999Ns, histogram. */
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  /** null below `p999SamplesMin` trips (the oversubscribed kick, quick runs). */
  p999Ns: number | null;
  minNs: number;
  maxNs: number;
  meanNs: number;
  histogram: LatencyDistribution['histogram'];
  /** The raw ping-pongs as distributions of trips timed one by one, net of the same bracket. */
  rawSpin: LatencyDistribution;
  rawWait: LatencyDistribution;
  /** The kick's p50 and p99 over the same percentile of the baseline that applies (`baseline`). */
  ratioP50: number;
  ratioP99: number;
  /** The per-trip clock bracket subtracted from the kick samples (one performance.now call). */
  clockOverheadNs: number;
  /** The same raw spin trips timed with the same bracket, net of it: a cross-check of the method. */
  rawSpinBracketedNs: number;
  spinChecks: number;
  monitor: boolean;
  machine: string;
}

export interface ExitFigures {
  exitsPerSecondPerThread: number;
  /** The same run with the invariant monitor checking every event. */
  exitsPerSecondPerThreadMonitored: number;
  threads: number;
  cpus: number;
  policy: string;
  mix: string;
}

export interface PolicyFigure {
  policy: string;
  mix: string;
  threads: number;
  guestStepsPerSecond: number;
  exitsPerSecond: number;
  kicksPerSecond: number;
  violations: number;
  wallSeconds: number;
}

export interface ScalingFigure {
  cores: number;
  smt: number;
  threads: number;
  cpus: number;
  /** threads <= cpus: entries that do not fit are reported but say nothing about scaling. */
  fits: boolean;
  exitsPerSecond: number;
  exitsPerSecondPerThread: number;
  /** exitsPerSecond over (cores / first cores) x the first entry's, for entries of the same smt. */
  linearFraction: number;
}

export interface WorkersBenchReport {
  machine: { cpus: number; cpuModel: string; node: string };
  kick?: KickFigures;
  /** The kick with more hyperthreads than CPUs (when the machine has few enough CPUs to show it). */
  kickOversubscribed?: KickFigures;
  exits?: ExitFigures;
  policies: PolicyFigure[];
  scaling: ScalingFigure[];
}

const defaultTimeMs = 1000;
/**
 * Round trips per sample: long enough to dwarf the comlink call that asks for them (~50-100 µs), and
 * with `batchesPerRound` x `kickRounds` batches, `p999SamplesMin` trips timed one by one (the
 * oversubscribed kick, at 20-90 µs a trip, takes 2,000: its p99.9 is not reported).
 */
const tripsPerSample = { spin: 500, wait: 100, kick: 100, kickOversubscribed: 20, quick: 10 } as const;
/**
 * The kick and its baselines are measured in rounds, each one a tinybench of every task in turn, so a
 * machine whose speed drifts (a shared or virtual one) moves them together and their ratio stands.
 */
const kickRounds = 5;
/**
 * Batches of every task per round: counted, not timed, so every series gets its trips; 100 batches in
 * all keep the median of the batch means (`roundTripNs`) clear of the few a descheduled thread slows.
 */
const batchesPerRound = 20;
/**
 * Trips timed one by one that each distribution needs; a batch cut short by `batchMsMax` (a starved
 * machine) is made up for by more batches after the rounds.
 */
const tripSamplesMin = {
  spin: p999SamplesMin,
  wait: p999SamplesMin,
  kick: p999SamplesMin,
  quick: 0,
} as const;
/** Untimed trips before a wait/notify batch: both sides block anyway, a few wake them up. */
const waitWarmupTrips = 10;
/** Exits far in the future: the kicked hyperthread runs guest steps and leaves the guest only when kicked. */
const neverExitCycles = 1e15;
/** An exit budget no measurement reaches: they end by time. */
const exitsUnbounded = 100_000_000;

/** What every measurement of one report shares. */
interface Plan {
  timeMs: number;
  quick: boolean;
  cpus: number;
}

export interface RemoteTrips {
  roundTrips(count: number, maxMs?: number, warmup?: number): RoundTripBatch;
}

/** What a kick driver answers: batches of kicks from its hyperthread to the target and back. */
export interface KickDriver {
  remote: Comlink.Remote<RemoteTrips & { release(): void }>;
  /** Ends the driver, then the run. */
  close(): Promise<void>;
}

/**
 * A kick driver (kick-bench.worker) over `run`: ht0 kicks ht1 and times the trip. The run is paused
 * when this returns (resume it to measure).
 */
export async function startKickDriver(run: WorkersRun, spinChecks: number): Promise<KickDriver> {
  const setup: KickDriverSetup = {
    machineBuffer: run.machine.buffer,
    controlBuffer: run.control.buffer,
    driverThread: 0,
    targetThread: 1,
    spinChecks,
    waitTimeoutMs: workersLimits.waitTimeoutMs,
    tripTimeoutMs: 10_000,
  };
  const driver = new Worker(workerScriptPath('kick-bench.worker'), { workerData: setup });
  const remote = Comlink.wrap<RemoteTrips & { release(): void }>(nodeEndpoint(driver));
  await run.pause();
  return {
    remote,
    close: async () => {
      await remote.release();
      remote[Comlink.releaseProxy]();
      await driver.terminate();
      await run.waitForEnd(0);
      await run.finish();
    },
  };
}

/** Longest batch: a starved machine makes each trip a time slice, and a sample must not take minutes. */
const batchMsMax = 50;

/** One measured quantity: per-trip samples (ns), one per batch timed in a worker. */
interface Series {
  name: string;
  tripsPerSample: number;
  samplesNs: number[];
  clockOverheadNs: number[];
  /** For the raw ping-pong: the same trips timed with a bracket each, net of it (a method check). */
  bracketedNs: number[];
  /** Every trip timed one by one, net of its batch's clock bracket: the distribution's samples. */
  tripsNs: number[];
}

function series(name: string, trips: number): Series {
  return { name, tripsPerSample: trips, samplesNs: [], clockOverheadNs: [], bracketedNs: [], tripsNs: [] };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
}

/** Relative margin of error of the mean at 95% (normal approximation), in percent. */
function rmePercent(values: number[]): number {
  if (values.length < 2) return 0;
  const average = mean(values);
  const variance = values.reduce((sum, value) => sum + (value - average) ** 2, 0) / (values.length - 1);
  return ((1.96 * Math.sqrt(variance / values.length)) / average) * 100;
}

/** A raw ping-pong pair of workers, `mode` for both sides, alive for the whole kick suite. */
interface PingPongPair {
  remote: Comlink.Remote<RemoteTrips & { stop(): void }>;
  close(): Promise<void>;
}

function startPingPong(mode: PingPongMode): PingPongPair {
  const buffer = new SharedArrayBuffer(PingPongField.count * 4);
  const options: PingPongOptions = defaultPingPongOptions(mode);
  const script = workerScriptPath('ping-pong.worker');
  const ponger = new Worker(script, { workerData: { buffer, role: 'ponger', options } });
  const pinger = new Worker(script, { workerData: { buffer, role: 'pinger', options } });
  const remote = Comlink.wrap<RemoteTrips & { stop(): void }>(nodeEndpoint(pinger));
  return {
    remote,
    close: async () => {
      await remote.stop();
      remote[Comlink.releaseProxy]();
      await Promise.all([pinger.terminate(), ponger.terminate()]);
    },
  };
}

/**
 * A kick rig: a workers run whose hyperthread 1 (B) runs guest steps, and the driver worker (A) on
 * sibling 0. Oversubscribed: a second core whose two hyperthreads run guest steps too, so 4 threads
 * share the CPUs. The run is paused (its hyperthreads blocked, off the CPUs) except while measured.
 */
interface KickRig {
  run: WorkersRun;
  remote: Comlink.Remote<RemoteTrips & { release(): void }>;
  threads: number;
  spinChecks: number;
  machine: string;
  close(): Promise<void>;
}

async function startKickRig(oversubscribed: boolean, plan: Plan, monitor: boolean): Promise<KickRig> {
  const pins = oversubscribed ? [1, 2, 3] : [1];
  const cores = oversubscribed ? 2 : 1;
  const config = parseRunConfig(
    {
      machine: { cores, smt: 2, memoryMiB: 64, vms: [{ vcpus: pins.length, guestMemoryMiB: 4, pin: pins }] },
      // B's guest steps touch no guest memory: a kick is seen at the next step boundary, and the L1D
      // model's cost per step is the workload's, not the protocol's (hardware takes the IPI at once).
      workload: { mix: 'all-fast', exitIntervalCycles: neverExitCycles, guestAccessesPerQuantum: 0 },
      run: { exits: exitsUnbounded },
    },
    { endsByTime: true },
  );
  const threads = pins.length + 1;
  const spinChecks = defaultSpinChecks(threads, plan.cpus);
  const run = await WorkersRun.start(config, policyByName('asi'), { monitor, spinChecks, cpus: plan.cpus });
  const { remote, close } = await startKickDriver(run, spinChecks);
  return {
    run,
    remote,
    threads,
    spinChecks,
    machine: `${cores} core(s) x 2 threads, ${pins.length} vCPU(s) running guest steps without memory accesses`,
    close,
  };
}

/** Adds a task whose samples are per-trip figures of batches timed in a worker (`overriddenDuration`). */
function addTripsTask(
  bench: Bench,
  into: Series,
  batch: () => Promise<RoundTripBatch>,
  net: (b: RoundTripBatch) => number,
  hooks: { beforeAll?: () => Promise<void>; afterAll?: () => Promise<void> } = {},
): void {
  bench.add(
    into.name,
    async () => {
      const result = await batch();
      const sampleNs = net(result);
      into.samplesNs.push(sampleNs);
      into.clockOverheadNs.push(result.clockOverheadNs);
      into.bracketedNs.push(result.bracketedNs / result.bracketedTrips - result.clockOverheadNs);
      addTrips(into, result);
      return { overriddenDuration: sampleNs / 1e6, overriddenIterationCost: result.totalNs / 1e6 };
    },
    hooks,
  );
}

/** A batch's trips timed one by one, net of its clock bracket, into the series' distribution samples. */
function addTrips(into: Series, batch: RoundTripBatch): void {
  for (const ns of batch.tripNs) into.tripsNs.push(ns - batch.clockOverheadNs);
}

/**
 * More batches until the series has `samplesMin` trips timed one by one (batches cut short by
 * `batchMsMax` leave it short). Bounded: a batch times at least one trip, and a trip has a timeout.
 */
async function topUp(into: Series, samplesMin: number, batch: () => Promise<RoundTripBatch>): Promise<void> {
  while (into.tripsNs.length < samplesMin) addTrips(into, await batch());
}

function kickFigures(
  kick: Series,
  rig: KickRig,
  rawSpin: Series,
  rawWait: Series,
  cpus: number,
  monitor: boolean,
): KickFigures {
  const baseline = rig.threads <= cpus ? 'spin' : 'wait';
  const roundTripNs = median(kick.samplesNs);
  const base = median(baseline === 'spin' ? rawSpin.samplesNs : rawWait.samplesNs);
  const trips = latencyDistribution(kick.tripsNs);
  const spin = latencyDistribution(rawSpin.tripsNs);
  const wait = latencyDistribution(rawWait.tripsNs);
  const baseTrips = baseline === 'spin' ? spin : wait;
  return {
    roundTripNs,
    roundTripMeanNs: mean(kick.samplesNs),
    kicksPerSecond: 1e9 / roundTripNs,
    rawSpinRoundTripNs: median(rawSpin.samplesNs),
    rawWaitRoundTripNs: median(rawWait.samplesNs),
    ratio: roundTripNs / base,
    baseline,
    threads: rig.threads,
    cpus,
    rmePercent: rmePercent(kick.samplesNs),
    batches: kick.samplesNs.length,
    samples: trips.samples,
    p50Ns: trips.p50Ns,
    p90Ns: trips.p90Ns,
    p99Ns: trips.p99Ns,
    p999Ns: trips.p999Ns,
    minNs: trips.minNs,
    maxNs: trips.maxNs,
    meanNs: trips.meanNs,
    histogram: trips.histogram,
    rawSpin: spin,
    rawWait: wait,
    ratioP50: trips.p50Ns / Math.max(1, baseTrips.p50Ns),
    ratioP99: trips.p99Ns / Math.max(1, baseTrips.p99Ns),
    clockOverheadNs: mean(kick.clockOverheadNs),
    rawSpinBracketedNs: median(rawSpin.bracketedNs),
    spinChecks: rig.spinChecks,
    monitor,
    machine: rig.machine,
  };
}

/**
 * The kick suite: raw spin and wait/notify ping-pongs and the sibling kick (and, when 4 threads
 * outnumber the CPUs, the oversubscribed kick), measured in interleaved rounds. Workers not being
 * measured are idle: the pongers block after a spell of spinning, the kick rigs' runs are paused.
 */
async function measureKicks(
  plan: Plan,
  log: (line: string) => void,
): Promise<Pick<WorkersBenchReport, 'kick' | 'kickOversubscribed'>> {
  const monitor = false;
  const trips = (kind: keyof typeof tripsPerSample) =>
    plan.quick ? tripsPerSample.quick : tripsPerSample[kind];
  const fitting = plan.cpus >= 2;
  const spinPair = startPingPong('spin');
  const waitPair = startPingPong('wait');
  const rigs: KickRig[] = [];
  try {
    const rig = await startKickRig(!fitting, plan, monitor);
    rigs.push(rig);
    const over = fitting && plan.cpus < 4 ? await startKickRig(true, plan, monitor) : null;
    if (over) rigs.push(over);
    const rawSpin = series('raw spin ping-pong', trips('spin'));
    const rawWait = series('raw wait/notify ping-pong', trips('wait'));
    const kick = series(
      `sibling kick (${rig.threads} threads)`,
      trips(fitting ? 'kick' : 'kickOversubscribed'),
    );
    const kickOver = series('sibling kick (4 threads)', trips('kickOversubscribed'));
    const rounds = plan.quick ? 1 : kickRounds;
    const spinBatch = () => spinPair.remote.roundTrips(rawSpin.tripsPerSample, batchMsMax);
    const waitBatch = () => waitPair.remote.roundTrips(rawWait.tripsPerSample, batchMsMax, waitWarmupTrips);
    const kicks = [[rig, kick], ...(over ? [[over, kickOver]] : [])] as [KickRig, Series][];
    for (let round = 0; round < rounds; round++) {
      log(`kick: round ${round + 1} of ${rounds}`);
      const bench = new Bench({ time: 0, warmup: false, iterations: plan.quick ? 2 : batchesPerRound });
      addTripsTask(bench, rawSpin, spinBatch, (b) => b.totalNs / b.trips);
      addTripsTask(bench, rawWait, waitBatch, (b) => b.totalNs / b.trips);
      for (const [target, into] of kicks) {
        addTripsTask(
          bench,
          into,
          () => target.remote.roundTrips(into.tripsPerSample, batchMsMax),
          (b) => b.bracketedNs / b.bracketedTrips - b.clockOverheadNs,
          {
            beforeAll: async () => {
              await target.run.resume();
            },
            afterAll: async () => {
              await target.run.pause();
            },
          },
        );
      }
      await bench.run();
      for (const task of bench.tasks) {
        const result = task.result;
        if (result.state !== 'completed') {
          const cause = 'error' in result ? String((result as { error?: unknown }).error) : result.state;
          throw new Error(`benchmark ${task.name} did not complete: ${cause}`);
        }
      }
    }
    const samplesMin = (kind: keyof typeof tripSamplesMin) =>
      plan.quick ? tripSamplesMin.quick : tripSamplesMin[kind];
    await topUp(rawSpin, samplesMin('spin'), spinBatch);
    await topUp(rawWait, samplesMin('wait'), waitBatch);
    if (kick.tripsNs.length < samplesMin('kick')) {
      await rig.run.resume();
      await topUp(kick, samplesMin('kick'), () => rig.remote.roundTrips(kick.tripsPerSample, batchMsMax));
      await rig.run.pause();
    }
    return {
      kick: kickFigures(kick, rig, rawSpin, rawWait, plan.cpus, monitor),
      ...(over
        ? { kickOversubscribed: kickFigures(kickOver, over, rawSpin, rawWait, plan.cpus, monitor) }
        : {}),
    };
  } finally {
    for (const rig of rigs) await rig.close();
    await Promise.all([spinPair.close(), waitPair.close()]);
  }
}

/** Machine of `cores` x `smt` with one VM of a vCPU per hyperthread. */
function machineInput(cores: number, smt: number): RunConfigInput['machine'] {
  return { cores, smt, memoryMiB: 64, vms: [{ vcpus: cores * smt, guestMemoryMiB: 4 }] };
}

interface TimedRun {
  threads: number;
  wallSeconds: number;
  exits: number;
  kicks: number;
  guestSteps: number;
  violations: number;
}

/** One workers run for `timeMs`, with the statistics the tables need. */
async function timedRun(
  input: RunConfigInput,
  policyName: string,
  timeMs: number,
  monitor: boolean,
  cpus: number,
): Promise<TimedRun> {
  const config = parseRunConfig({ ...input, run: { exits: exitsUnbounded } });
  const policy = policyByName(policyName);
  const run = await WorkersRun.start(config, policy, { monitor, cpus, timeMs });
  await run.waitForEnd();
  const result = await run.finish();
  const threads = runningThreadsOf(run.machine, policy);
  let guestSteps = 0;
  for (const thread of threads)
    guestSteps += run.machine.f64[threadStatIndex(run.machine.layout, thread, ThreadStat.guestSteps)];
  return {
    threads: threads.length,
    wallSeconds: result.wallSeconds,
    exits: result.exits,
    kicks: result.perThread.reduce((sum, stats) => sum + stats.kicksSent, 0),
    guestSteps,
    violations: Object.values(result.violations).reduce((sum, count) => sum + count, 0),
  };
}

/** The all-fast exit workload: an exit every ~100 guest cycles, so exits dominate the steps. */
const exitWorkload = { mix: 'all-fast', exitIntervalCycles: 100 };

export async function runWorkersBenchmarks(options: WorkersBenchOptions = {}): Promise<WorkersBenchReport> {
  const timeMs = options.timeMs ?? defaultTimeMs;
  const log = options.log ?? (() => {});
  const cpus = availableParallelism();
  const plan: Plan = { timeMs, quick: options.quick ?? false, cpus };
  const report: WorkersBenchReport = {
    machine: { cpus, cpuModel: cpuList()[0]?.model ?? 'unknown', node: process.version },
    policies: [],
    scaling: [],
  };

  if (options.kick ?? true) Object.assign(report, await measureKicks(plan, log));

  if (options.exits ?? true) {
    const smt = Math.min(2, cpus);
    log(`exits: all-fast on 1 core x ${smt}`);
    const bare = await timedRun(
      { machine: machineInput(1, smt), workload: exitWorkload },
      'asi',
      timeMs,
      false,
      cpus,
    );
    const monitored = await timedRun(
      { machine: machineInput(1, smt), workload: exitWorkload },
      'asi',
      timeMs,
      true,
      cpus,
    );
    report.exits = {
      exitsPerSecondPerThread: bare.exits / bare.wallSeconds / bare.threads,
      exitsPerSecondPerThreadMonitored: monitored.exits / monitored.wallSeconds / monitored.threads,
      threads: bare.threads,
      cpus,
      policy: 'asi',
      mix: 'all-fast',
    };
  }

  const policyNames = options.policies ?? [];
  const mixes = options.mixes ?? ['sysbench-cpu', 'all-fast', 'all-slow', 'idle-tracing'];
  const pairs = Math.max(1, Math.min(4, Math.floor(cpus / 2)));
  for (const policyName of policyNames) {
    for (const mix of mixes) {
      log(`policies: ${policyName} / ${mix}`);
      const run = await timedRun(
        { machine: machineInput(pairs, 2), workload: { mix } },
        policyName,
        timeMs,
        true,
        cpus,
      );
      report.policies.push({
        policy: policyName,
        mix,
        threads: run.threads,
        guestStepsPerSecond: run.guestSteps / run.wallSeconds,
        exitsPerSecond: run.exits / run.wallSeconds,
        kicksPerSecond: run.kicks / run.wallSeconds,
        violations: run.violations,
        wallSeconds: run.wallSeconds,
      });
    }
  }

  const requested = options.scaling ?? [];
  if (requested.length > 0) {
    const fittingPairs = requested.filter((corePairs) => corePairs * 2 <= cpus);
    const pairsToRun = fittingPairs.length > 0 ? fittingPairs : [Math.min(...requested)];
    const singles: number[] = [];
    for (let cores = 1; cores <= cpus && cores <= 8; cores *= 2) singles.push(cores);
    const entries: [number, number][] = [
      ...singles.map((cores): [number, number] => [cores, 1]),
      ...pairsToRun.map((corePairs): [number, number] => [corePairs, 2]),
    ];
    for (const [cores, smt] of entries) {
      log(`scaling: ${cores} core(s) x ${smt}`);
      const run = await timedRun(
        { machine: machineInput(cores, smt), workload: exitWorkload },
        'asi',
        timeMs,
        false,
        cpus,
      );
      const exitsPerSecond = run.exits / run.wallSeconds;
      const first = report.scaling.find((entry) => entry.smt === smt);
      report.scaling.push({
        cores,
        smt,
        threads: run.threads,
        cpus,
        fits: run.threads <= cpus,
        exitsPerSecond,
        exitsPerSecondPerThread: exitsPerSecond / run.threads,
        linearFraction: first ? exitsPerSecond / ((cores / first.cores) * first.exitsPerSecond) : 1,
      });
    }
  }
  return report;
}
