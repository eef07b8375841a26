import xxhash from 'xxhash-wasm';
import { assert } from '../assert.js';
import { withExitInterval } from '../backend/sim/exit-interval.js';
import { createSimMachine } from '../backend/sim/run-sim.js';
import {
  type InterruptName,
  interruptNames,
  interruptVectorOf,
  type ScheduleStep,
  type StepDraws,
  SteppedSim,
} from '../backend/sim/stepped-sim.js';
import type { RunConfig } from '../config/run-config.js';
import { compiledCatalogueOf } from '../cpu/handler-program.js';
import { modeNames } from '../cpu/modes.js';
import { type CaseVerdict, type FuzzCase, runConfigOf, runFuzzCase } from '../fuzz/fuzz-case.js';
import type { Violation } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import { domainCount } from '../memory/domains.js';
import { CoreField, coreFieldIndex, ThreadField, threadFieldIndex } from '../memory/layout.js';
import {
  type L1dLayout,
  l1dClockI32,
  l1dHintSlots,
  l1dLayout,
  l1dLineI32s,
  l1dLineInPageI32,
  l1dLineOwnerI32,
  l1dLinePfnI32,
  l1dLineStampI32,
} from '../memory/sub-layouts.js';
import type { Policy } from '../policy/policy.js';
import { type Footprint, Footprints, independent } from './footprint.js';
import { MachineSections } from './machine-sections.js';
import { type AbstractSink, type Capture, StateWalker, type WalkerOptions } from './state-walker.js';

/**
 * A bounded model checker over the real step code (issue 23): breadth-first search over every
 * interleaving of a small machine's hyperthreads (stepped-sim.ts: any runnable thread may step), every
 * exit reason of the mix, and interrupts landing at any step boundary, up to their counts. The first
 * violation found is the shortest (fewest transitions) and comes back as a schedule the sim replays.
 *
 * Choice points and fixed draws:
 * - which runnable hyperthread steps next, and when a deadline comes (a guest stretch's exit, a halted
 *   vCPU's timer): a branch per runnable thread;
 * - an exit's reason and variant: a branch per entry of the mix (and per variant where the mix leaves
 *   it open), through `WorkloadRandom.drawChoice`; the draw is the middle of the entry's interval;
 * - an interrupt (`bounds.interrupts`): a branch per running thread while its count lasts;
 * - every other draw is fixed at 0.5: when an exit or a wake-up is due (a deadline, which the relaxed
 *   order lets come at any point anyway), which line of the working set a guest access reads, which
 *   peer vCPU a guest IPI goes to, and a confidential VM's draws.
 *
 * State and dedup: save/restore (issue 23 item 3). Each queued state keeps a snapshot: the machine's
 * dynamic sections' words that differ from the initial state (machine-sections.ts) and the JS-side
 * objects that differ (state-walker.ts: a generic walk of everything reachable from the stepped sim, no
 * list of fields); a transition restores its state's snapshot and steps once. Re-execution from the
 * initial state (`Executor.execute`) is kept as the ground truth: the counterexample's replay uses it,
 * and test/explore/save-restore.test.ts checks that restore + step reaches what re-execution reaches.
 * A state's identity is an xxh64 of the abstract state: the dynamic sections (each L1D in canonical
 * form, the RMP only under a confidential VM), the walker's record of every object reachable from the
 * hyperthreads (their guest workloads, kickers, Linux ASI state machines, predictors, wherever they live)
 * without statistics and virtual-time fields (`...Cycles`), the scheduler's waits (a deadline only as
 * there or not), the monitor's counts and the interrupts left. Two orders of independent steps thus
 * meet in one state.
 */
export interface ExploreBounds {
  /** Workload exits (not kicks) after which a path ends: the sim's `run.exits`. */
  exits: number;
  /** Interrupts that may land, by kind (each at any step boundary, on any running thread). */
  interrupts: Readonly<Record<InterruptName, number>>;
  /** Longest path, in transitions; a state this deep is not expanded (the result is then not complete). */
  maxDepth: number;
  /** Wall-clock budget in ms (null: none); needs `clockMs`. */
  timeLimitMs: number | null;
  /**
   * Most distinct states before the search stops, not complete (absent or null: none). Saved states
   * cost memory (~11 kB each on 1 core x 2), so the CLI always sets one (`--max-states`).
   */
  maxStates?: number | null;
}

