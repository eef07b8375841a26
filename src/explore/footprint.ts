import type { InterruptName } from '../backend/sim/stepped-sim.js';
import { interruptNames, type SteppedSim } from '../backend/sim/stepped-sim.js';
import type { Machine } from '../machine.js';
import { CoreField, ThreadField } from '../memory/layout.js';
import type { MachineSections } from './machine-sections.js';
import type { Capture, StateWalker } from './state-walker.js';

/**
 * What a transition reads and writes, as a set of resources (a bit mask), for the partial-order
 * reduction (issue 23 item 4; docs/explore.md "Partial-order reduction" has the argument).
 *
 * Resources: each core's record (its state word, L1D and fill buffers, and its branch predictor's
 * record under today's ASI), each running thread's record (CR3, TLB and its generations), its mailbox
 * word, its kick-acknowledgement word, its private state (every JS-side object of the abstract state
 * that its hyperthread reaches: itself, its guest workload, kicker, Linux ASI state machine; and its
 * wait in the scheduler), the RMP, each kind of interrupt's count, and OTHER (any word no other resource
 * names: every transition reads it, so a write there conflicts with everything).
 *
 * Writes are measured: the words whose value differs between the state before and after (the two
 * snapshots, dynamic sections), and the abstract JS-side objects whose record differs. Statistics and
 * clocks (threadStats, TLB counters, a core's flush counter, `...Cycles`) are not resources: the hash leaves them out, and two
 * states that differ only there are one state. Reads are not measured: a step of thread t is taken to
 * read its core's record, its own record and private state, every mailbox and acknowledgement word, the
 * RMP, OTHER and immutable data (frames, page tables, config). That is the claim the reduction rests
 * on; test/explore/por.test.ts checks its consequence on many states: two transitions it calls
 * independent reach the same state in either order, each still enabled after the other.
 */
export interface Footprint {
  reads: number;
  writes: number;
}

/**
 * Two transitions (of different threads, or an interrupt) commute when neither writes what the other
 * reads or writes: either order then reaches the same state, and neither enables or disables the other
 * (a thread's wait is its private state, which only it reads).
 */
export function independent(a: Footprint, b: Footprint): boolean {
  return (a.writes & (b.reads | b.writes)) === 0 && (b.writes & a.reads) === 0;
}

/** Most resources a mask holds (a 32-bit integer). */
export const resourcesMax = 32;

const other = 0;
/** Resource 1 + k: the count of interrupt kind k (interruptNames order). */
const interruptBase = 1;
const rmp = interruptBase + interruptNames.length;
const coreBase = rmp + 1;

export class Footprints {
  /** Per dynamic section, per word: its resource bit (0: none, left out as a statistic). */
  private readonly bitOf: Uint32Array[];
  private readonly threadBase: number;
  /** Per running thread index: the bits its step reads. */
  private readonly stepReads: number[];
  /** Per object of the abstract state: the private-state bits of the threads that reach it. */
  private owners = new WeakMap<object, number>();
  readonly resources: number;

  constructor(
    machine: Machine,
    private readonly sim: SteppedSim,
    sections: MachineSections,
    private readonly walker: StateWalker,
    readsKickAcks: boolean,
  ) {
    const { layout } = machine;
    const cores = machine.config.cores;
    this.threadBase = coreBase + cores;
    const threads = sim.threads.length;
    this.resources = this.threadBase + 4 * threads;
    const indexOfId = new Map(sim.threads.map((thread, t) => [thread.thread, t]));
    this.bitOf = sections.names.map((name, s) => {
      const bits = new Uint32Array(sections.length(s));
      if (!this.fits) return bits;
      for (let i = 0; i < bits.length; i++) {
        if (name === 'cores')
          bits[i] =
            i % layout.coreStrideI32s === CoreField.flushCount
              ? 0
              : bit(coreBase + Math.floor(i / layout.coreStrideI32s));
        else if (name === 'rmp') bits[i] = bit(rmp);
        // A core's branch predictor: its siblings' steps read it, as they read the core's record.
        else if (name === 'predictors') bits[i] = bit(coreBase + Math.floor(i / layout.predictorStrideI32s));
        else if (name === 'threads') {
          const t = indexOfId.get(Math.floor(i / layout.threadStrideI32s));
          const field = i % layout.threadStrideI32s;
          if (
            field === ThreadField.tlbHits ||
            field === ThreadField.tlbMisses ||
            field === ThreadField.tlbFlushes
          )
            bits[i] = 0;
          else if (t === undefined) bits[i] = bit(other);
          else if (field === ThreadField.mailbox) bits[i] = bit(this.mailbox(t));
          else if (field === ThreadField.kickAcks) bits[i] = readsKickAcks ? bit(this.acks(t)) : 0;
          else bits[i] = bit(this.record(t));
        }
        // threadStats: statistics and clocks (not in the hash).
      }
      return bits;
    });
    let shared = bit(other) | bit(rmp);
    for (let t = 0; t < threads; t++) shared |= bit(this.mailbox(t)) | bit(this.acks(t));
    this.stepReads = sim.threads.map(
      (thread, t) => shared | bit(coreBase + thread.core) | bit(this.record(t)) | bit(this.private(t)),
    );
    this.learnOwners();
  }

