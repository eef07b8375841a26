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
import { modeNames } from '../cpu/modes.js';
import { type CaseVerdict, type FuzzCase, runConfigOf, runFuzzCase } from '../fuzz/fuzz-case.js';
import type { Violation } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import { domainCount } from '../memory/domains.js';
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
 * State and dedup: stateless re-execution (as CHESS and loom do): a state is reached again by replaying
 * its path from the initial state (machine reset, fresh hyperthreads), never restored from a copy. Why:
 * a hyperthread's state is spread over itself, its kicker, its guest workload, its Linux ASI state
 * machine and the monitor, whose fields are private and change with the model; a copy that missed one
 * would be silently wrong, a replay cannot be. The cost is a replay of the path per transition (depth
 * x steps). A state's identity is an xxh64 of its serialisation (`StateHasher`): the machine's dynamic
 * sections (core words, L1Ds and fill buffers, TLBs, mailboxes, thread records and statistics, the RMP),
 * then every hyperthread's own fields (phase, mode, clock, flags, wait), its kicker's and its guest
 * workload's, its Linux ASI state and the core's branch predictor, the scheduler's waits, the monitor's
 * counts and the interrupts left. Virtual clocks are part of it: two orders of independent steps give
 * the same clocks, so commuting steps still meet in one state.
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
}

export interface ExploreOptions {
  policy: Policy;
  /** The machine, workload and run as a fuzz case (explore-case.ts); `run.exits` is set from the bounds. */
  fuzzCase: FuzzCase;
  bounds: ExploreBounds;
  /** Wall clock in ms (the CLI's performance.now): the time limit and states per second. */
  clockMs?: () => number;
}

/** One transition: thread `thread` (index in run order) steps with `choices`, or an interrupt lands. */
interface Transition {
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
  /** Distinct states reached (the visited set's size). */
  states: number;
  /** Transitions taken (each a step or an interrupt from a state). */
  transitions: number;
  /** Violations found: the search stops at the first (the shortest), so 0 or 1. */
  violations: number;
  /** Every state within the bound was expanded: no violation, no depth or time limit reached. */
  complete: boolean;
  /** States not expanded because they were `maxDepth` deep. */
  depthLimited: number;
  timeLimited: boolean;
  /** Longest path expanded. */
  depthReached: number;
  elapsedMs: number | null;
  statesPerSecond: number | null;
  /** Bytes hashed per state (the serialisation's size). */
  stateBytes: number;
  counterexample: Counterexample | null;
}

/** The u32 draw of every fixed draw: 0.5. */
const fixedDrawU32 = 2 ** 31;
const twoTo32 = 2 ** 32;

/**
 * Draws of one execution: fixed ones, and the choice points' picks (`planned`, per step), each recorded
 * as the u32 the sim replays. `widths` tells the explorer how many picks each choice point had.
 */
class ExploreDraws implements StepDraws {
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

/** The explorer's machine and the executions of paths on it (stateless: each from the initial state). */
class Executor {
  readonly machine: Machine;
  readonly config: RunConfig;
  private readonly restorePredictors: (() => void)[] = [];

  constructor(
    fuzzCase: FuzzCase,
    readonly policy: Policy,
  ) {
    this.machine = createSimMachine(runConfigOf(fuzzCase).machine);
    this.config = withExitInterval(runConfigOf(fuzzCase), this.machine);
    this.machine.resetDynamicState();
    // Today's ASI keeps each core's branch predictor per machine, outside the buffer
    // (cpu/linux-asi-cpu.ts): kept as the first threads found it, and put back before every execution.
    const probe = new SteppedSim(this.machine, this.config, policy, new ExploreDraws());
    const predictors = new Set<object>();
    for (const thread of probe.threads) if (thread.linuxAsi) predictors.add(thread.linuxAsi.predictor);
    for (const predictor of predictors) this.restorePredictors.push(fieldsSnapshot(predictor));
  }