export interface ExploreOptions {
  policy: Policy;
  /** The machine, workload and run as a fuzz case (explore-case.ts); `run.exits` is set from the bounds. */
  fuzzCase: FuzzCase;
  bounds: ExploreBounds;
  /** Wall clock in ms (the CLI's performance.now): the time limit and states per second. */
  clockMs?: () => number;
  /** Partial-order reduction: `sleep` (default) or `none` (plain search, for comparison). */
  reduction?: 'sleep' | 'none';
}

/** One transition: thread `thread` (index in run order) steps with `choices`, or an interrupt lands. */
export interface Transition {
  thread: number;
  /** The step's choice-point picks, in the order it draws them (missing: 0). */
  choices: readonly number[];
  interrupt: InterruptName | null;
}

/** A state in the frontier: its path as a chain of parents. */
interface StateNode {
  parent: StateNode | null;
  transition: Transition | null;
  depth: number;
  /** Threads runnable in it (indices), and interrupts left by kind (interruptNames order). */
  runnable: number[];
  interruptsLeft: number[];
  /** The state, saved until the node is expanded. */
  snapshot: Snapshot | null;
  hash: bigint;
  /** A second expansion (sleep sets): only these groups, with `sleep` as the path's sleep set. */
  only: Set<number> | null;
  sleep: readonly Sleeper[];
}

export interface Counterexample {
  violation: Violation;
  /** The path as the sim replays it: thread ids and interrupts, in order. */
  schedule: ScheduleStep[];
  /** Every draw of the path, as u32 (the replay's `choices`). */
  choices: number[];
  /** The path in words, one line per transition. */
  steps: string[];
  /** The fuzz case that replays it (`schedule` and `choices` set). */
  fuzzCase: FuzzCase;
  /** What the sim did with it: the same invariant broken? */
  replay: CaseVerdict;
  replaySameInvariant: boolean;
}

export interface ExploreResult {
  policy: string;
  bounds: ExploreBounds;
  /**
   * The partial-order reduction used: `sleep` (sleep sets over footprint.ts's independence) or `none`
   * (asked for, or the machine has more resources than a footprint mask holds).
   */
  reduction: 'sleep' | 'none';
  /** Distinct states reached (the visited set's size). */
  states: number;
  /** Transitions taken (each a step or an interrupt from a state). */
  transitions: number;
  /** Groups of transitions (a thread's step with all its picks, or an interrupt) a sleep set skipped. */
  transitionsSlept: number;
  /** Violations found: the search stops at the first (the shortest), so 0 or 1. */
  violations: number;
  /** Every state within the bound was expanded: no violation, no depth or time limit reached. */
  complete: boolean;
  /** States not expanded because they were `maxDepth` deep. */
  depthLimited: number;
  timeLimited: boolean;
  /** The search stopped at `bounds.maxStates` distinct states. */
  statesLimited: boolean;
  /** Longest path expanded. */
  depthReached: number;
  elapsedMs: number | null;
  statesPerSecond: number | null;
  /** Bytes hashed per state (the serialisation's size). */
  stateBytes: number;
  /**
   * Bytes saved per state, on average over the states queued (a snapshot: the dynamic sections' words
   * that differ from the initial state, 12 bytes each, and the JS-side objects that differ, ~8 bytes a
   * value): what the frontier costs.
   */
  snapshotBytesPerState: number;
  counterexample: Counterexample | null;
}

/** The u32 draw of every fixed draw: 0.5. */
const fixedDrawU32 = 2 ** 31;
const twoTo32 = 2 ** 32;

/**
 * Draws of one execution: fixed ones, and the choice points' picks (`planned`, per step), each recorded
 * as the u32 the sim replays. `widths` tells the explorer how many picks each choice point had.
 */
export class ExploreDraws implements StepDraws {
  readonly recorded: number[] = [];
  planned: readonly number[] = [];
  cursor = 0;
  widths: number[] = [];
  private readonly representatives = new WeakMap<object, number[]>();

  random(): number {
    this.recorded.push(fixedDrawU32);
    return fixedDrawU32 / twoTo32;
  }

  drawChoice(cumulative: ArrayLike<number>): number {
    const values = this.representativesOf(cumulative);
    const pick = this.planned[this.cursor] ?? 0;
    assert(pick < values.length, 'a planned pick within its choice point');
    this.cursor++;
    this.widths.push(values.length);
    this.recorded.push(values[pick]);
    return values[pick] / twoTo32;
  }

  /** Starts a step with these picks. */
  beginStep(planned: readonly number[]): void {
    this.planned = planned;
    this.cursor = 0;
    this.widths = [];
  }

