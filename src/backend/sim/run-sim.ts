import { acceleratedAccess } from '../../accel/accelerated-access.js';
import { assert } from '../../assert.js';
import type { MachineConfig, MachineConfigInput } from '../../config/machine-config.js';
import type { RunConfig, RunSettings } from '../../config/run-config.js';
import { smtSpeedupOf } from '../../config/workload.js';
import type { GuestDraws } from '../../cpu/access-path.js';
import { type Environment, type Hyperthread, Step } from '../../cpu/hyperthread.js';
import type { CoreTimelines } from '../../invariants/core-timeline.js';
import { EventLog } from '../../invariants/event-log.js';
import { Monitor } from '../../invariants/monitor.js';
import { createMachine, type Machine } from '../../machine.js';
import { ThreadStat, threadStatIndex } from '../../memory/layout.js';
import type { Policy } from '../../policy/policy.js';
import { checkPolicyRunsMix } from '../../policy/user-class.js';
import { collectResult, type RunResult } from '../result.js';
import { withExitInterval } from './exit-interval.js';
import { Prng } from './prng.js';
import { runningThreads, simHyperthreads } from './sim-threads.js';
import { runScheduled, type ScheduleStep } from './stepped-sim.js';

/**
 * The `sim` backend: a discrete-event scheduler in one thread (DESIGN.md "Two backends"). The thread
 * with the lowest virtual time steps next; a thread that waits is parked on its word until a notify
 * changes it (then its clock jumps to the notifier's) or its deadline comes. Every random choice comes
 * from one seeded PRNG, so the same config and seed give the same event trace, byte for byte.
 */
export interface SimOptions {
  /** Keep every event (for Perfetto traces and replay output). */
  keepEvents?: boolean;
  /** Record into this log (the caller reads its events afterwards); replaces `keepEvents`. */
  log?: EventLog;
  /** A machine built earlier from the same machine config, reused after a reset. */
  machine?: Machine;
  /** Called every 65,536 steps with the workload exits so far. */
  onProgress?: (exits: number) => void;
  /**
   * Scheduler choices as data (the fuzzer's, so interleavings shrink with the scenario): each random
   * draw takes the next value (an unsigned 32-bit integer, used as value / 2^32) until the list runs
   * out, then the seeded PRNG takes over.
   */
  choices?: readonly number[];
  /**
   * The scheduler itself as data (issue 23: an explorer's counterexample): which hyperthread steps next,
   * and where an interrupt arrives, in order; the draws are `choices`, every one. The run follows it
   * (stepped-sim.ts says how that differs from the sim's own order) and ends with it.
   */
  schedule?: readonly ScheduleStep[];
}

/**
 * Steps a run may spend per workload exit before it is called stuck (an assert). A guest stretch is one
 * step whatever its length, so an exit takes tens of steps (entry, handler ops, waits, a stretch or a
 * few when kicks and wake-ups cut it); 100,000 is far past any healthy run.
 */
const stepsPerExitMax = 100_000;
const watchdogEverySteps = 1024;

/** Per-thread wait state of the scheduler, indexed like `threads` (a thread's position in run order). */
interface Parking {
  /** 1 while the thread waits on a word. */
  blocked: Uint8Array;
  waitIndex: Int32Array;
  /** It waits while the word still holds this value. */
  waitValue: Int32Array;
  /** When it next wants to step: its clock, or its deadline while it waits (+Infinity: none). */
  nextAtCycles: Float64Array;
}

/**
 * The sim's Environment: draws from the run's PRNG and wakes parked threads. A class rather than an
 * object of closures: closures made anew for every run are not inlined by V8 (their call sites see many
 * closures), and `random` runs at every guest step, where a call that is not inlined also boxes its
 * double result (an allocation per draw).
 */
class SimEnvironment implements Environment {
  /** Set once the threads exist (each takes this environment in its constructor). */
  threads: Hyperthread[] = [];

  protected readonly prng: Prng;
  private readonly i32: Int32Array;
  private readonly parking: Parking;