  /** The state at the end of `path`, with the draws it made. */
  execute(path: readonly Transition[]): { sim: SteppedSim; draws: ExploreDraws; last: number[] } {
    this.machine.resetDynamicState();
    for (const restore of this.restorePredictors) restore();
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
 * An object's own numbers, booleans and typed arrays, to put back later (a state the machine buffer
 * does not hold, such as a branch predictor's tables).
 */
function fieldsSnapshot(target: object): () => void {
  const record = target as Record<string, unknown>;
  const saved: [string, unknown][] = [];
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (ArrayBuffer.isView(value)) saved.push([key, (value as Uint8Array).slice()]);
    else if (typeof value === 'number' || typeof value === 'boolean') saved.push([key, value]);
  }
  return () => {
    for (const [key, value] of saved) {
      if (ArrayBuffer.isView(value)) (record[key] as Uint8Array).set(value as Uint8Array);
      else record[key] = value;
    }
  };
}

/** Counters that only count (statistics): left out of a state, with every `...Cycles` field. */
const untimedCounters = new Set(['steps', 'guestSteps', 'stretchProgressShare', 'rekicks']);

/** The state's serialisation and its hash (see the module comment for what it holds). */
class StateHasher {
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

  constructor(
    machine: Machine,
    private readonly hash64: Hash64,
  ) {
    const { cores, rmp, threads } = machine.layout.sections;
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
    this.sections = (confidential ? [cores, rmp, threads] : [cores, threads]).map(
      (section) => new Uint8Array(machine.i32.buffer, base + section.offsetI32 * 4, section.lengthI32 * 4),
    );
  }

  hash(sim: SteppedSim, interruptsLeft: readonly number[]): bigint {
    this.localLength = 0;
    for (let t = 0; t < sim.threads.length; t++) {
      const thread = sim.threads[t] as unknown as Record<string, unknown>;
      this.fields(thread);
      this.fields(thread.guest as object);
      this.fields(thread.kicker as object);
      const asi = sim.threads[t].linuxAsi;
      if (asi !== null) {
        this.fields(asi);
        this.push(this.stringId(JSON.stringify(asi.state)));
        this.typedArrays(asi.predictor);
      }
      this.push(sim.blocked[t]);
      this.push(sim.waitIndex[t]);
      this.push(sim.waitValue[t]);
      this.push(sim.deadline[t] === Number.POSITIVE_INFINITY ? 0 : 1);
    }
    this.push(sim.monitor.total);
    this.push(sim.monitor.workloadExits);
    for (const left of interruptsLeft) this.push(left);
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

  private push(value: number): void {
    if (this.localLength === this.local.length) {
      const grown = new Float64Array(this.local.length * 2);
      grown.set(this.local);
      this.local = grown;
    }
    this.local[this.localLength++] = value;
  }

  private stringId(text: string): number {
    let id = this.strings.get(text);
    if (id === undefined) {
      id = this.strings.size;
      this.strings.set(text, id);
    }
    return id;
  }

  /**
   * An object's own fields, in their (constructor-defined, hence stable) order: numbers, booleans,
   * strings, null, arrays of numbers, plain objects (as JSON) and compiled variants (by name). Other
   * objects are the shared model (machine, policy, caches: in the buffer or constant): left out.
   */
  private fields(target: object): void {
    const record = target as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (key.endsWith('Cycles') || untimedCounters.has(key)) continue;
      const value = record[key];
      switch (typeof value) {
        case 'number':
          this.push(value);
          break;
        case 'boolean':
          this.push(value ? 1 : 0);
          break;
        case 'string':
          this.push(this.stringId(value));
          break;
        case 'object':
          if (value === null) this.push(-1);
          else if (Array.isArray(value)) {
            this.push(value.length);
            for (const item of value) if (typeof item === 'number') this.push(item);
          } else if (Object.getPrototypeOf(value) === Object.prototype) {
            const named = value as { name?: unknown; slot?: unknown };
            // A compiled variant (plain data, large): its name says which.
            if (typeof named.name === 'string' && typeof named.slot === 'number')
              this.push(this.stringId(named.name));
            else this.push(this.stringId(JSON.stringify(value)));
          }
          break;
      }
    }
  }