  /** One u32 per entry of positive width: the middle of its interval (exact as u32 / 2^32). */
  private representativesOf(cumulative: ArrayLike<number>): number[] {
    const key = cumulative as object;
    let values = this.representatives.get(key);
    if (values !== undefined) return values;
    values = [];
    for (let i = 0; i < cumulative.length; i++) {
      const low = i === 0 ? 0 : cumulative[i - 1];
      const high = i === cumulative.length - 1 ? 1 : cumulative[i];
      if (!(high > low)) continue;
      const u32 = Math.floor(((low + high) / 2) * twoTo32);
      assert(u32 / twoTo32 >= low && u32 / twoTo32 < high, 'a representative inside its entry');
      values.push(u32);
    }
    this.representatives.set(key, values);
    return values;
  }
}

type Hash64 = (input: Uint8Array, seed?: bigint) => bigint;

/** A state saved: the machine's dynamic sections (changed words) and the JS-side state (a walker diff). */
export interface Snapshot {
  sections: Int32Array;
  js: Capture;
}

/**
 * The explorer's machine and its one stepped sim. A state is reached by restoring its snapshot
 * (`restore`, then a step: save/restore, issue 23 item 3); `execute` re-executes a path from the
 * initial state instead (machine reset, fresh hyperthreads), for the counterexample's replay and the
 * differential test, and as the first slice's engine (`engine: 'reexecute'`).
 */
export class Executor {
  readonly machine: Machine;
  readonly config: RunConfig;
  /** The sim the search steps (save/restore), its draws, and their savers. */
  readonly sim: SteppedSim;
  readonly draws = new ExploreDraws();
  readonly sections: MachineSections;
  readonly walker: StateWalker;

  constructor(
    fuzzCase: FuzzCase,
    readonly policy: Policy,
    /** Check every walked object's shape at every walk (the differential test). */
    checkShapes = false,
  ) {
    this.machine = createSimMachine(runConfigOf(fuzzCase).machine);
    this.config = withExitInterval(runConfigOf(fuzzCase), this.machine);
    this.machine.resetDynamicState();
    this.sim = new SteppedSim(this.machine, this.config, policy, this.draws);
    this.sim.start();
    this.sections = new MachineSections(this.machine);
    this.walker = new StateWalker(
      [this.sim.threads, this.sim],
      walkerOptions(this.sim, this.draws, checkShapes),
    );
  }

  /** The state now, saved. */
  capture(sink: AbstractSink | null = null): Snapshot {
    return { sections: this.sections.capture(), js: this.walker.capture(sink) };
  }

  restore(snapshot: Snapshot): void {
    this.sections.restore(snapshot.sections);
    this.walker.restore(snapshot.js);
  }

  /** The state at the end of `path`, by re-execution from the initial state on fresh hyperthreads. */
  execute(path: readonly Transition[]): { sim: SteppedSim; draws: ExploreDraws; last: number[] } {
    this.machine.resetDynamicState();
    const draws = new ExploreDraws();
    const sim = new SteppedSim(this.machine, this.config, this.policy, draws);
    sim.start();
    let last: number[] = [];
    for (const transition of path) {
      this.apply(sim, draws, transition);
      last = draws.widths;
    }
    return { sim, draws, last };
  }

  apply(sim: SteppedSim, draws: ExploreDraws, transition: Transition): void {
    if (transition.interrupt !== null) {
      draws.beginStep([]);
      sim.interrupt(transition.thread, interruptVectorOf[transition.interrupt]);
      return;
    }
    draws.beginStep(transition.choices);
    sim.step(transition.thread);
  }

  dispose(): void {
    this.machine.dispose();
  }
}

/**
 * What the walker leaves alone and what the hash leaves out. Opaque (immutable by contract, kept as
 * references): the machine object (its state is the buffer), the run's config and its sections, the
 * policy, the draws (the explorer's own), and each thread's compiled handler catalogue (built once per
 * machine and cached, handler-program.ts: every run on the machine shares it, so a step that changed
 * it would change every later run; the differential test checks it does not), and the event log (an
 * observer's record: no step reads it). Left out of the hash:
 * the monitor (its violation records and statistics; the counts it decides by are pushed on their own),
 * the event log, the environment and the stepped sim's own fields (its waits are pushed on their own,
 * with a deadline as only there or not), statistics and every virtual-time field by name.
 */
