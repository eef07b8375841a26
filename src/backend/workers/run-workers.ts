import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { assert } from '../../assert.js';
import type { RunConfig } from '../../config/run-config.js';
import { referenceAccess } from '../../cpu/access-path.js';
import { phaseNames } from '../../cpu/hyperthread.js';
import { modeNames, modeOf } from '../../cpu/modes.js';
import { ConfigError } from '../../errors.js';
import { EventKind, EventLog } from '../../invariants/event-log.js';
import { Monitor } from '../../invariants/monitor.js';
import { invariantIds } from '../../invariants/violation.js';
import { Mailboxes } from '../../kick/ipi.js';
import { createMachine, type Machine } from '../../machine.js';
import {
  CoreField,
  coreFieldIndex,
  HeaderField,
  headerOffsetI32,
  RunState,
  ThreadStat,
  threadStatIndex,
} from '../../memory/layout.js';
import type { Policy } from '../../policy/policy.js';
import { collectResult, type RunResult } from '../result.js';
import { withExitInterval } from '../sim/exit-interval.js';
import {
  ControlBlock,
  defaultSpinChecks,
  type HyperthreadControl,
  type HyperthreadState,
  loopStateNames,
  type RunnerSettings,
  SlotField,
  sleeperStrideI32s,
  type WorkerSetup,
  type WorkerStats,
  workersLimits,
} from './control.js';
import {
  type HyperthreadSnapshot,
  NotAllowedError,
  WorkerFailedError,
  WorkerHangError,
  WorkersStartupError,
} from './errors.js';
import { mainSidePolicy, type PolicyInput } from './policy-spec.js';
import { Sleepers } from './waiter.js';
import { Watchdog } from './watchdog.js';
import { workerScriptPath } from './worker-script.js';

/**
 * The `workers` backend, main side (DESIGN.md "Two backends"): one worker thread per running
 * hyperthread, all attached to one machine buffer, stepping the same state machine the `sim` backend
 * drives. This thread is the control thread: it starts the workers together, watches the run (exit
 * budget, time, failures, the watchdog, deadlock), stops it, joins every worker, merges their monitors'
 * findings and returns the same RunResult as the sim (backend/result.ts).
 *
 * Control requests go through comlink (control.ts); machine data stays in the buffer. Nothing waits
 * without a bound: startup, every join and the run itself have timeouts, a silent worker is reported by
 * the watchdog with every hyperthread's last mode, and a worker that throws stops the run with an error
 * naming its hyperthread and step.
 */
export interface WorkersOptions {
  /** Stop after this much real time even if the exit budget is not reached (default 10 minutes). */
  timeMs?: number;
  /** Checks of a word before blocking (default: 20,000 when hyperthreads <= CPUs, else 100). */
  spinChecks?: number;
  /** Longest single Atomics.wait (default 5 ms). */
  waitTimeoutMs?: number;
  /** A worker silent this long is reported hung (default 5 s). */
  watchdogMs?: number;
  /** Keep every event: merged into the log whose hash becomes the result's traceHash. */
  keepEvents?: boolean;
  /**
   * Record the kept events into this log (implies keepEvents; the caller reads them afterwards, for a
   * trace). Their times are wall-clock nanoseconds since the run began.
   */
  log?: EventLog;
  /** INV-9 bound on a wait with no deadline, in real ms (default 2 s). */
  livenessBoundMs?: number;
  /** Run the invariant monitor in every worker (default true; benchmarks of the bare protocol turn it off). */
  monitor?: boolean;
  /** Real ms a worker steps before serving its comlink port (default 10). */
  sliceMs?: number;
  /** CPUs to plan for (default os.availableParallelism()). */
  cpus?: number;
  /** Told the workload exits so far each time the control thread looks at the run (`waitForEnd`). */
  onProgress?: (exits: number) => void;
}

/** Why a run ended. */
export type EndReason =
  | 'exits'
  | 'time'
  | 'stalled'
  | 'stopped'
  | 'violation'
  | 'deadlock'
  | 'failed'
  | 'hung';