  constructor(prng: Prng, i32: Int32Array, parking: Parking) {
    this.prng = prng;
    this.i32 = i32;
    this.parking = parking;
  }

  random(): number {
    return this.prng.random();
  }

  /** The PRNG itself: its batch is in the accelerated path's area when the machine has that path. */
  get guestDraws(): GuestDraws {
    return this.prng;
  }

  ipiVisible(nowCycles: number, deliverAtCycles: number): boolean {
    return nowCycles >= deliverAtCycles;
  }

  /** A thread woken jumps to the notifier's clock (`nowCycles`): it waited until then. */
  notify(i32Index: number, nowCycles: number): void {
    const { blocked, waitIndex, waitValue, nextAtCycles } = this.parking;
    const threads = this.threads;
    for (let t = 0; t < threads.length; t++) {
      if (blocked[t] && waitIndex[t] === i32Index && this.i32[i32Index] !== waitValue[t]) {
        blocked[t] = 0;
        threads[t].advanceTo(nowCycles);
        nextAtCycles[t] = threads[t].clockCycles;
      }
    }
  }
}

/**
 * The environment of a run given scheduler choices as data (`SimOptions.choices`): each draw takes the
 * next choice until they run out, then the PRNG. A class of its own, so that runs without choices (every
 * run but the fuzzer's) do not test for them at every draw.
 */
class ChoiceEnvironment extends SimEnvironment {
  private choiceIndex = 0;
  private readonly choices: readonly number[];

  constructor(prng: Prng, choices: readonly number[], i32: Int32Array, parking: Parking) {
    super(prng, i32, parking);
    this.choices = choices;
  }

  /** While choices are left, draws through `random` (no batch); then the PRNG's. */
  private readonly choiceDraws: GuestDraws = { random: () => this.random(), area: null, cursor: 0 };

  override random(): number {
    if (this.choiceIndex < this.choices.length) return (this.choices[this.choiceIndex++] >>> 0) / 4294967296;
    return this.prng.random();
  }

  override get guestDraws(): GuestDraws {
    return this.choiceIndex < this.choices.length ? this.choiceDraws : this.prng;
  }
}

/**
 * A machine for the sim backend: one thread drives it, through the accelerated access path (the access
 * kernel over the thread's sim arena; the reference where it cannot serve: docs/backends.md).
 */
export function createSimMachine(config: MachineConfig | MachineConfigInput): Machine {
  return createMachine(config, { concurrent: false, access: acceleratedAccess });
}

export function runSim(config: RunConfig, policy: Policy, options: SimOptions = {}): RunResult {
  checkPolicyRunsMix(policy, config.workload.mix, 'policy');
  // The exit rate becomes guest cycles between exits first (a calibration run on the same machine when
  // the workload gives a rate: exit-interval.ts).
  if (options.machine !== undefined)
    return runOn(options.machine, withExitInterval(config, options.machine), policy, options, true);
  // A machine made here is done with after the run (its sim arena region goes back now; the result is
  // plain data), whether the run ends or throws.
  const machine = createSimMachine(config.machine);
  try {
    const resolved = withExitInterval(config, machine);
    return runOn(machine, resolved, policy, options, resolved !== config);
  } finally {
    machine.dispose();
  }
}