function walkerOptions(sim: SteppedSim, draws: StepDraws, checkShapes = false): WalkerOptions {
  const { machine, config, policy } = sim;
  // The event log too: an observer's record (a running hash and a ring of recent events) that no step
  // reads; the explorer's counterexample gets its trace from the sim's replay, never from this log.
  const opaque = new Set<object>([machine, policy, draws, sim.log]);
  // The run's config and the machine's description (its layout and config) are data no step writes.
  collectReachable(config, opaque);
  collectReachable(machine.layout, opaque);
  collectReachable(machine.config, opaque);
  for (const thread of sim.threads) {
    const catalogue = compiledCatalogueOf(
      machine,
      thread.thread,
      thread.vmId,
      thread.vcpu,
      config.workload.catalogue,
    );
    collectReachable(catalogue, opaque);
  }
  const abstractIgnores = new Set<object>([sim, sim.monitor, sim.log]);
  for (const thread of sim.threads) abstractIgnores.add(thread.env);
  return {
    sharedBuffer: machine.i32.buffer,
    opaque,
    abstractIgnores,
    abstractIgnoresKey: (key: string) => key.endsWith('Cycles') || untimedCounters.has(key),
    checkShapes,
  };
}

/**
 * The full record of a stepped sim's JS-side state (every walked object, references as walk positions,
 * nothing left out; each object's fields checked to be those it was first seen with): what the
 * differential test compares between a restored state and a re-executed one.
 */
export function fullRecordOf(sim: SteppedSim, draws: StepDraws): unknown[] {
  return new StateWalker([sim.threads, sim], walkerOptions(sim, draws, true)).record();
}

/** Every object reachable from `root` (fields, elements), into `into`. */
function collectReachable(root: object, into: Set<object>): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object' || into.has(value)) continue;
    into.add(value);
    if (ArrayBuffer.isView(value)) continue;
    for (const item of Object.values(value)) stack.push(item);
  }
}

/** Counters that only count (statistics): left out of a state's hash, with every `...Cycles` field. */
const untimedCounters = new Set(['steps', 'guestSteps', 'stretchProgressShare', 'rekicks', 'exitStats']);

/** The state's serialisation and its hash (see the module comment for what it holds). */
export class StateHasher implements AbstractSink {
  private readonly sections: Uint8Array[];
  private local = new Float64Array(1024);
  private localLength = 0;
  private readonly strings = new Map<string, number>();
  private buffer = new Uint8Array(0);
  private readonly l1dLayout: L1dLayout;
  private readonly l1dBasesI32: number[];
  private readonly sets: number;
  private readonly ways: number;
  private readonly lines: number[][] = [];
  bytes = 0;

  /** Word indices in the hash buffer (as Int32) that are statistics: read as 0. */
  private readonly statisticWords: number[] = [];

  constructor(
    machine: Machine,
    private readonly hash64: Hash64,
    /** Whether the policy reads the kick acknowledgement counters (a planted `waitFor: 'ack'`). */
    readsKickAcks = false,
  ) {
    const { cores, rmp, threads, predictors } = machine.layout.sections;
    // Each core's L1D, where it lies in the copy (the cores section comes first).
    const geometry = {
      ...machine.config.l1d,
      domainCount: domainCount(machine.config.vms.length),
    };
    this.l1dLayout = l1dLayout(geometry);
    this.l1dBasesI32 = machine.caches.map(
      (caches) => (caches.l1d as unknown as { baseI32Index: number }).baseI32Index - cores.offsetI32,
    );
    this.sets = geometry.sets;
    this.ways = geometry.ways;
    const base = machine.i32.byteOffset;
    // The RMP changes only under a confidential VM.
    const confidential = machine.config.vms.some((vm) => vm.confidential === true);
    const hashed = confidential ? [cores, rmp, threads, predictors] : [cores, threads, predictors];
    this.sections = hashed.map(
      (section) => new Uint8Array(machine.i32.buffer, base + section.offsetI32 * 4, section.lengthI32 * 4),
    );
    // Thread records hold counters that only count (TLB hits, misses, flushes) and the kick
    // acknowledgement counter, which only a planted ack wait reads (kick/kicker.ts): left out, as the
    // JS-side statistics are, so that a loop of steps that repeats a state (a sibling kicked again and
    // again while a kicker waits) closes instead of counting forever.
    let threadsAt = 0;
    for (const section of hashed) {
      if (section === threads) break;
      threadsAt += section.lengthI32;
    }
    const statistics: number[] = [ThreadField.tlbHits, ThreadField.tlbMisses, ThreadField.tlbFlushes];
    if (!readsKickAcks) statistics.push(ThreadField.kickAcks);
    for (let thread = 0; thread < machine.layout.threadCount; thread++)
      for (const field of statistics)
        this.statisticWords.push(
          threadsAt + threadFieldIndex(machine.layout, thread, field) - threads.offsetI32,
        );
    // Each core's flush counter (CoreField.flushCount): written at every L1D flush, read by nothing.
    for (let core = 0; core < machine.config.cores; core++)
      this.statisticWords.push(coreFieldIndex(machine.layout, core, CoreField.flushCount) - cores.offsetI32);
  }