const defaultTimeMs = 10 * 60 * 1000;
const runStateIndex = headerOffsetI32 + HeaderField.runState;
const workloadExitsIndex = headerOffsetI32 + HeaderField.workloadExits;
const failedThreadIndex = headerOffsetI32 + HeaderField.failedThread;

export { workerScriptPath };

interface Slot {
  thread: number;
  worker: Worker;
  remote: Comlink.Remote<HyperthreadControl>;
  /** Set when the worker thread died (uncaught error, exit): its comlink port will never answer. */
  death: Error | null;
  exited: Promise<number>;
  released: boolean;
}

/** Resolves with `promise`, or rejects with `onTimeout()` after `ms`. The timer never outlives it. */
function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What the workers backend refuses up front, naming the field: more vCPUs than it has workers for,
 * and confidential VMs (their memory model, coco/, runs on the sim backend only).
 */
export function checkWorkersMachine(config: RunConfig): void {
  let vcpus = 0;
  config.machine.vms.forEach((vm, vmId) => {
    if (vm.confidential) {
      throw new ConfigError(
        `machine.vms[${vmId}].confidential`,
        'false on the workers backend (confidential-VM memory runs on the sim backend: --backend sim)',
        true,
      );
    }
    vcpus += vm.vcpus;
    if (vcpus > workersLimits.hyperthreadsMax) {
      throw new ConfigError(
        `machine.vms[${vmId}].vcpus`,
        `at most ${workersLimits.hyperthreadsMax} vCPUs in all on the workers backend (one worker thread per hyperthread; --backend sim has no such limit)`,
        vm.vcpus,
      );
    }
  });
}

/** The hyperthreads that run a vCPU under `policy` (nosmt: sibling 0 of each core only, as the sim). */
export function runningThreadsOf(machine: Machine, policy: Policy): number[] {
  const running: number[] = [];
  for (const pins of machine.pinning) {
    for (const thread of pins) if (policy.smt || thread % machine.config.smt === 0) running.push(thread);
  }
  return running.sort((a, b) => a - b);
}

/**
 * A run in progress: the control thread's handle. `runWorkers` is start, waitForEnd, finish; tests and
 * benchmarks use the handle to pause, inspect, send interrupts and stop.
 */
export class WorkersRun {
  readonly sleepers: Sleepers;
  private readonly mailboxes: Mailboxes;
  private watchdog: Watchdog | null = null;
  private startedAtMs = 0;
  private endReason: EndReason | null = null;
  private hungSlots: number[] = [];
  private finished = false;
  /** The workload exit count at the last look, and when it last moved (real ms): the stall bound. */
  private exitsSeen = 0;
  private exitsMovedAtMs = 0;

