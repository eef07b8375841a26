import { assert } from '../../assert.js';
import type { RunConfig } from '../../config/run-config.js';
import { sectionAlignI32s } from '../../constants.js';
import type { FaultReport } from '../../invariants/monitor.js';
import type { Violation, ViolationCounts } from '../../invariants/violation.js';
import type { PolicySource } from '../../policy/policy-module.js';

/**
 * The names both sides of the `workers` backend use (STYLE.md, piscina: main side and worker side are
 * different files with a small shared module of names): the comlink control API of a hyperthread
 * worker, what a worker is started with, and the control block, a second small SharedArrayBuffer
 * that belongs to the backend (the machine buffer belongs to the model).
 *
 * Thread roles (Firecracker): the main thread is the control thread and is never in the fast path; each
 * worker steps one hyperthread. Run control travels in the machine buffer's header (`runState`), so a
 * blocked hyperthread sees it at its next wake-up; comlink carries requests that need an answer
 * (start, pause, stop, statistics, state) and never carries machine data.
 *
 * A worker's loop, as a state machine (LoopState):
 *
 *   starting ──attach, build──▶ ready ──start()──▶ parked ◀──pause / runState pause──▶ running
 *                                                     │                                   │
 *                                                     └──────stop / runState stop─────────┴──▶ stopped
 *   any state ──exception in a step──▶ failed (names the hyperthread, step and phase; stops the run)
 */
export const LoopState = {
  starting: 0,
  ready: 1,
  parked: 2,
  running: 3,
  stopped: 4,
  failed: 5,
} as const;
export const loopStateNames = ['starting', 'ready', 'parked', 'running', 'stopped', 'failed'] as const;
export type LoopStateName = (typeof loopStateNames)[number];

/**
 * Timing limits of the backend, in one place (TigerBeetle). Real time only: virtual time is the model's.
 * Relationships are asserted below.
 */
export const workersLimits = {
  /**
   * Checks of a word before blocking when hyperthreads <= CPUs. One Atomics.load of a line another core
   * holds costs ~50-100 ns, so 20,000 checks spin for ~1-2 ms at most; a raw wait/notify round trip
   * costs 20-90 µs (DESIGN.md), so a partner that answers within a few of those is caught spinning.
   */
  spinChecksFitting: 20_000,
  /**
   * Checks before blocking when hyperthreads > CPUs: the partner may need this very CPU to answer, so
   * spin only about as long as one cache-line round trip takes (~100 checks x ~2 ns on a local line).
   */
  spinChecksOversubscribed: 100,
  /** Longest single Atomics.wait: bounds how late a blocked hyperthread sees stop or pause. */
  waitTimeoutMs: 5,
  /** A parked worker blocks on the run-state word this long, then serves its comlink port. */
  parkWaitMs: 5,
  /** Real time a stepping worker runs before it lets its event loop answer comlink requests. */
  sliceMs: 10,
  /** Steps between two looks at the run-state word, the exit budget and the heartbeat. */
  stepsPerCheck: 64,
  /** A hyperthread whose heartbeat has not moved for this long is reported hung (never a hang). */
  watchdogMs: 5_000,
  /**
   * INV-9 in real time: a wait with no deadline that lasts this long is a lost wake-up or a
   * starvation. Far above an OS time slice (~1-24 ms) times the few threads sharing a CPU.
   */
  livenessBoundMs: 2_000,
  /** Workers must attach and build their hyperthread within this time (module load on a busy CI box). */
  startupTimeoutMs: 30_000,
  /** A worker asked to stop must hand back its statistics within this time, or it is terminated. */
  joinTimeoutMs: 5_000,
  /** How often the control thread looks at the run (exit budget, time, failures, watchdog). */
  pollMs: 2,
  /**
   * Nominal clock of the emulated cores, to turn an idle timer's virtual cycles into a real wait:
   * 3 GHz = 3,000,000 cycles per ms (the cost model's cycles are of a ~3 GHz server core).
   */
  cyclesPerMs: 3_000_000,
  /** An idle hyperthread blocks at most this long for its timer before it jumps to the deadline. */
  idleWaitMsMax: 1,
  /** Events kept per worker with keepEvents (5 numbers each): bounds a worker's memory. */
  keptEventsMax: 1_000_000,
  /**
   * Most hyperthreads running a vCPU (one worker thread each). A worker is a V8 isolate of ~20 MB
   * that takes tens of ms to start: 64 start in ~6 s at ~1.4 GB on a 2-CPU box (measured), 256 ran
   * past the start-up timeout after 39 s at 3.6 GB (issue 18). A fixed number rather than a multiple
   * of the CPU count, so a config valid on one machine is valid on another.
   */
  hyperthreadsMax: 64,
  /**
   * A run whose workload exit count has not moved for this long is ended (reason 'stalled'): with the
   * exit interval bounded (config/run-config.ts exitIntervalCyclesMax), a healthy run takes exits
   * every few ms, so a minute without one is a stuck run, not a slow one.
   */
  noProgressMs: 60_000,
} as const;