  /**
   * The state now: its hash (the abstract state: canonical dynamic sections, then the walker's record of
   * every JS-side object the hash keeps, then the waits, the monitor's counts and the interrupts left)
   * and its snapshot (the same walk).
   */
  hash(executor: Executor, interruptsLeft: readonly number[]): { hash: bigint; snapshot: Snapshot } {
    this.localLength = 0;
    const sim = executor.sim;
    const snapshot = executor.capture(this);
    for (let t = 0; t < sim.threads.length; t++) {
      this.push(sim.blocked[t]);
      this.push(sim.waitIndex[t]);
      this.push(sim.waitValue[t]);
      this.push(sim.deadline[t] === Number.POSITIVE_INFINITY ? 0 : 1);
    }
    this.push(sim.monitor.total);
    this.push(sim.monitor.workloadExits);
    for (const left of interruptsLeft) this.push(left);
    return { hash: this.hashBuffer(), snapshot };
  }

  private hashBuffer(): bigint {
    let size = this.localLength * 8;
    for (const section of this.sections) size += section.length;
    if (this.buffer.length < size) this.buffer = new Uint8Array(size);
    let at = 0;
    for (const section of this.sections) {
      this.buffer.set(section, at);
      at += section.length;
    }
    this.buffer.set(new Uint8Array(this.local.buffer, 0, this.localLength * 8), at);
    this.canonicalL1ds(new Int32Array(this.buffer.buffer, 0, this.sections[0].length / 4));
    const words = new Int32Array(this.buffer.buffer, 0, at / 4);
    for (const index of this.statisticWords) words[index] = 0;
    this.bytes = size;
    return this.hash64(this.buffer.subarray(0, size));
  }

  /**
   * An L1D as what it holds, not when or where: its LRU clock counts every access of the core, and a
   * miss fills whichever way is free or oldest, so two orders of the siblings' accesses differ in every
   * stamp and in which way holds which line. Each set becomes its valid lines sorted (pfn, line, owner),
   * each with its rank in the set's LRU order (all that replacement reads); invalid ways, the clock and
   * the hit hints (a cache of where lines are) read 0.
   */
  private canonicalL1ds(cores: Int32Array): void {
    const { linesI32Offset, hintsI32Offset } = this.l1dLayout;
    const ways = this.ways;
    const lines = this.lines;
    for (const base of this.l1dBasesI32) {
      cores[base + l1dClockI32] = 0;
      cores.fill(0, base + hintsI32Offset, base + hintsI32Offset + this.sets * l1dHintSlots);
      for (let set = 0; set < this.sets; set++) {
        const first = base + linesI32Offset + set * ways * l1dLineI32s;
        let valid = 0;
        for (let way = 0; way < ways; way++) {
          const at = first + way * l1dLineI32s;
          if (cores[at + l1dLineOwnerI32] === 0) continue;
          lines[valid] = [
            cores[at + l1dLinePfnI32],
            cores[at + l1dLineInPageI32],
            cores[at + l1dLineOwnerI32],
            cores[at + l1dLineStampI32],
          ];
          valid++;
        }
        const held = lines.slice(0, valid);
        const byAge = held.map((line) => line[3]).sort((a, b) => a - b);
        held.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
        cores.fill(0, first, first + ways * l1dLineI32s);
        held.forEach((line, index) => {
          const at = first + index * l1dLineI32s;
          cores[at + l1dLinePfnI32] = line[0];
          cores[at + l1dLineInPageI32] = line[1];
          cores[at + l1dLineOwnerI32] = line[2];
          cores[at + l1dLineStampI32] = byAge.indexOf(line[3]) + 1;
        });
      }
    }
  }

  push(value: number): void {
    if (this.localLength === this.local.length) {
      const grown = new Float64Array(this.local.length * 2);
      grown.set(this.local);
      this.local = grown;
    }
    this.local[this.localLength++] = value;
  }