  /** Whether every resource has a bit (else the reduction is off: `explore` says so). */
  get fits(): boolean {
    return this.resources <= resourcesMax;
  }

  /** What a step of thread `t` reads (the claim above), or an interrupt `name` arriving at `t`. */
  reads(t: number, interrupt: InterruptName | null): number {
    if (interrupt === null) return this.stepReads[t];
    return (
      bit(other) |
      bit(interruptBase + interruptNames.indexOf(interrupt)) |
      bit(this.mailbox(t)) |
      bit(this.private(t))
    );
  }

  /**
   * What the transition from `before` to `after` wrote: the resources of the dynamic words that
   * changed, the private state of every thread that reaches a JS-side object that changed, a thread's
   * wait (`waitsBefore`, `waitsAfter`: `waitsOf`), and an interrupt's count.
   */
  writes(
    before: { sections: Int32Array; js: Capture },
    after: { sections: Int32Array; js: Capture },
    waitsBefore: readonly number[],
    waitsAfter: readonly number[],
    interrupt: InterruptName | null,
  ): number {
    let mask = interrupt === null ? 0 : bit(interruptBase + interruptNames.indexOf(interrupt));
    mask |= this.sectionWrites(before.sections, after.sections);
    for (let t = 0; t < waitsBefore.length; t++)
      if (waitsBefore[t] !== waitsAfter[t]) mask |= bit(this.private(t));
    mask |= this.objectWrites(before.js, after.js);
    return mask;
  }

  /** Each thread's wait as one number: blocked, on which word and value, with a deadline or not. */
  waitsOf(): number[] {
    const { blocked, waitIndex, waitValue, deadline } = this.sim;
    return this.sim.threads.map((_, t) =>
      blocked[t] === 0
        ? -1
        : (waitIndex[t] * 2 + (deadline[t] === Number.POSITIVE_INFINITY ? 0 : 1)) * 4294967296 +
          (waitValue[t] >>> 0),
    );
  }

  private record(t: number): number {
    return this.threadBase + 4 * t;
  }
  private mailbox(t: number): number {
    return this.threadBase + 4 * t + 1;
  }
  private acks(t: number): number {
    return this.threadBase + 4 * t + 2;
  }
  private private(t: number): number {
    return this.threadBase + 4 * t + 3;
  }

  /** Both captures list (section, index, value) triples in order: a merge finds the words that changed. */
  private sectionWrites(a: Int32Array, b: Int32Array): number {
    let mask = 0;
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const keyA = i < a.length ? a[i] * 2 ** 26 + a[i + 1] : Number.POSITIVE_INFINITY;
      const keyB = j < b.length ? b[j] * 2 ** 26 + b[j + 1] : Number.POSITIVE_INFINITY;
      if (keyA === keyB) {
        if (a[i + 2] !== b[j + 2]) mask |= this.bitOf[a[i]][a[i + 1]];
        i += 3;
        j += 3;
      } else if (keyA < keyB) {
        mask |= this.bitOf[a[i]][a[i + 1]];
        i += 3;
      } else {
        mask |= this.bitOf[b[j]][b[j + 1]];
        j += 3;
      }
    }
    return mask;
  }

  private objectWrites(a: Capture, b: Capture): number {
    let mask = 0;
    for (const object of a.objects) {
      if (!this.walker.sameIn(object, a, b)) mask |= this.ownersOf(object);
    }
    for (const object of b.objects) {
      if (!this.walker.sameIn(object, a, b)) mask |= this.ownersOf(object);
    }
    return mask;
  }

  /** The threads that reach `object` in the abstract state; an object first seen now: learnt again. */
  private ownersOf(object: object): number {
    let owners = this.owners.get(object);
    if (owners === undefined) {
      this.learnOwners();
      owners = this.owners.get(object);
      // Not reached from any thread's abstract state (the monitor, the log, statistics): no resource.
      if (owners === undefined) {
        this.owners.set(object, 0);
        return 0;
      }
    }
    return owners;
  }

  private learnOwners(): void {
    this.sim.threads.forEach((thread, t) => {
      for (const object of this.walker.abstractReach(thread))
        this.owners.set(object, (this.owners.get(object) ?? 0) | bit(this.private(t)));
    });
  }
}

function bit(resource: number): number {
  return (1 << resource) >>> 0;
}
