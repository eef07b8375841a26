import { performance } from 'node:perf_hooks';
import { assert } from '../../assert.js';
import type { CompiledVariant } from '../../cpu/handler-program.js';
import { type Environment, Hyperthread, type Observer, phaseNames, Step } from '../../cpu/hyperthread.js';
import { modeNames, modeOf } from '../../cpu/modes.js';
import { EventLog } from '../../invariants/event-log.js';
import { Monitor } from '../../invariants/monitor.js';
import { zeroCounts } from '../../invariants/violation.js';
import { attachMachine, type Machine } from '../../machine.js';
import { HeaderField, headerOffsetI32, RunState, ThreadStat, threadStatIndex } from '../../memory/layout.js';
import { Prng } from '../sim/prng.js';
import {
  ControlBlock,
  type HyperthreadControl,
  type HyperthreadState,
  LoopState,
  loopStateNames,
  type RunnerSettings,
  SlotField,
  sleeperStrideI32s,
  type WorkerFailure,
  type WorkerSetup,
  type WorkerStats,
  workersLimits,
} from './control.js';
import { NotAllowedError } from './errors.js';
import { loadPolicy } from './policy-spec.js';
import { Sleepers, Waiter, WaitResult } from './waiter.js';

/**
 * The worker side of the `workers` backend: one hyperthread, stepped by the same state machine the
 * `sim` backend drives (cpu/hyperthread.ts), unchanged. This module decides only how a wait blocks
 * (spin, then Atomics.wait with a timeout: waiter.ts) and when to look at the run state.
 *
 * The loop runs in slices of `sliceMs` of real time; between slices it yields to its event loop so the
 * comlink port answers (state, stats, pause, stop). Inside a slice it looks at the run-state word every
 * `stepsPerCheck` steps and after every blocking wait, beats its heartbeat (the control thread's
 * watchdog reads it), and adds its workload exits to the machine-wide count, stopping the run itself
 * when the count reaches the exit budget.
 *
 * Virtual time: each hyperthread keeps its own clock, as in the sim. A wait that ends because the word
 * changed moves the clock forward to the latest clock of the core's running siblings (the sim moves it
 * to the waker's), so held and waiting time is charged; an idle wait that times out jumps to its timer.
 */
const runStateIndex = headerOffsetI32 + HeaderField.runState;
const workloadExitsIndex = headerOffsetI32 + HeaderField.workloadExits;
const failedThreadIndex = headerOffsetI32 + HeaderField.failedThread;

/** A per-thread seed from the run's seed: distinct threads get unrelated streams (the Prng mixes it). */
export function threadSeed(seed: number, thread: number): number {
  return Number((BigInt(seed) * 1_000_003n + BigInt(thread)) % 2n ** 53n);
}