assert(
  workersLimits.waitTimeoutMs < workersLimits.watchdogMs,
  'a blocked wait ends well before the watchdog',
);
assert(workersLimits.parkWaitMs < workersLimits.watchdogMs, 'a parked worker beats before the watchdog');
assert(workersLimits.sliceMs < workersLimits.watchdogMs, 'a slice ends before the watchdog');
assert(workersLimits.waitTimeoutMs < workersLimits.livenessBoundMs, 'INV-9 spans many wait timeouts');
assert(
  workersLimits.noProgressMs > workersLimits.watchdogMs + workersLimits.livenessBoundMs,
  'a hang or a lost wake-up is reported as such before the run is called stalled',
);
assert(
  workersLimits.spinChecksOversubscribed < workersLimits.spinChecksFitting,
  'oversubscribed runs spin less',
);

/** Default spin checks for `threads` hyperthreads on `cpus` CPUs. */
export function defaultSpinChecks(threads: number, cpus: number): number {
  return threads <= cpus ? workersLimits.spinChecksFitting : workersLimits.spinChecksOversubscribed;
}

/** The settings a runner uses, resolved on the main side. */
export interface RunnerSettings {
  spinChecks: number;
  waitTimeoutMs: number;
  livenessBoundMs: number;
  sliceMs: number;
  /** Run the invariant monitor (benchmarks of the bare protocol turn it off). */
  monitor: boolean;
  keepEvents: boolean;
  /** With keepEvents: kept events are stamped in ns since this instant (timeOrigin-based ms). */
  eventsEpochMs: number;
}

/** `workerData` of a hyperthread worker: the startup handshake. */
export interface WorkerSetup {
  machineBuffer: SharedArrayBuffer;
  controlBuffer: SharedArrayBuffer;
  slot: number;
  thread: number;
  /** Every hyperthread that runs a vCPU in this run (nosmt leaves siblings offline). */
  runningThreads: number[];
  config: RunConfig;
  policy: PolicySource;
  settings: RunnerSettings;
}

/** One hyperthread as its worker sees it (the comlink `state()` answer). */
export interface HyperthreadState {
  thread: number;
  core: number;
  sibling: number;
  loop: LoopStateName;
  mode: string;
  phase: string;
  steps: number;
  clockCycles: number;
  /** Real ms the current wait has lasted (0 when not waiting). */
  waitingMs: number;
}

/** Why a worker stopped on an exception. */
export interface WorkerFailure {
  thread: number;
  step: number;
  phase: string;
  mode: string;
  message: string;
  stack: string;
}

/** What a worker hands back: its monitor's findings and counters (the comlink `stats()` answer). */
export interface WorkerStats {
  thread: number;
  violations: ViolationCounts;
  records: Violation[];
  faults: FaultReport[];
  exposureGuestSteps: number;
  exposureCycles: number;
  workloadExits: number;
  steps: number;
  failure: WorkerFailure | null;
  /** Flat (time, thread, kind, a, b) events, when the run keeps events. */
  events: number[] | null;
  /** The hyperthread's exit-stats array (cpu/exit-breakdown.ts), merged by the control thread. */
  exitStats: Float64Array;
}

/**
 * The comlink API of a hyperthread worker. A request that the loop's state does not allow is
 * answered with a NotAllowedError naming the state, never ignored.
 */
export interface HyperthreadControl {
  /** Starts the loop: it parks until the run state says run (so every hyperthread starts together). */
  start(): HyperthreadState;
  /** Parks this hyperthread at its next step boundary; resolves once it is parked. */
  pause(): Promise<HyperthreadState>;
  /** Lets a paused hyperthread step again (the run state must say run as well). */
  resume(): HyperthreadState;
  /** Ends the loop at its next step boundary; resolves with the final statistics once it has ended. */
  stop(): Promise<WorkerStats>;
  stats(): WorkerStats;
  state(): HyperthreadState;
}