  private constructor(
    readonly config: RunConfig,
    readonly policy: Policy,
    readonly machine: Machine,
    readonly control: ControlBlock,
    readonly threads: readonly number[],
    readonly settings: RunnerSettings,
    private readonly slots: Slot[],
    private readonly options: WorkersOptions,
  ) {
    this.sleepers = new Sleepers(
      machine.i32,
      control.i32,
      machine.layout,
      machine.config.smt,
      control.sleeperIndex(0),
      sleeperStrideI32s,
    );
    this.mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout);
  }

  /** Builds the machine, starts one worker per running hyperthread and lets them all go at once. */
  static async start(
    config: RunConfig,
    policyInput: PolicyInput,
    options: WorkersOptions = {},
  ): Promise<WorkersRun> {
    checkWorkersMachine(config);
    // Modelled time as in the sim: the exit rate becomes guest cycles between exits (a calibration on
    // the sim backend, in this thread, before any worker starts).
    config = withExitInterval(config);
    const { policy, source } = await mainSidePolicy(policyInput);
    const script = workerScriptPath('hyperthread.worker');
    const machine = createMachine(config.machine, { concurrent: true, access: referenceAccess });
    // Parked until every worker is up: they start together when this flips to run.
    Atomics.store(machine.i32, runStateIndex, RunState.pause);
    const threads = runningThreadsOf(machine, policy);
    assert(threads.length > 0, 'a run needs a hyperthread with a vCPU');
    const control = ControlBlock.create(machine.config.cores, threads.length);
    const cpus = options.cpus ?? availableParallelism();
    const settings: RunnerSettings = {
      spinChecks: options.spinChecks ?? defaultSpinChecks(threads.length, cpus),
      waitTimeoutMs: options.waitTimeoutMs ?? workersLimits.waitTimeoutMs,
      livenessBoundMs: options.livenessBoundMs ?? workersLimits.livenessBoundMs,
      sliceMs: options.sliceMs ?? workersLimits.sliceMs,
      monitor: options.monitor ?? true,
      keepEvents: options.keepEvents === true || options.log !== undefined,
      eventsEpochMs: performance.timeOrigin + performance.now(),
    };
    const slots = threads.map((thread, slot) => {
      const setup: WorkerSetup = {
        machineBuffer: machine.buffer,
        controlBuffer: control.buffer,
        slot,
        thread,
        runningThreads: threads,
        config,
        policy: source,
        settings,
      };
      const worker = new Worker(script, { workerData: setup, name: `asi-emu ht${thread}` });
      const entry: Slot = {
        thread,
        worker,
        remote: Comlink.wrap<HyperthreadControl>(nodeEndpoint(worker)),
        death: null,
        released: false,
        exited: new Promise((resolveExit) => worker.once('exit', resolveExit)),
      };
      worker.on('error', (error) => {
        entry.death ??= error;
      });
      worker.once('exit', (code) => {
        entry.death ??= new Error(`worker exited with code ${code}`);
      });
      return entry;
    });
    const run = new WorkersRun(config, policy, machine, control, threads, settings, slots, options);
    try {
      await Promise.all(slots.map((slot) => run.awaitReady(slot)));
      await Promise.all(slots.map((slot) => slot.remote.start()));
    } catch (error) {
      await run.terminateAll();
      throw error;
    }
    run.startedAtMs = performance.timeOrigin + performance.now();
    run.watchdog = new Watchdog(control, options.watchdogMs ?? workersLimits.watchdogMs, performance.now());
    run.setRunState(RunState.run);
    return run;
  }

  private async awaitReady(slot: Slot): Promise<void> {
    const died = new Promise<never>((_, reject) => {
      const check = () => {
        if (slot.death) reject(new WorkersStartupError(slot.thread, slot.death.message));
      };
      slot.worker.once('error', check);
      slot.worker.once('exit', check);
    });
    await withTimeout(
      Promise.race([slot.remote.state(), died]),
      workersLimits.startupTimeoutMs,
      () => new WorkersStartupError(slot.thread, `no answer within ${workersLimits.startupTimeoutMs} ms`),
    );
  }

  private setRunState(state: number): void {
    Atomics.store(this.machine.i32, runStateIndex, state);
    Atomics.notify(this.machine.i32, runStateIndex);
  }

  /** Wakes every worker blocked on a machine word (they would see the run state at their next timeout). */
  private wakeAll(): void {
    Atomics.notify(this.machine.i32, runStateIndex);
    for (let slot = 0; slot < this.slots.length; slot++) {
      const index = Atomics.load(this.control.i32, this.control.slotIndex(slot, SlotField.waitIndex));
      if (index >= 0) Atomics.notify(this.machine.i32, index);
    }
  }

  /** Workload exits taken so far by all hyperthreads (published every few steps). */
  get workloadExits(): number {
    return Atomics.load(this.machine.i32, workloadExitsIndex);
  }

  /** Real ms since the workers were let go. */
  elapsedMs(): number {
    return performance.timeOrigin + performance.now() - this.startedAtMs;
  }

  /** Sends interrupt vector `vector` (kick/ipi.ts Vector) to hyperthread `thread`, as a device would. */
  send(thread: number, vector: number): void {
    assert(this.threads.includes(thread), `ht${thread} is not running`);
    const clock = this.machine.f64[threadStatIndex(this.machine.layout, thread, ThreadStat.clockCycles)];
    this.mailboxes.send(thread, vector, clock, this.sleepers);
  }

  /** Parks every hyperthread at its next step boundary; resolves with their states once all are parked. */
  async pause(): Promise<HyperthreadState[]> {
    this.assertLive('pause');
    this.setRunState(RunState.pause);
    this.wakeAll();
    return this.askAll('pause', (remote) => remote.pause());
  }

  async resume(): Promise<HyperthreadState[]> {
    this.assertLive('resume');
    const states = await this.askAll('resume', (remote) => remote.resume());
    this.setRunState(RunState.run);
    return states;
  }

  /** Every hyperthread's state, from its worker (answered between slices: within ~sliceMs). */
  async states(): Promise<HyperthreadState[]> {
    this.assertLive('states');
    return this.askAll('state', (remote) => remote.state());
  }

  private askAll<T>(
    what: string,
    ask: (remote: Comlink.Remote<HyperthreadControl>) => Promise<T>,
  ): Promise<T[]> {
    const timeoutMs = this.options.watchdogMs ?? workersLimits.watchdogMs;
    return Promise.all(
      this.slots.map((slot) =>
        withTimeout(
          ask(slot.remote),
          timeoutMs,
          () => new WorkerHangError([slot.thread], timeoutMs, this.snapshots()),
        ).catch((error: unknown) => {
          throw error instanceof Error && error.name === 'NotAllowedError'
            ? new NotAllowedError(what, error.message)
            : error;
        }),
      ),
    );
  }

  private assertLive(request: string): void {
    if (this.finished) throw new NotAllowedError(request, 'finished');
  }

  /** Every hyperthread of the machine as the buffers show it now (no worker needs to answer). */
  snapshots(): HyperthreadSnapshot[] {
    const { machine, control } = this;
    const now = performance.now();
    const snapshots: HyperthreadSnapshot[] = [];
    for (let thread = 0; thread < machine.threadCount; thread++) {
      const core = machine.coreOf(thread);
      const word = Atomics.load(machine.i32, coreFieldIndex(machine.layout, core, CoreField.state));
      const slot = this.threads.indexOf(thread);
      const running = slot >= 0;
      snapshots.push({
        thread,
        core,
        mode: modeNames[modeOf(word, thread % machine.config.smt)] ?? '?',
        phase: running
          ? (phaseNames[Atomics.load(control.i32, control.slotIndex(slot, SlotField.phase))] ?? '?')
          : '-',
        loop: running ? (loopStateNames[control.loopState(slot)] ?? '?') : 'no vCPU',
        steps: machine.f64[threadStatIndex(machine.layout, thread, ThreadStat.steps)],
        heartbeatAgeMs: running && this.watchdog ? this.watchdog.silentMs(slot, now) : 0,
      });
    }
    return snapshots;
  }

  /** Looks at the run once; returns why it ended, or null while it goes on. */
  private checkEnd(deadlineMs: number): EndReason | null {
    if (this.slots.some((slot) => slot.death !== null)) return 'failed';
    const runState = Atomics.load(this.machine.i32, runStateIndex);
    if (runState === RunState.stop) {
      if (Atomics.load(this.machine.i32, failedThreadIndex) !== 0) return 'failed';
      if (this.workloadExits >= this.config.run.exits) return 'exits';
      return this.config.run.stopOnViolation ? 'violation' : 'stopped';
    }
    const now = performance.now();
    const hung = this.watchdog?.check(now) ?? [];
    if (hung.length > 0) {
      this.hungSlots = hung;
      return 'hung';
    }
    let stalled = 0;
    for (let slot = 0; slot < this.slots.length; slot++)
      stalled += Atomics.load(this.control.i32, this.control.slotIndex(slot, SlotField.stalled));
    if (stalled === this.slots.length) return 'deadlock';
    if (this.elapsedMs() >= deadlineMs) return 'time';
    const exits = this.workloadExits;
    if (exits !== this.exitsSeen || this.exitsMovedAtMs === 0) {
      this.exitsSeen = exits;
      this.exitsMovedAtMs = now;
    } else if (now - this.exitsMovedAtMs > workersLimits.noProgressMs) return 'stalled';
    return null;
  }

  /** Watches the run until it ends by exits, time, failure, hang or deadlock; never longer than `timeMs`. */
  async waitForEnd(timeMs = this.options.timeMs ?? defaultTimeMs): Promise<EndReason> {
    this.assertLive('waitForEnd');
    for (;;) {
      const reason = this.checkEnd(timeMs);
      if (reason !== null) {
        this.endReason = reason;
        return reason;
      }
      this.options.onProgress?.(this.workloadExits);
      await sleep(workersLimits.pollMs);
    }
  }

  /**
   * Stops the run, joins every worker (a silent or dead one is terminated), merges what their monitors
   * found and returns the result. Throws WorkerFailedError when a hyperthread threw, WorkerHangError when
   * the watchdog fired.
   */
  async finish(): Promise<RunResult> {
    this.assertLive('finish');
    this.finished = true;
    const reason = this.endReason ?? 'stopped';
    this.setRunState(RunState.stop);
    this.wakeAll();
    const hungThreads = this.hungSlots.map((slot) => this.threads[slot]);
    const snapshotsAtStop = this.snapshots();
    const stats = await Promise.all(
      this.slots.map((slot, index) => this.join(slot, this.hungSlots.includes(index))),
    );
    await this.terminateAll();
    if (reason === 'hung') {
      const silentMs = this.options.watchdogMs ?? workersLimits.watchdogMs;
      throw new WorkerHangError(hungThreads, silentMs, snapshotsAtStop);
    }
    const failure = stats.find((entry) => entry?.failure)?.failure;
    if (failure) {
      throw new WorkerFailedError(
        failure.thread,
        failure.step,
        failure.phase,
        failure.message,
        failure.stack,
        snapshotsAtStop,
      );
    }
    const dead = this.slots.find((slot) => slot.death !== null && !stats[this.slots.indexOf(slot)]);
    if (dead) {
      const snapshot = snapshotsAtStop[dead.thread];
      throw new WorkerFailedError(
        dead.thread,
        snapshot.steps,
        snapshot.phase,
        dead.death?.message ?? 'worker died',
        dead.death?.stack ?? '',
        snapshotsAtStop,
      );
    }
    return this.collect(stats as WorkerStats[], reason);
  }

  /** Asks a worker to stop and hand back its statistics; null when it is dead, hung or too slow. */
  private async join(slot: Slot, hung: boolean): Promise<WorkerStats | null> {
    if (hung || slot.death !== null) return null;
    try {
      return await withTimeout(
        slot.remote.stop(),
        workersLimits.joinTimeoutMs,
        () => new WorkerHangError([slot.thread], workersLimits.joinTimeoutMs, this.snapshots()),
      );
    } catch (error) {
      slot.death ??= error instanceof Error ? error : new Error(String(error));
      return null;
    }
  }

  /** Terminates every worker still alive and waits for each to exit (bounded). Idempotent. */
  async terminateAll(): Promise<void> {
    this.finished = true;
    this.setRunState(RunState.stop);
    await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot.released) {
          slot.released = true;
          slot.remote[Comlink.releaseProxy]();
        }
        await slot.worker.terminate();
        await withTimeout(
          slot.exited,
          workersLimits.joinTimeoutMs,
          () => new WorkerHangError([slot.thread], workersLimits.joinTimeoutMs, this.snapshots()),
        );
      }),
    );
  }

  private collect(stats: WorkerStats[], reason: EndReason): RunResult {
    const { machine, control } = this;
    const monitor = new Monitor(machine, null);
    // INV-5 on the machine as the run leaves it (kvm:N does not change during a run).
    monitor.checkIsolatedContents();
    const kept = new Map<string, number>();
    const recordsPerInvariant = 20;
    let log: EventLog | null = null;
    for (const entry of stats) {
      for (const id of invariantIds) monitor.counts[id] += entry.violations[id];
      for (const record of entry.records) {
        const count = kept.get(record.id) ?? 0;
        if (count >= recordsPerInvariant) continue;
        kept.set(record.id, count + 1);
        monitor.records.push(record);
      }
      monitor.faults.push(...entry.faults.slice(0, Math.max(0, 200 - monitor.faults.length)));
      monitor.exposureGuestSteps += entry.exposureGuestSteps;
      monitor.exposureCycles += entry.exposureCycles;
      monitor.workloadExits += entry.workloadExits;
    }
    // The workers stamp events from when they were spawned (`eventsEpochMs`); the trace starts when
    // they were let go, after every worker had started up (~0.35 s later on a 2-CPU machine).
    if (this.settings.keepEvents)
      log = mergeEvents(stats, (this.startedAtMs - this.settings.eventsEpochMs) * 1e6, this.options.log);
    let stoppedAtMs = 0;
    for (let slot = 0; slot < this.slots.length; slot++) {
      stoppedAtMs = Math.max(stoppedAtMs, control.f64[control.slotF64Index(slot, SlotField.stoppedAtMsF64)]);
    }
    if (stoppedAtMs === 0) stoppedAtMs = performance.timeOrigin + performance.now();
    let steps = 0;
    for (const thread of this.threads)
      steps += machine.f64[threadStatIndex(machine.layout, thread, ThreadStat.steps)];
    return collectResult({
      backend: 'workers',
      machine,
      policy: this.policy,
      config: this.config,
      threads: [],
      runningVcpus: this.threads.length,
      monitor,
      log,
      steps,
      deadlocked: reason === 'deadlock',
      wallSeconds: Math.max(0, stoppedAtMs - this.startedAtMs) / 1000,
      exitStats: stats.map((entry) => entry.exitStats),
    });
  }

  /** Loop state of every worker, from the control block. */
  loopStates(): string[] {
    return this.slots.map((_, slot) => loopStateNames[this.control.loopState(slot)] ?? '?');
  }
}