function runOn(
  machine: Machine,
  config: RunConfig,
  policy: Policy,
  options: SimOptions,
  /** The machine ran before (a caller's, or a calibration's): its dynamic state goes back first. */
  reset: boolean,
): RunResult {
  if (reset) machine.resetDynamicState();
  if (options.schedule !== undefined) {
    const fallback = new Prng(config.run.seed);
    const log = options.log ?? new EventLog(64, options.keepEvents ?? false);
    return runScheduled(
      machine,
      config,
      policy,
      options.schedule,
      options.choices ?? [],
      () => fallback.random(),
      log,
    );
  }
  const prng = new Prng(config.run.seed, machine.access.prngArea);
  const log = options.log ?? new EventLog(64, options.keepEvents ?? false);
  const monitor = new Monitor(machine, log, config.workload.catalogue);
  monitor.checkIsolatedContents();
  // Guest work at the SMT speedup, and exposure, in virtual time (invariants/core-timeline.ts).
  const timeline = monitor.trackTime(smtSpeedupOf(config.workload, machine.config.smt));

  const threadsRunning = runningThreads(machine, policy);
  const { order } = threadsRunning;
  const count = order.length;
  const blocked = new Uint8Array(count);
  const waitIndex = new Int32Array(count);
  const waitValue = new Int32Array(count);
  const deadline = new Float64Array(count);
  const waitStart = new Float64Array(count);
  const livenessReported = new Uint8Array(count);
  // Updated wherever a clock or a wait changes (here and in notify), so the pick scans one array.
  const nextAtCycles = new Float64Array(count);
  const parking: Parking = { blocked, waitIndex, waitValue, nextAtCycles };
  const env =
    options.choices !== undefined && options.choices.length > 0
      ? new ChoiceEnvironment(prng, options.choices, machine.i32, parking)
      : new SimEnvironment(prng, machine.i32, parking);
  const { confidential, threads } = simHyperthreads(machine, config, policy, monitor, env, threadsRunning);
  env.threads = threads;

  const { steps, deadlocked } = schedule({
    threads,
    prng,
    monitor,
    i32: machine.i32,
    parking,
    deadline,
    waitStart,
    livenessReported,
    settings: config.run,
    onProgress: options.onProgress ?? null,
    timeline,
  });
  for (const thread of threads) thread.publishCounters();
  let endCycles = 0;
  for (const thread of threads) endCycles = Math.max(endCycles, thread.clockCycles);
  monitor.finishTime(endCycles);
  for (const thread of threads) {
    machine.f64[threadStatIndex(machine.layout, thread.thread, ThreadStat.guestWorkCycles)] =
      timeline.guestWorkCycles[thread.thread];
  }
  return collectResult({
    backend: 'sim',
    machine,
    policy,
    config,
    threads,
    monitor,
    log,
    steps,
    deadlocked,
    wallSeconds: 0,
    confidential,
  });
}

/** What the scheduler loop reads: set up once per run by `runSim`. */
interface Schedule {
  threads: Hyperthread[];
  prng: Prng;
  monitor: Monitor;
  i32: Int32Array;
  parking: Parking;
  deadline: Float64Array;
  /** When each thread's current wait began (INV-9's watchdog). */
  waitStart: Float64Array;
  livenessReported: Uint8Array;
  settings: RunSettings;
  onProgress: ((exits: number) => void) | null;
  /** Told at every step how far virtual time is settled (the time of the step picked). */
  timeline: CoreTimelines;
}

/**
 * The scheduler loop, apart from `runSim`'s setup: V8 optimizes a function as a whole, and `runSim`
 * is entered once per run, its setup taking paths (options given or not, confidential VMs or not) that
 * deoptimized the loop's code with them, run after run (V8's --trace-deopt). On its own, this loop is
 * optimized once and entered optimized by every later run.
 */
