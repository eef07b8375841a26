import { assert } from '../assert.js';
import { holdsSecrets, Mode } from '../cpu/modes.js';
import { isBusy, speedPerThread } from '../cpu/smt-speed.js';

/**
 * Each core's hyperthreads over virtual time (issue 19, items 2 and 4): which mode each is in and
 * whether it runs a guest stretch, swept in time order, to measure what depends on the siblings at
 * the same instant of virtual time:
 *
 * - guest work: guest progress weighted by SMT speed. While k of a core's threads are busy (running
 *   guest or host code: modes guest, isolated, full, vmm), each advances at `speedPerThread(k)` of a
 *   lone thread's speed (DESIGN.md "SMT siblings share a core");
 * - exposure: the overlap of the intervals in which a thread runs guest code (its stretches; not the
 *   VM entry path, which the guest mode also covers) with any
 *   sibling's secret-holding intervals (full, vmm), in cycles (DESIGN.md "Exposure is time"), and the
 *   start of each such overlap, which the monitor counts as an INV-1 violation.
 *
 * Why a sweep: the sim steps the thread with the lowest clock, but a step moves its clock by what the
 * step spends, so mode changes reach this module out of time order (a sibling's switch at t=30,925
 * can be processed before a guest event at t=30,800), and a thread parked in a guest stretch reports
 * its end only when it wakes. The backend says how far virtual time is settled (`frontierCycles`: no
 * event still to come is earlier, as every step starts at the lowest clock or deadline); events wait
 * in a small per-core queue, sorted by time, until the frontier passes them, and the sweep integrates
 * between them. The workers backend has no global order of time and keeps no timeline.
 */

/** Events one core may hold ahead of the frontier: those of one step or a few (a handful each). */
const queuedEventsMax = 256;

/** A mode change, a guest stretch's beginning, its end. */
const EventKind = { mode: 0, begin: 1, end: 2 } as const;

/** What the monitor does with the start of an overlap (INV-1): `guestThread` beside `secretThread`. */
export type OverlapStart = (
  guestThread: number,
  secretThread: number,
  secretMode: number,
  timeCycles: number,
  step: number,
) => void;

export class CoreTimelines {
  /** Virtual time settled: no event still to come is earlier (the sim sets it at every step). */
  frontierCycles = 0;
  /** Per thread: guest progress in lone-thread cycles (stretch time x speed). */
  readonly guestWorkCycles: Float64Array;
  /** Per thread: guest-code cycles overlapping a sibling holding secrets. */
  readonly exposureCycles: Float64Array;
  /** Overlaps that began (one per guest thread and episode, however many siblings hold secrets). */
  exposedIntervals = 0;

  private readonly smt: number;
  private readonly speedByBusy: Float64Array;
  private readonly onOverlapStart: OverlapStart;
  /** Per thread: its mode, and 1 while it runs a guest stretch, as far as the sweep has reached. */
  private readonly modes: Uint8Array;
  private readonly running: Uint8Array;
  /** Per thread and sibling (thread x smt + sibling): 1 while their overlap lasts (counted once). */
  private readonly overlapping: Uint8Array;
  /** Per thread: 1 while it overlaps any sibling (for `exposedIntervals`). */
  private readonly exposed: Uint8Array;
  /** Per core: where its sweep stands. */
  private readonly positionCycles: Float64Array;
  /**
   * Per core, a queue sorted by time (time, thread, kind, value, step, share) in that core's
   * `queuedEventsMax` slots: `queued` events from slot `head` on. A sweep moves `head` past what it
   * applied; the events are moved back to the core's first slot only when the queue reaches its end.
   */
  private readonly queueTimes: Float64Array;
  private readonly queueThreads: Int32Array;
  private readonly queueKinds: Uint8Array;
  private readonly queueValues: Uint8Array;
  private readonly queueSteps: Float64Array;
  private readonly queueShares: Float64Array;
  private readonly queued: Int32Array;
  private readonly head: Int32Array;
  /** Per thread: its work when its open stretch began (its end weighs what the stretch added). */
  private readonly workAtRunStart: Float64Array;
  /** The step of the event the sweep applied last on each core (for the INV-1 record). */
  private readonly lastStep: Float64Array;