  stringId(text: string): number {
    let id = this.strings.get(text);
    if (id === undefined) {
      id = this.strings.size;
      this.strings.set(text, id);
    }
    return id;
  }
}

/** The transitions from a state: each runnable thread's step (picks found by `expandStep`), each interrupt. */
function interruptTransitions(node: StateNode, threadCount: number): Transition[] {
  const transitions: Transition[] = [];
  interruptNames.forEach((name, kind) => {
    if (node.interruptsLeft[kind] <= 0) return;
    for (let thread = 0; thread < threadCount; thread++)
      transitions.push({ thread, choices: [], interrupt: name });
  });
  return transitions;
}

function snapshotSize(snapshot: Snapshot): number {
  return snapshot.sections.byteLength + snapshot.js.bytes;
}

function pathOf(node: StateNode): Transition[] {
  const path: Transition[] = [];
  for (let at: StateNode | null = node; at !== null && at.transition !== null; at = at.parent)
    path.push(at.transition);
  return path.reverse();
}

function runnableOf(sim: SteppedSim): number[] {
  const runnable: number[] = [];
  for (let t = 0; t < sim.threads.length; t++) if (sim.runnable(t)) runnable.push(t);
  return runnable;
}

export async function explore(options: ExploreOptions): Promise<ExploreResult> {
  const { policy, bounds } = options;
  assert(bounds.exits >= 1 && bounds.maxDepth >= 1, 'bounds of at least one exit and one transition');
  const fuzzCase: FuzzCase = {
    ...options.fuzzCase,
    run: { ...options.fuzzCase.run, exits: bounds.exits, stopOnViolation: true, jitterCycles: 0 },
    choices: [],
  };
  delete fuzzCase.schedule;
  const { h64Raw } = await xxhash();
  const executor = new Executor(fuzzCase, policy);
  try {
    return search(executor, fuzzCase, options, h64Raw);
  } finally {
    executor.dispose();
  }
}

/** A group of transitions put to sleep (Godefroid's sleep sets): a thread's step (all its picks) or an interrupt at a thread. */
interface Sleeper {
  key: number;
  reads: number;
  writes: number;
}

/** What the visited set keeps per state: its sleep set (the groups its expansion skips), and whether it was expanded. */
interface Visit {
  sleep: readonly Sleeper[];
  expanded: boolean;
}

const noSleep: readonly Sleeper[] = [];

/** A group's key: thread index t's step, or interrupt kind k at t. */
function groupKey(t: number, interrupt: InterruptName | null): number {
  return interrupt === null ? t : (1 + interruptNames.indexOf(interrupt)) * 1024 + t;
}