function schedule(run: Schedule): { steps: number; deadlocked: boolean } {
  const { threads, prng, monitor, i32, deadline, waitStart, livenessReported, onProgress, timeline } = run;
  const { blocked, waitIndex, waitValue, nextAtCycles } = run.parking;
  // Read once into locals: the loop below runs millions of times per second.
  const { maxCycles, jitterCycles, stopOnViolation, waitBoundCycles } = run.settings;
  const exitsTarget = run.settings.exits;
  const count = threads.length;
  const stepsMax = exitsTarget * stepsPerExitMax;
  let steps = 0;
  let exitsDone = 0;
  let deadlocked = false;
  // KVM_RUN on every vCPU thread first: each starts in the host, so none enters the guest beside a
  // sibling still offline that then starts in the full kernel (as if it came from nowhere).
  for (const thread of threads) {
    assert(thread.step() === Step.ran, 'a first step (into the host) does not wait');
    steps++;
  }
  while (exitsDone < exitsTarget && steps < stepsMax) {
    let best = -1;
    let bestTime = Number.POSITIVE_INFINITY;
    for (let t = 0; t < count; t++) {
      const time = nextAtCycles[t];
      if (time < bestTime) {
        bestTime = time;
        best = t;
      }
    }
    if (best < 0) {
      // Every thread waits and none has a deadline: a deadlock (INV-9).
      reportDeadlock(threads, waitIndex, monitor);
      deadlocked = true;
      break;
    }
    if (maxCycles > 0 && bestTime > maxCycles) break;
    // Every step starts at the lowest clock or deadline, and a woken thread at its waker's clock: no
    // event still to come is earlier than this one's start.
    timeline.frontierCycles = bestTime;
    const thread = threads[best];
    if (blocked[best]) {
      blocked[best] = 0;
      thread.advanceTo(deadline[best]);
    }
    const result = thread.step();
    steps++;
    if (result === Step.wait && i32[thread.waitIndex] === thread.waitValue) {
      blocked[best] = 1;
      waitIndex[best] = thread.waitIndex;
      waitValue[best] = thread.waitValue;
      deadline[best] = thread.waitDeadlineCycles;
      waitStart[best] = thread.clockCycles;
      livenessReported[best] = 0;
    }
    if (jitterCycles > 0) thread.spend(prng.int(jitterCycles + 1));
    // A waiting thread whose clock passed its deadline (the jitter, or a guest stretch's accesses)
    // steps next at its clock, not before: a step that began earlier than the clock of the thread
    // taking it would act on what siblings did later in virtual time (and no step may start before the
    // settled time it tells the timeline).
    if (blocked[best] && deadline[best] < thread.clockCycles) deadline[best] = thread.clockCycles;
    nextAtCycles[best] = blocked[best] ? deadline[best] : thread.clockCycles;
    exitsDone = monitor.workloadExits;
    if ((steps & (watchdogEverySteps - 1)) === 0) {
      watchdog(threads, blocked, deadline, waitStart, livenessReported, monitor, waitBoundCycles);
    }
    if (stopOnViolation && monitor.total > 0) break;
    if (onProgress !== null && (steps & 0xffff) === 0) onProgress(exitsDone);
  }
  watchdog(threads, blocked, deadline, waitStart, livenessReported, monitor, waitBoundCycles);
  // A guest stretch still open ran on to where the run stopped (the latest clock), or its own end.
  let endCycles = 0;
  for (const thread of threads) endCycles = Math.max(endCycles, thread.clockCycles);
  for (let t = 0; t < count; t++) if (blocked[t]) threads[t].closeStretch(endCycles);
  assert(steps < stepsMax || deadlocked || monitor.total > 0, `sim made no progress in ${stepsMax} steps`);
  return { steps, deadlocked };
}

/** INV-9 for every thread: each one waits, and none has a deadline. */
function reportDeadlock(threads: Hyperthread[], waitIndex: Int32Array, monitor: Monitor): void {
  for (let t = 0; t < threads.length; t++) {
    monitor.recordLiveness(
      threads[t],
      `deadlock: every thread waits (ht${threads[t].thread} on word ${waitIndex[t]})`,
      threads[t].clockCycles,
    );
  }
}

/** INV-9: a wait with no deadline that has lasted longer than the bound, measured in virtual time. */
function watchdog(
  threads: Hyperthread[],
  blocked: Uint8Array,
  deadline: Float64Array,
  waitStart: Float64Array,
  reported: Uint8Array,
  monitor: Monitor,
  boundCycles: number,
): void {
  let now = Number.POSITIVE_INFINITY;
  for (let t = 0; t < threads.length; t++) if (!blocked[t]) now = Math.min(now, threads[t].clockCycles);
  if (!Number.isFinite(now)) return;
  for (let t = 0; t < threads.length; t++) {
    if (!blocked[t] || reported[t] || Number.isFinite(deadline[t])) continue;
    if (now - waitStart[t] > boundCycles) {
      reported[t] = 1;
      monitor.recordLiveness(
        threads[t],
        `waited ${Math.round(now - waitStart[t])} cycles (bound ${boundCycles}): lost wake-up or starvation`,
        now,
      );
    }
  }
}