  constructor(cores: number, smt: number, smtSpeedup: number, onOverlapStart: OverlapStart) {
    assert(cores >= 1 && smt >= 1, 'a timeline of at least one hyperthread');
    const threads = cores * smt;
    this.smt = smt;
    this.onOverlapStart = onOverlapStart;
    this.speedByBusy = new Float64Array(smt + 1);
    for (let busy = 0; busy <= smt; busy++) this.speedByBusy[busy] = speedPerThread(busy, smt, smtSpeedup);
    this.guestWorkCycles = new Float64Array(threads);
    this.exposureCycles = new Float64Array(threads);
    this.modes = new Uint8Array(threads);
    this.running = new Uint8Array(threads);
    this.overlapping = new Uint8Array(threads * smt);
    this.exposed = new Uint8Array(threads);
    this.positionCycles = new Float64Array(cores);
    this.queueTimes = new Float64Array(cores * queuedEventsMax);
    this.queueThreads = new Int32Array(cores * queuedEventsMax);
    this.queueKinds = new Uint8Array(cores * queuedEventsMax);
    this.queueValues = new Uint8Array(cores * queuedEventsMax);
    this.queueSteps = new Float64Array(cores * queuedEventsMax);
    this.queueShares = new Float64Array(cores * queuedEventsMax);
    this.workAtRunStart = new Float64Array(threads);
    this.queued = new Int32Array(cores);
    this.head = new Int32Array(cores);
    this.lastStep = new Float64Array(cores);
  }

  /** `thread` changed to `mode` at `timeCycles` (its step count `step`). */
  mode(thread: number, mode: number, timeCycles: number, step: number): void {
    this.push(thread, EventKind.mode, mode, timeCycles, step);
  }

  /** `thread` begins a guest stretch (guest code, its memory accesses first) at `timeCycles`. */
  beginRun(thread: number, timeCycles: number, step: number): void {
    this.push(thread, EventKind.begin, 0, timeCycles, step);
  }

  /**
   * `thread`'s guest stretch ends at `timeCycles`; `progressShare` of it was progress (the rest, the
   * stalls of its accesses, spread over it), so its work counts that share.
   */
  endRun(thread: number, progressShare: number, timeCycles: number, step: number): void {
    this.push(thread, EventKind.end, 0, timeCycles, step, progressShare);
  }

  /** The end of the run: every queued event applied, every core swept to `endCycles`. */
  finish(endCycles: number): void {
    this.frontierCycles = Number.POSITIVE_INFINITY;
    for (let core = 0; core < this.queued.length; core++) {
      this.sweep(core, Number.POSITIVE_INFINITY);
      this.advance(core, endCycles);
    }
  }

  private push(
    thread: number,
    kind: number,
    value: number,
    timeCycles: number,
    step: number,
    share = 1,
  ): void {
    const core = Math.floor(thread / this.smt);
    assert(
      this.queued[core] < queuedEventsMax,
      `core ${core}: ${queuedEventsMax} events ahead of settled time`,
    );
    if (this.head[core] + this.queued[core] === queuedEventsMax) this.compact(core);
    const base = core * queuedEventsMax + this.head[core];
    let at = this.queued[core];
    // Insert in time order (after events of the same time: they happened first).
    while (at > 0 && this.queueTimes[base + at - 1] > timeCycles) {
      this.queueTimes[base + at] = this.queueTimes[base + at - 1];
      this.queueThreads[base + at] = this.queueThreads[base + at - 1];
      this.queueKinds[base + at] = this.queueKinds[base + at - 1];
      this.queueValues[base + at] = this.queueValues[base + at - 1];
      this.queueSteps[base + at] = this.queueSteps[base + at - 1];
      this.queueShares[base + at] = this.queueShares[base + at - 1];
      at--;
    }
    this.queueTimes[base + at] = timeCycles;
    this.queueThreads[base + at] = thread;
    this.queueKinds[base + at] = kind;
    this.queueValues[base + at] = value;
    this.queueSteps[base + at] = step;
    this.queueShares[base + at] = share;
    this.queued[core]++;
    this.sweep(core, this.frontierCycles);
  }