function search(
  executor: Executor,
  fuzzCase: FuzzCase,
  options: ExploreOptions,
  hash64: Hash64,
): ExploreResult {
  const { bounds, policy, clockMs } = options;
  const startMs = clockMs?.() ?? 0;
  const readsKickAcks = policy.plantedBugs.waitFor === 'ack';
  const hasher = new StateHasher(executor.machine, hash64, readsKickAcks);
  const sim = executor.sim;
  const footprints = new Footprints(executor.machine, sim, executor.sections, executor.walker, readsKickAcks);
  const reduce = (options.reduction ?? 'sleep') === 'sleep' && footprints.fits;
  const visited = new Map<bigint, Visit>();
  let transitions = 0;
  let slept = 0;
  let depthLimited = 0;
  let depthReached = 0;
  let timeLimited = false;
  let statesLimited = false;
  let found: { node: StateNode; violation: Violation } | null = null;

  const initialLeft = interruptNames.map((name) => bounds.interrupts[name]);
  const initial = hasher.hash(executor, initialLeft);
  const root: StateNode = {
    parent: null,
    transition: null,
    depth: 0,
    runnable: runnableOf(sim),
    interruptsLeft: initialLeft,
    snapshot: initial.snapshot,
    hash: initial.hash,
    only: null,
    sleep: noSleep,
  };
  visited.set(initial.hash, { sleep: noSleep, expanded: false });
  let snapshotBytes = snapshotSize(initial.snapshot);
  let snapshotCount = 1;
  const threadCount = sim.threads.length;
  if (sim.monitor.records.length > 0) found = { node: root, violation: sim.monitor.records[0] };

  /**
   * Takes `transition` from `node` (restored first); returns the picks its choice points offered and
   * its footprint. `awake`: the node's sleep set and the groups it expanded before this one.
   */
  const take = (
    node: StateNode,
    transition: Transition,
    awake: readonly Sleeper[],
    queue: StateNode[],
  ): { widths: number[]; footprint: Footprint } => {
    transitions++;
    const before = node.snapshot as Snapshot;
    executor.restore(before);
    const waitsBefore = reduce ? footprints.waitsOf() : [];
    executor.draws.recorded.length = 0;
    executor.apply(sim, executor.draws, transition);
    const widths = executor.draws.widths;
    const interruptsLeft = [...node.interruptsLeft];
    if (transition.interrupt !== null) interruptsLeft[interruptNames.indexOf(transition.interrupt)]--;
    const stuck = sim.monitor.total === 0 && sim.exitsDone < bounds.exits && !sim.anyRunnable();
    if (stuck) sim.reportDeadlock();
    const footprint: Footprint = { reads: -1, writes: -1 };
    if (sim.monitor.records.length > 0 && found === null) {
      const child: StateNode = {
        parent: node,
        transition,
        depth: node.depth + 1,
        runnable: [],
        interruptsLeft,
        snapshot: null,
        hash: 0n,
        only: null,
        sleep: noSleep,
      };
      found = { node: child, violation: sim.monitor.records[0] };
      return { widths, footprint };
    }
    const { hash, snapshot } = hasher.hash(executor, interruptsLeft);
    let sleep = noSleep;
    if (reduce) {
      footprint.reads = footprints.reads(transition.thread, transition.interrupt);
      footprint.writes = footprints.writes(
        before,
        snapshot,
        waitsBefore,
        footprints.waitsOf(),
        transition.interrupt,
      );
      // A transition that ends the path (the exits bound) disables every other: dependent on all.
      if (sim.exitsDone >= bounds.exits) footprint.writes = -1;
      sleep = awake.filter((sleeper) => independent(sleeper, footprint));
    }
    const seen = visited.get(hash);
    const terminal = sim.exitsDone >= bounds.exits;
    const child = (only: Set<number> | null, childSleep: readonly Sleeper[]): StateNode => ({
      parent: node,
      transition,
      depth: node.depth + 1,
      runnable: runnableOf(sim),
      interruptsLeft,
      snapshot,
      hash,
      only,
      sleep: childSleep,
    });
    if (seen === undefined) {
      visited.set(hash, { sleep, expanded: false });
      if (!terminal) {
        snapshotBytes += snapshotSize(snapshot);
        snapshotCount++;
        queue.push(child(null, sleep));
      }
      return { widths, footprint };
    }
    // Seen before: what its sleep set skipped that this path's does not must be explored (a stateful
    // search with sleep sets keeps the intersection, Godefroid 1996 §5.3).
    if (terminal || seen.sleep.length === 0) return { widths, footprint };
    const keys = new Set(sleep.map((sleeper) => sleeper.key));
    const missing = seen.sleep.filter((sleeper) => !keys.has(sleeper.key));
    if (missing.length === 0) return { widths, footprint };
    const kept = seen.sleep.filter((sleeper) => keys.has(sleeper.key));
    seen.sleep = kept;
    // Not expanded yet: it reads its sleep set from here when it is. Expanded: again, for those only.
    if (seen.expanded) {
      snapshotBytes += snapshotSize(snapshot);
      snapshotCount++;
      queue.push(child(new Set(missing.map((sleeper) => sleeper.key)), sleep));
    }
    return { widths, footprint };
  };

  let queue: StateNode[] = found === null ? [root] : [];
  while (queue.length > 0 && found === null) {
    const next: StateNode[] = [];
    for (const node of queue) {
      if (found !== null) break;
      if (bounds.timeLimitMs !== null && clockMs !== undefined && clockMs() - startMs > bounds.timeLimitMs) {
        timeLimited = true;
        break;
      }
      if (bounds.maxStates != null && visited.size >= bounds.maxStates) {
        statesLimited = true;
        break;
      }
      if (node.depth >= bounds.maxDepth) {
        depthLimited++;
        continue;
      }
      depthReached = Math.max(depthReached, node.depth + 1);
      const visit = visited.get(node.hash) as Visit;
      // A first expansion skips the state's sleep set as the visited set has it now; a second one
      // (`only`) explores just the groups a later path's sleep set did not skip.
      const asleep = node.only === null ? visit.sleep : node.sleep;
      if (node.only === null) visit.expanded = true;
      const sleeping = new Set(asleep.map((sleeper) => sleeper.key));
      const awake: Sleeper[] = [...asleep];
      const groups: { t: number; interrupt: InterruptName | null }[] = node.runnable.map((t) => ({
        t,
        interrupt: null,
      }));
      for (const transition of interruptTransitions(node, threadCount))
        groups.push({ t: transition.thread, interrupt: transition.interrupt });
      for (const { t, interrupt } of groups) {
        if (found !== null) break;
        const key = groupKey(t, interrupt);
        if (sleeping.has(key) || (node.only !== null && !node.only.has(key))) {
          slept++;
          continue;
        }
        const group: Sleeper = { key, reads: 0, writes: 0 };
        const note = (footprint: Footprint) => {
          group.reads |= footprint.reads;
          group.writes |= footprint.writes;
        };
        if (interrupt !== null) {
          note(take(node, { thread: t, choices: [], interrupt }, awake, next).footprint);
        } else {
          // The step with every pick 0 first: it tells how many picks each of its choice points has.
          const pending: number[][] = [[]];
          while (pending.length > 0 && found === null) {
            const picks = pending.shift() as number[];
            const taken = take(node, { thread: t, choices: picks, interrupt: null }, awake, next);
            note(taken.footprint);
            for (let point = picks.length; point < taken.widths.length; point++) {
              for (let pick = 1; pick < taken.widths[point]; pick++) {
                const alternative = [...picks];
                while (alternative.length < point) alternative.push(0);
                alternative.push(pick);
                pending.push(alternative);
              }
            }
          }
        }
        if (reduce) awake.push(group);
      }
      node.snapshot = null;
    }
    if (timeLimited || statesLimited) break;
    queue = next;
  }
  const elapsedMs = clockMs === undefined ? null : clockMs() - startMs;
  const complete = found === null && depthLimited === 0 && !timeLimited && !statesLimited;
  return {
    policy: policy.name,
    bounds,
    reduction: reduce ? 'sleep' : 'none',
    states: visited.size,
    transitions,
    transitionsSlept: slept,
    violations: found === null ? 0 : 1,
    complete,
    depthLimited,
    timeLimited,
    statesLimited,
    depthReached,
    elapsedMs,
    statesPerSecond:
      elapsedMs === null || elapsedMs <= 0 ? null : Math.round((visited.size * 1000) / elapsedMs),
    stateBytes: hasher.bytes,
    snapshotBytesPerState: Math.round(snapshotBytes / Math.max(1, snapshotCount)),
    counterexample: found === null ? null : counterexampleOf(executor, fuzzCase, found),
  };
}