/** Counts workload exits when the monitor is off (benchmarks of the bare protocol). Watches nothing else. */
class ExitCounter implements Observer {
  workloadExits = 0;
  onModeChange(): void {}
  onGuestStep(): void {}
  onGuestStepEnd(): void {}
  onEnter(): void {}
  onExit(_thread: Hyperthread, variant: CompiledVariant): void {
    if (!variant.isKick) this.workloadExits++;
  }
  onKick(): void {}
  onSwitchToFull(): void {}
  onAccess(): void {}
  onFault(): void {}
  onInterrupt(): void {}
  onFlush(): void {}
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class HyperthreadRunner {
  readonly machine: Machine;
  readonly thread: number;
  readonly hyperthread: Hyperthread;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly control: ControlBlock;
  private readonly slot: number;
  private readonly settings: RunnerSettings;
  private readonly monitor: Monitor | null;
  private readonly counter: ExitCounter | null;
  private readonly log: EventLog | null;
  private readonly waiter: Waiter;
  private readonly sleepers: Sleepers;
  private readonly exitsTarget: number;
  private readonly maxCycles: number;
  private readonly stopOnViolation: boolean;
  /** Float64 indexes of the clocks of this core's other running hyperthreads. */
  private readonly siblingClockIndexes: number[];
  private readonly heartbeatIndex: number;
  private readonly phaseIndex: number;
  private readonly waitIndexSlot: number;
  private readonly runStateSleeper: number;

  private loopState: number = LoopState.starting;
  private pauseRequested = false;
  private stopRequested = false;
  private loopDone: Promise<void> | null = null;
  private parkedResolvers: (() => void)[] = [];
  private failure: WorkerFailure | null = null;
  private heartbeats = 0;
  private exitsPublished = 0;
  /** performance.now() when the current blocking wait with no deadline began; 0 when none. */
  private waitSinceMs = 0;
  private stalled = false;
  private startedAtMs = 0;

  constructor(
    machine: Machine,
    setup: WorkerSetup,
    readonly policyName: string,
    build: (env: Environment, observer: Observer) => Hyperthread,
  ) {
    this.machine = machine;
    this.thread = setup.thread;
    this.i32 = machine.i32;
    this.f64 = machine.f64;
    this.control = ControlBlock.attach(setup.controlBuffer);
    this.slot = setup.slot;
    this.settings = setup.settings;
    this.exitsTarget = setup.config.run.exits;
    this.maxCycles = setup.config.run.maxCycles;
    this.stopOnViolation = setup.config.run.stopOnViolation;
    this.sleepers = new Sleepers(
      machine.i32,
      this.control.i32,
      machine.layout,
      machine.config.smt,
      this.control.sleeperIndex(0),
      sleeperStrideI32s,
    );
    this.waiter = new Waiter(machine.i32, this.control.i32, setup.settings.spinChecks);
    this.runStateSleeper = this.sleepers.countIndexOf(runStateIndex);
    this.heartbeatIndex = this.control.slotIndex(this.slot, SlotField.heartbeat);
    this.phaseIndex = this.control.slotIndex(this.slot, SlotField.phase);
    this.waitIndexSlot = this.control.slotIndex(this.slot, SlotField.waitIndex);
    Atomics.store(this.control.i32, this.control.slotIndex(this.slot, SlotField.thread), this.thread);

    const { keepEvents, eventsEpochMs } = setup.settings;
    // Kept events (traces) are stamped in wall-clock ns since the epoch the control thread set (it moves
    // them to the run's start when it merges them: run-workers.ts `mergeEvents`): each worker's virtual
    // cycles run at its own pace, so only real time puts the workers' events on one axis.
    const wallClockNs = () => (performance.timeOrigin + performance.now() - eventsEpochMs) * 1e6;
    this.log = setup.settings.monitor
      ? new EventLog(64, keepEvents, false, keepEvents ? wallClockNs : null)
      : null;
    this.monitor = setup.settings.monitor
      ? new Monitor(machine, this.log, setup.config.workload.catalogue)
      : null;
    this.counter = this.monitor ? null : new ExitCounter();
    const prng = new Prng(threadSeed(setup.config.run.seed, setup.thread));
    const sleepers = this.sleepers;
    const env: Environment = {
      random: () => prng.random(),
      // The reference path's loop draws through `random` (the PRNG has no kernel area here).
      guestDraws: prng,
      notify: (index) => {
        // A woken sibling reads this thread's clock (catchUp): published before the wake.
        this.hyperthread.publishCounters();
        sleepers.notify(index);
      },
      // Real latency: a kick is visible once its bit is.
      ipiVisible: () => true,
    };
    const observer: Observer = this.monitor ?? (this.counter as ExitCounter);
    this.hyperthread = build(env, observer);
    assert(this.hyperthread.thread === this.thread, 'the runner steps the hyperthread it was given');

    const smt = machine.config.smt;
    const core = Math.floor(this.thread / smt);
    this.siblingClockIndexes = setup.runningThreads
      .filter((other) => other !== this.thread && Math.floor(other / smt) === core)
      .map((other) => threadStatIndex(machine.layout, other, ThreadStat.clockCycles));
    this.setLoopState(LoopState.ready);
  }

  // ---- the comlink API ------------------------------------------------------------------------------------

  /** The object exposed over comlink: the control API and nothing else of the runner. */
  api(): HyperthreadControl {
    return {
      start: () => this.start(),
      pause: () => this.pause(),
      resume: () => this.resume(),
      stop: () => this.stop(),
      stats: () => this.stats(),
      state: () => this.state(),
    };
  }

  start(): HyperthreadState {
    if (this.loopState !== LoopState.ready)
      throw new NotAllowedError('start', loopStateNames[this.loopState]);
    this.loopDone = this.loop();
    return this.state();
  }

  async pause(): Promise<HyperthreadState> {
    if (this.loopState === LoopState.stopped || this.loopState === LoopState.failed)
      throw new NotAllowedError('pause', loopStateNames[this.loopState]);
    this.pauseRequested = true;
    if (this.loopState !== LoopState.parked && this.loopDone !== null)
      await new Promise<void>((resolve) => this.parkedResolvers.push(resolve));
    return this.state();
  }

  resume(): HyperthreadState {
    if (this.loopState === LoopState.stopped || this.loopState === LoopState.failed)
      throw new NotAllowedError('resume', loopStateNames[this.loopState]);
    this.pauseRequested = false;
    return this.state();
  }

  async stop(): Promise<WorkerStats> {
    this.stopRequested = true;
    if (this.loopDone !== null) await this.loopDone;
    else if (this.loopState === LoopState.ready) this.setLoopState(LoopState.stopped);
    return this.stats();
  }

  stats(): WorkerStats {
    const monitor = this.monitor;
    let events: number[] | null = null;
    if (this.log?.all) events = this.log.all.slice(0, workersLimits.keptEventsMax * 5);
    return {
      thread: this.thread,
      violations: monitor ? { ...monitor.counts } : zeroCounts(),
      records: monitor ? monitor.records : [],
      faults: monitor ? monitor.faults : [],
      exposureGuestSteps: monitor?.exposureGuestSteps ?? 0,
      exposureCycles: monitor?.exposureCycles ?? 0,
      workloadExits: this.workloadExits(),
      steps: this.hyperthread.steps,
      failure: this.failure,
      events,
      exitStats: this.hyperthread.exitStats,
    };
  }

  state(): HyperthreadState {
    const ht = this.hyperthread;
    return {
      thread: this.thread,
      core: ht.core,
      sibling: ht.sibling,
      loop: loopStateNames[this.loopState],
      mode: modeNames[modeOf(ht.coreWord(), ht.sibling)] ?? String(ht.mode),
      phase: ht.phaseName,
      steps: ht.steps,
      clockCycles: ht.clockCycles,
      waitingMs: this.waitSinceMs === 0 ? 0 : performance.now() - this.waitSinceMs,
    };
  }

  // ---- the loop -------------------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const runState = Atomics.load(this.i32, runStateIndex);
        if (runState === RunState.stop || this.stopRequested) break;
        if (runState === RunState.pause || this.pauseRequested) {
          this.park(runState);
          await yieldToEventLoop();
          continue;
        }
        if (this.startedAtMs === 0) {
          this.startedAtMs = performance.timeOrigin + performance.now();
          this.control.f64[this.control.slotF64Index(this.slot, SlotField.startedAtMsF64)] = this.startedAtMs;
        }
        this.setLoopState(LoopState.running);
        this.runSlice();
        await yieldToEventLoop();
      }
      this.publishExits();
      this.finishLoop(LoopState.stopped);
    } catch (error) {
      this.fail(error);
    }
  }

  /** Parked: beat, tell whoever waits for it, block on the run-state word for a while. */
  private park(runState: number): void {
    if (this.loopState !== LoopState.parked) this.setLoopState(LoopState.parked);
    for (const resolve of this.parkedResolvers.splice(0)) resolve();
    this.beat();
    this.waiter.block(runStateIndex, runState, this.runStateSleeper, workersLimits.parkWaitMs);
  }

  private runSlice(): void {
    const ht = this.hyperthread;
    const control = this.control.i32;
    const sliceEndMs = performance.now() + this.settings.sliceMs;
    const stepsPerCheck = workersLimits.stepsPerCheck;
    for (;;) {
      for (let i = 0; i < stepsPerCheck; i++) {
        control[this.phaseIndex] = ht.phase;
        const result = ht.step();
        ht.publishCounters();
        if (result === Step.ran) {
          if (this.waitSinceMs !== 0) this.endWaitEpisode();
          continue;
        }
        if (this.awaitWord()) break;
      }
      this.beat();
      this.publishExits();
      if (this.maxCycles > 0 && ht.clockCycles > this.maxCycles) this.requestRunStop();
      if (this.stopOnViolation && this.monitor !== null && this.monitor.total > 0) this.requestRunStop();
      if (this.log?.all && this.log.all.length > workersLimits.keptEventsMax * 5) {
        // Bounded memory: events past the cap are dropped (the run keeps going; its hash still counts them).
        this.log.all.length = workersLimits.keptEventsMax * 5;
      }
      if (Atomics.load(this.i32, runStateIndex) !== RunState.run || this.pauseRequested || this.stopRequested)
        return;
      if (performance.now() >= sliceEndMs) return;
    }
  }

  /**
   * The hyperthread returned Step.wait. Returns true if the worker blocked (the caller then looks at
   * the run state before stepping again), false if the word changed while spinning.
   */
  private awaitWord(): boolean {
    const ht = this.hyperthread;
    const index = ht.waitIndex;
    const value = ht.waitValue;
    if (Atomics.load(this.i32, index) !== value) return false;
    const deadline = ht.waitDeadlineCycles;
    if (this.waiter.spin(index, value)) {
      this.catchUp(deadline);
      return false;
    }
    const sleeper = this.sleepers.countIndexOf(index);
    if (Number.isFinite(deadline)) {
      // An idle timer: block for the real time it stands for (at most idleWaitMsMax), then jump to it.
      const timeoutMs = Math.min(
        workersLimits.idleWaitMsMax,
        Math.max(0, deadline - ht.clockCycles) / workersLimits.cyclesPerMs,
      );
      this.publishWait(index);
      const result = this.waiter.block(index, value, sleeper, timeoutMs);
      this.publishWait(-1);
      if (result === WaitResult.timedOut || Atomics.load(this.i32, index) === value) this.advanceTo(deadline);
      else this.catchUp(deadline);
      return true;
    }
    const nowMs = performance.now();
    if (this.waitSinceMs === 0) this.waitSinceMs = nowMs;
    else if (!this.stalled && nowMs - this.waitSinceMs > this.settings.livenessBoundMs)
      this.reportStall(nowMs - this.waitSinceMs, index);
    this.publishWait(index);
    const result = this.waiter.block(index, value, sleeper, this.settings.waitTimeoutMs);
    this.publishWait(-1);
    if (result === WaitResult.changed) this.catchUp(deadline);
    return true;
  }

  /** After a wait the word ended: the clock moves to the latest sibling's (at most `capCycles`). */
  private catchUp(capCycles: number): void {
    let latest = 0;
    for (const index of this.siblingClockIndexes) latest = Math.max(latest, this.f64[index]);
    this.advanceTo(Math.min(latest, capCycles));
  }

  /** Moves the clock after a wait and publishes it: a sibling's catchUp reads it. */
  private advanceTo(cycles: number): void {
    this.hyperthread.advanceTo(cycles);
    this.hyperthread.publishCounters();
  }

  private endWaitEpisode(): void {
    this.waitSinceMs = 0;
    if (this.stalled) {
      this.stalled = false;
      Atomics.store(this.control.i32, this.control.slotIndex(this.slot, SlotField.stalled), 0);
    }
  }

  /** INV-9 in real time: this wait has lasted past the bound. Recorded once per wait. */
  private reportStall(waitedMs: number, index: number): void {
    this.stalled = true;
    Atomics.store(this.control.i32, this.control.slotIndex(this.slot, SlotField.stalled), 1);
    this.monitor?.recordLiveness(
      this.hyperthread,
      `waited ${Math.round(waitedMs)} ms of real time on word ${index} (bound ${this.settings.livenessBoundMs} ms): ` +
        'lost wake-up or starvation',
      this.hyperthread.clockCycles,
    );
    if (this.stopOnViolation && this.monitor !== null) this.requestRunStop();
  }

  private publishWait(index: number): void {
    this.control.i32[this.waitIndexSlot] = index;
  }

  private beat(): void {
    Atomics.store(this.control.i32, this.heartbeatIndex, ++this.heartbeats);
  }

  private workloadExits(): number {
    return this.monitor ? this.monitor.workloadExits : (this.counter as ExitCounter).workloadExits;
  }

  /** Adds this worker's new workload exits to the machine-wide count; the one that reaches the budget stops the run. */
  private publishExits(): void {
    const exits = this.workloadExits();
    const delta = exits - this.exitsPublished;
    if (delta === 0) return;
    this.exitsPublished = exits;
    const total = Atomics.add(this.i32, workloadExitsIndex, delta) + delta;
    if (total >= this.exitsTarget) this.requestRunStop();
  }

  private requestRunStop(): void {
    Atomics.store(this.i32, runStateIndex, RunState.stop);
    Atomics.notify(this.i32, runStateIndex);
  }

  private setLoopState(state: number): void {
    this.loopState = state;
    Atomics.store(this.control.i32, this.control.slotIndex(this.slot, SlotField.loopState), state);
  }

  private finishLoop(state: number): void {
    this.control.f64[this.control.slotF64Index(this.slot, SlotField.stoppedAtMsF64)] =
      performance.timeOrigin + performance.now();
    this.setLoopState(state);
    this.beat();
    for (const resolve of this.parkedResolvers.splice(0)) resolve();
  }

  /** An exception in a step: name the hyperthread, step and phase, stop the whole run. */
  private fail(error: unknown): void {
    const ht = this.hyperthread;
    this.failure = {
      thread: this.thread,
      step: ht.steps,
      phase: phaseNames[this.control.i32[this.phaseIndex]] ?? ht.phaseName,
      mode: modeNames[ht.mode] ?? String(ht.mode),
      message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      stack: error instanceof Error ? (error.stack ?? '') : '',
    };
    Atomics.compareExchange(this.i32, failedThreadIndex, 0, this.thread + 1);
    this.requestRunStop();
    this.finishLoop(LoopState.failed);
  }
}

/** Attaches to the machine, loads the policy and builds the hyperthread (the worker's startup). */
export async function createHyperthreadRunner(setup: WorkerSetup): Promise<HyperthreadRunner> {
  const machine = attachMachine(setup.machineBuffer);
  const policy = await loadPolicy(setup.policy);
  const running = new Set(setup.runningThreads);
  assert(running.has(setup.thread), `ht${setup.thread} is one of the running hyperthreads`);
  return new HyperthreadRunner(
    machine,
    setup,
    policy.name,
    (env, observer) =>
      new Hyperthread(
        machine,
        setup.thread,
        policy,
        setup.config.costs,
        setup.config.workload,
        observer,
        env,
        running,
        null,
        // Workers poll their mailboxes in real time: the guest runs in quanta, a kick seen between two.
        setup.config.workload.guestQuantumCycles,
      ),
  );
}