  /** Applies core `core`'s queued events up to `untilCycles`, integrating between them. */
  private sweep(core: number, untilCycles: number): void {
    const base = core * queuedEventsMax + this.head[core];
    let taken = 0;
    const count = this.queued[core];
    while (taken < count && this.queueTimes[base + taken] <= untilCycles) {
      const i = base + taken;
      this.advance(core, this.queueTimes[i]);
      const thread = this.queueThreads[i];
      const kind = this.queueKinds[i];
      if (kind === EventKind.mode) {
        this.modes[thread] = this.queueValues[i];
      } else if (kind === EventKind.begin) {
        this.running[thread] = 1;
        this.workAtRunStart[thread] = this.guestWorkCycles[thread];
      } else {
        this.running[thread] = 0;
        const start = this.workAtRunStart[thread];
        this.guestWorkCycles[thread] = start + (this.guestWorkCycles[thread] - start) * this.queueShares[i];
      }
      this.lastStep[core] = this.queueSteps[i];
      taken++;
    }
    this.queued[core] = count - taken;
    this.head[core] = count === taken ? 0 : this.head[core] + taken;
  }

  /** Moves core `core`'s queued events back to its first slot (its queue reached the end of its slots). */
  private compact(core: number): void {
    const base = core * queuedEventsMax;
    const from = base + this.head[core];
    const end = from + this.queued[core];
    this.queueTimes.copyWithin(base, from, end);
    this.queueThreads.copyWithin(base, from, end);
    this.queueKinds.copyWithin(base, from, end);
    this.queueValues.copyWithin(base, from, end);
    this.queueSteps.copyWithin(base, from, end);
    this.queueShares.copyWithin(base, from, end);
    this.head[core] = 0;
  }

  /** Integrates core `core`'s state, unchanged, from where its sweep stands to `toCycles`. */
  private advance(core: number, toCycles: number): void {
    const from = this.positionCycles[core];
    if (!(toCycles > from)) return;
    const cycles = toCycles - from;
    this.positionCycles[core] = toCycles;
    const smt = this.smt;
    const first = core * smt;
    let busy = 0;
    for (let sibling = 0; sibling < smt; sibling++) if (isBusy(this.modes[first + sibling])) busy++;
    const speed = this.speedByBusy[busy];
    for (let sibling = 0; sibling < smt; sibling++) {
      const thread = first + sibling;
      if (this.running[thread]) this.guestWorkCycles[thread] += cycles * speed;
      // Guest code runs in a stretch: the entry path, in guest mode already, runs none.
      if (!this.running[thread] || this.modes[thread] !== Mode.guest) {
        // A pair overlaps only while its thread is exposed: nothing to clear otherwise.
        if (this.exposed[thread] === 1) {
          this.exposed[thread] = 0;
          for (let pair = thread * smt; pair < (thread + 1) * smt; pair++) this.overlapping[pair] = 0;
        }
        continue;
      }
      let overlaps = false;
      for (let other = 0; other < smt; other++) {
        const pair = thread * smt + other;
        if (other === sibling || !holdsSecrets(this.modes[first + other])) {
          this.overlapping[pair] = 0;
          continue;
        }
        overlaps = true;
        if (this.overlapping[pair] === 0) {
          this.overlapping[pair] = 1;
          this.onOverlapStart(thread, first + other, this.modes[first + other], from, this.lastStep[core]);
        }
      }
      if (!overlaps) {
        this.exposed[thread] = 0;
        continue;
      }
      this.exposureCycles[thread] += cycles;
      if (this.exposed[thread] === 0) {
        this.exposed[thread] = 1;
        this.exposedIntervals++;
      }
    }
  }
}