// ---- the control block ----------------------------------------------------------------------------------

/** Words of a slot (one per running hyperthread), written by its worker, read by the control thread. */
export const SlotField = {
  /** Bumped by the worker at least every `stepsPerCheck` steps, every wait timeout and every park. */
  heartbeat: 0,
  loopState: 1,
  /** Phase of the hyperthread's state machine before the step it is running (for hang reports). */
  phase: 2,
  /** Machine-buffer word the worker is blocked on, or -1: the control thread notifies it on stop. */
  waitIndex: 3,
  /** 1 while the current wait has passed the liveness bound (INV-9 recorded). */
  stalled: 4,
  thread: 5,
  /** Float64 fields from here (index / 2 in a Float64Array): absolute epoch ms. */
  startedAtMsF64: 8,
  stoppedAtMsF64: 10,
  count: 32,
} as const;

/** Block header words. */
const BlockField = { magic: 0, coreCount: 1, slotCount: 2, count: sectionAlignI32s } as const;
/** 'ASIW' little-endian. */
const controlMagic = 0x57495341;
/** One 64-byte line per core for its sleeper count, so sleeping on one core never invalidates another's. */
export const sleeperStrideI32s = sectionAlignI32s;

assert(SlotField.count % sectionAlignI32s === 0, 'slots are padded to 64 bytes');
assert(SlotField.startedAtMsF64 % 2 === 0 && SlotField.stoppedAtMsF64 % 2 === 0, 'f64 fields are aligned');
assert(SlotField.stoppedAtMsF64 + 2 <= SlotField.count, 'slot fields fit the slot');

/**
 * The backend's control block: per-core sleeper counts (see waiter.ts: a notify is skipped when nobody
 * of the word's core sleeps) and per-worker slots (heartbeat, loop state, phase, the word it waits on).
 * Sections follow one another, each from the previous one's end.
 */
export class ControlBlock {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly sleepersOffsetI32: number;
  readonly slotsOffsetI32: number;
  readonly totalI32s: number;

  private constructor(
    readonly buffer: SharedArrayBuffer,
    readonly coreCount: number,
    readonly slotCount: number,
  ) {
    this.sleepersOffsetI32 = BlockField.count;
    this.slotsOffsetI32 = this.sleepersOffsetI32 + coreCount * sleeperStrideI32s;
    this.totalI32s = this.slotsOffsetI32 + slotCount * SlotField.count;
    assert(buffer.byteLength === this.totalI32s * 4, 'control block size matches its layout');
    this.i32 = new Int32Array(buffer);
    this.f64 = new Float64Array(buffer);
  }

  static create(coreCount: number, slotCount: number): ControlBlock {
    assert(coreCount >= 1 && slotCount >= 1, 'a control block needs a core and a slot');
    const totalI32s = BlockField.count + coreCount * sleeperStrideI32s + slotCount * SlotField.count;
    const buffer = new SharedArrayBuffer(totalI32s * 4);
    const i32 = new Int32Array(buffer);
    i32[BlockField.magic] = controlMagic;
    i32[BlockField.coreCount] = coreCount;
    i32[BlockField.slotCount] = slotCount;
    const block = new ControlBlock(buffer, coreCount, slotCount);
    for (let slot = 0; slot < slotCount; slot++) i32[block.slotIndex(slot, SlotField.waitIndex)] = -1;
    return block;
  }

  static attach(buffer: SharedArrayBuffer): ControlBlock {
    const i32 = new Int32Array(buffer);
    assert(i32[BlockField.magic] === controlMagic, 'not a workers control block (bad magic)');
    return new ControlBlock(buffer, i32[BlockField.coreCount], i32[BlockField.slotCount]);
  }

  /** Word index of core `core`'s sleeper count. */
  sleeperIndex(core: number): number {
    assert(core >= 0 && core < this.coreCount, `core ${core} has no sleeper count`);
    return this.sleepersOffsetI32 + core * sleeperStrideI32s;
  }

  slotIndex(slot: number, field: number): number {
    assert(slot >= 0 && slot < this.slotCount, `slot ${slot} out of range`);
    return this.slotsOffsetI32 + slot * SlotField.count + field;
  }

  /** Float64 index of a slot's f64 field (`field` is its i32 offset, even). */
  slotF64Index(slot: number, field: number): number {
    return this.slotIndex(slot, field) / 2;
  }

  loopState(slot: number): number {
    return Atomics.load(this.i32, this.slotIndex(slot, SlotField.loopState));
  }
}