  private typedArrays(target: object): void {
    const record = target as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const value = record[key];
      if (ArrayBuffer.isView(value)) for (const item of value as Float64Array) this.push(item);
      else if (typeof value === 'number') this.push(value);
    }
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

function search(
  executor: Executor,
  fuzzCase: FuzzCase,
  options: ExploreOptions,
  hash64: Hash64,
): ExploreResult {
  const { bounds, policy, clockMs } = options;
  const startMs = clockMs?.() ?? 0;
  const hasher = new StateHasher(executor.machine, hash64);
  const visited = new Set<bigint>();
  let transitions = 0;
  let depthLimited = 0;
  let depthReached = 0;
  let timeLimited = false;
  let found: { node: StateNode; violation: Violation } | null = null;

  const initial = executor.execute([]);
  const initialLeft = interruptNames.map((name) => bounds.interrupts[name]);
  const root: StateNode = {
    parent: null,
    transition: null,
    depth: 0,
    runnable: runnableOf(initial.sim),
    interruptsLeft: initialLeft,
  };
  visited.add(hasher.hash(initial.sim, initialLeft));
  const threadCount = initial.sim.threads.length;
  if (initial.sim.monitor.records.length > 0)
    found = { node: root, violation: initial.sim.monitor.records[0] };

  /** Takes `transition` from `node`; returns the picks the step's choice points offered. */
  const take = (
    node: StateNode,
    path: Transition[],
    transition: Transition,
    queue: StateNode[],
  ): number[] => {
    transitions++;
    const childPath = [...path, transition];
    const { sim, last } = executor.execute(childPath);
    const interruptsLeft = [...node.interruptsLeft];
    if (transition.interrupt !== null) interruptsLeft[interruptNames.indexOf(transition.interrupt)]--;
    const stuck = sim.monitor.total === 0 && sim.exitsDone < bounds.exits && !sim.anyRunnable();
    if (stuck) sim.reportDeadlock();
    const child: StateNode = {
      parent: node,
      transition,
      depth: node.depth + 1,
      runnable: runnableOf(sim),
      interruptsLeft,
    };
    if (sim.monitor.records.length > 0 && found === null) {
      found = { node: child, violation: sim.monitor.records[0] };
      return last;
    }
    const hash = hasher.hash(sim, interruptsLeft);
    if (visited.has(hash)) return last;
    visited.add(hash);
    if (sim.exitsDone < bounds.exits) queue.push(child);
    return last;
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
      if (node.depth >= bounds.maxDepth) {
        depthLimited++;
        continue;
      }
      depthReached = Math.max(depthReached, node.depth + 1);
      const path = pathOf(node);
      for (const thread of node.runnable) {
        // The step with every pick 0 first: it tells how many picks each of its choice points has.
        const pending: number[][] = [[]];
        while (pending.length > 0 && found === null) {
          const picks = pending.shift() as number[];
          const widths = take(node, path, { thread, choices: picks, interrupt: null }, next);
          for (let point = picks.length; point < widths.length; point++) {
            for (let pick = 1; pick < widths[point]; pick++) {
              const alternative = [...picks];
              while (alternative.length < point) alternative.push(0);
              alternative.push(pick);
              pending.push(alternative);
            }
          }
        }
      }
      for (const transition of interruptTransitions(node, threadCount)) {
        if (found !== null) break;
        take(node, path, transition, next);
      }
    }
    if (timeLimited) break;
    queue = next;
  }
  const elapsedMs = clockMs === undefined ? null : clockMs() - startMs;
  const complete = found === null && depthLimited === 0 && !timeLimited;
  return {
    policy: policy.name,
    bounds,
    states: visited.size,
    transitions,
    violations: found === null ? 0 : 1,
    complete,
    depthLimited,
    timeLimited,
    depthReached,
    elapsedMs,
    statesPerSecond:
      elapsedMs === null || elapsedMs <= 0 ? null : Math.round((visited.size * 1000) / elapsedMs),
    stateBytes: hasher.bytes,
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