/** The path to a violation as the sim replays it, in words, and the sim's verdict on it. */
function counterexampleOf(
  executor: Executor,
  fuzzCase: FuzzCase,
  found: { node: StateNode; violation: Violation },
): Counterexample {
  const path = pathOf(found.node);
  const { sim, draws } = executor.execute([]);
  const steps: string[] = [];
  for (const transition of path) {
    const thread = sim.threads[transition.thread];
    if (transition.interrupt !== null) {
      executor.apply(sim, draws, transition);
      steps.push(`${transition.interrupt} arrives at ht${thread.thread}`);
      continue;
    }
    const phaseBefore = thread.phaseName;
    const modeBefore = thread.mode;
    const exitsBefore = sim.monitor.workloadExits;
    executor.apply(sim, draws, transition);
    const words: string[] = [];
    if (
      sim.monitor.workloadExits > exitsBefore ||
      (phaseBefore === 'guest' && thread.phaseName !== 'guest')
    ) {
      words.push(`exit ${thread.variant?.name ?? '?'}`);
    }
    if (thread.mode !== modeBefore) {
      words.push(`${modeNames[modeBefore]} -> ${modeNames[thread.mode]}`);
    }
    if (words.length === 0) words.push(`${phaseBefore} -> ${thread.phaseName}`);
    if (sim.blocked[transition.thread]) words.push('waits');
    steps.push(`ht${thread.thread}: ${words.join(', ')}`);
  }
  const schedule: ScheduleStep[] = path.map((transition) => {
    const id = sim.threads[transition.thread].thread;
    return transition.interrupt === null ? { thread: id } : { thread: id, interrupt: transition.interrupt };
  });
  const replayCase: FuzzCase = { ...fuzzCase, choices: [...draws.recorded], schedule };
  const { verdict } = runFuzzCase(replayCase, executor.policy);
  return {
    violation: found.violation,
    schedule,
    choices: replayCase.choices,
    steps,
    fuzzCase: replayCase,
    replay: verdict,
    replaySameInvariant: verdict.failure === found.violation.id,
  };
}