/**
 * Every worker's events in one log, ordered by time then hyperthread (its hash is the traceHash), in ns
 * since the run's start: `originNs` after the epoch the workers stamped them from (an event before it,
 * of a worker already stepping as the others were let go, is put at 0).
 */
function mergeEvents(stats: WorkerStats[], originNs: number, into?: EventLog): EventLog {
  const fields = 5;
  const events: number[][] = [];
  for (const entry of stats) {
    const list = entry.events ?? [];
    for (let i = 0; i < list.length; i += fields) events.push(list.slice(i, i + fields));
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const log = into ?? new EventLog(64, true, true);
  for (const [stamp, thread, kind, a, b] of events) {
    const time = Math.max(0, stamp - originNs);
    if (kind === EventKind.foreignLines) log.recordSample(time, thread, kind, a, b);
    else log.record(time, thread, kind, a, b);
  }
  return log;
}

/**
 * Runs `config` on the workers backend: one worker per running hyperthread, until `config.run.exits`
 * workload exits or `options.timeMs`, and returns the same RunResult as the sim backend.
 *
 * `policy` is a built-in or planted-bug policy (`policies.asi`), or `{ module: path }` for your own.
 * An inline policy (one made by `definePolicy` in the caller's file) is refused with a ConfigError
 * saying so: its hooks must run in every hyperthread's worker, and a function does not cross to a
 * worker (structured clone refuses it; its source alone would lose its closure and imports, and
 * evaluating source text would be code from data). Each worker imports the module itself, through the
 * one policy loader (docs/trust-and-limits.md, "Policy modules"). Put the policy in a module file and
 * pass its path; `runSim` takes the inline object.
 */
export async function runWorkers(
  config: RunConfig,
  policy: PolicyInput,
  options: WorkersOptions = {},
): Promise<RunResult> {
  const run = await WorkersRun.start(config, policy, options);
  try {
    await run.waitForEnd();
    return await run.finish();
  } finally {
    await run.terminateAll();
  }
}
