import { performance } from 'node:perf_hooks';
import { clockOverheadNs, type RoundTripBatch } from '../src/backend/workers/ping-pong.js';
import { Mode, modeOf, withMode } from '../src/cpu/modes.js';

/**
 * Where the time goes between the raw spin ping-pong and the sibling kick (issue 21, item 2): the same
 * two workers and the same shared buffer, with one item of the kick protocol added at each level.
 *
 * - `raw`: A stores a sequence number, B spins on it and stores it back (two line transfers).
 * - `mailbox`: A sets the kick bit with `Atomics.or` on B's mailbox word; B polls the mailbox between
 *   its "guest steps" (an empty loop), takes the bit with `Atomics.and`, stores its mode into the core
 *   word, bumps its acknowledgement count, and stores itself back into the guest. A waits, spinning,
 *   until B's nibble of the core word leaves `guest` or its acknowledgements move (as KickDriver does).
 * - `casMode`: B's two mode changes are compare-exchanges of the core word (load, `withMode`, CAS,
 *   retried), as `Hyperthread.casMode` does, in place of plain stores.
 * - `notify`: B notifies after each CAS and after the acknowledgement, A after its send, each through
 *   the sleeper count (load it, `Atomics.notify` only when someone sleeps: waiter.ts `Sleepers`); A's
 *   send also stores the kick's send time (a Float64 word), and A waits as KickDriver does (read the
 *   mailbox for a re-kick, then the word, then `Waiter.waitWhile`: spin, then block).
 * - the kick itself (kick-bench.ts `KickDriver` against a real hyperthread worker of a `workers` run):
 *   adds the step dispatch: B runs `Hyperthread.step()` (its phase switch, the guest stretch, the
 *   monitor-free counters, `publishCounters`) between mailbox polls, and its exit goes through the
 *   state machine (the exit's bookkeeping, the TLB switch, the handler's entry) before its CAS.
 *
 * A trip is timed in A from the send to B's exit being seen; B's return into the guest happens between
 * trips, untimed, as in the kick benchmark. Every level's trips are timed one by one (performance.now
 * around each, net of the clock's own cost), so the figures are p50s of the same kind as the kick's.
 */
export const breakdownLevels = ['raw', 'mailbox', 'casMode', 'notify'] as const;
export type BreakdownLevel = (typeof breakdownLevels)[number];

/** Int32 word indices, each on a 64-byte line of its own. */
export const BreakdownWord = {
  /** raw: A's sequence. Otherwise B's mailbox. */
  mailbox: 0,
  /** raw: B's echo. Otherwise the core word (A's and B's mode nibbles). */
  core: 16,
  acks: 32,
  /** The sleeper count of the core (Sleepers' count for the mailbox, core and acknowledgement words). */
  sleepers: 48,
  /** Float64 index of the kick's send time (`ThreadStat.kickSentAtCycles`). */
  kickSentF64: 64 / 2,
  i32s: 80,
} as const;

const kickBit = 1;
/** In the mailbox (or raw's sequence word as -1): B returns. */
const stopBit = 1 << 30;
const rawStop = -1;
/** A is sibling 0, B sibling 1 of the one core. */
const siblingA = 0;
const siblingB = 1;
/** Polls with nothing to do before an idle B blocks for `idleBlockMs` (between batches, other levels). */
const idleSpins = 2_000_000;
const idleBlockMs = 1;
/** A's spin checks before it blocks (`workersLimits.spinChecksFitting`-like: far past a trip). */
const driverSpinChecks = 100_000;
const driverWaitTimeoutMs = 5;
/** A trip slower than this means B died. */
const tripTimeoutMs = 10_000;

function initialCoreWord(): number {
  return withMode(withMode(0, siblingA, Mode.isolated), siblingB, Mode.guest);
}

/** Sleepers.notify: wake waiters of word `index` unless the sleeper count says none sleeps. */
function notifyIfSleeping(i32: Int32Array, index: number): void {
  if (Atomics.load(i32, BreakdownWord.sleepers) !== 0) Atomics.notify(i32, index);
}

/** B's mode change: a store (`mailbox` level) or the CAS loop of `casMode` (+ the notify). */
function setModeB(i32: Int32Array, mode: number, level: number): void {
  if (level < 2) {
    Atomics.store(i32, BreakdownWord.core, withMode(Atomics.load(i32, BreakdownWord.core), siblingB, mode));
    return;
  }
  for (;;) {
    const word = Atomics.load(i32, BreakdownWord.core);
    if (Atomics.compareExchange(i32, BreakdownWord.core, word, withMode(word, siblingB, mode)) === word)
      break;
  }
  if (level >= 3) notifyIfSleeping(i32, BreakdownWord.core);
}

/** B: answers until stopped. Returns the trips answered. */
export function runBreakdownTarget(i32: Int32Array, levelName: BreakdownLevel): number {
  const level = breakdownLevels.indexOf(levelName);
  if (i32.length < BreakdownWord.i32s)
    throw new Error(`kick breakdown: the buffer needs ${BreakdownWord.i32s} words`);
  // B starts in the guest, A isolated (the driver's first trip waits for this).
  if (level > 0) Atomics.store(i32, BreakdownWord.core, initialCoreWord());
  let answered = 0;
  let idle = 0;
  if (level === 0) {
    let last = 0;
    for (;;) {
      const sequence = Atomics.load(i32, BreakdownWord.mailbox);
      if (sequence === last) {
        // Idle (another level is measured): block, and keep blocking until a trip comes.
        if (++idle > idleSpins) Atomics.wait(i32, BreakdownWord.mailbox, last, idleBlockMs);
        continue;
      }
      if (sequence === rawStop) return answered;
      idle = 0;
      last = sequence;
      Atomics.store(i32, BreakdownWord.core, sequence);
      answered++;
    }
  }
  for (;;) {
    // The guest: poll the mailbox between steps.
    const pending = Atomics.load(i32, BreakdownWord.mailbox);
    if (pending === 0) {
      if (++idle > idleSpins) Atomics.wait(i32, BreakdownWord.mailbox, 0, idleBlockMs);
      continue;
    }
    if (pending & stopBit) return answered;
    idle = 0;
    // The exit: leave the guest, take the kick, acknowledge it; then the entry back into the guest.
    setModeB(i32, Mode.isolated, level);
    Atomics.and(i32, BreakdownWord.mailbox, ~kickBit);
    Atomics.add(i32, BreakdownWord.acks, 1);
    if (level >= 3) notifyIfSleeping(i32, BreakdownWord.acks);
    setModeB(i32, Mode.guest, level);
    answered++;
  }
}

/** A: sends and times the trips of one level. */
export class BreakdownDriver {
  private sequence = 0;
  private readonly level: number;
  private readonly f64: Float64Array;

  constructor(
    private readonly i32: Int32Array,
    levelName: BreakdownLevel,
  ) {
    this.level = breakdownLevels.indexOf(levelName);
    this.f64 = new Float64Array(i32.buffer, i32.byteOffset, BreakdownWord.i32s / 2);
  }

  private rawTrip(): void {
    const i32 = this.i32;
    this.sequence = this.sequence + 1;
    Atomics.store(i32, BreakdownWord.mailbox, this.sequence);
    let deadlineMs = 0;
    for (let spins = 1; Atomics.load(i32, BreakdownWord.core) !== this.sequence; spins++) {
      if ((spins & 0xfffff) === 0) deadlineMs = this.checkDeadline(deadlineMs);
    }
  }

  private checkDeadline(deadlineMs: number): number {
    const nowMs = performance.now();
    if (deadlineMs === 0) return nowMs + tripTimeoutMs;
    if (nowMs > deadlineMs) throw new Error(`kick breakdown: no answer within ${tripTimeoutMs} ms`);
    return deadlineMs;
  }

  private send(): void {
    const i32 = this.i32;
    if (this.level >= 3) {
      this.f64[BreakdownWord.kickSentF64] = 0;
      Atomics.or(i32, BreakdownWord.mailbox, kickBit);
      notifyIfSleeping(i32, BreakdownWord.mailbox);
    } else Atomics.or(i32, BreakdownWord.mailbox, kickBit);
  }

  /** Sends the kick and waits until B left the guest (or left and came back: its acknowledgements moved). */
  private kickTrip(acksBefore: number): void {
    const i32 = this.i32;
    this.send();
    let deadlineMs = 0;
    if (this.level < 3) {
      for (let spins = 1; ; spins++) {
        if (modeOf(Atomics.load(i32, BreakdownWord.core), siblingB) !== Mode.guest) return;
        if (Atomics.load(i32, BreakdownWord.acks) !== acksBefore) return;
        if ((spins & 0xfffff) === 0) deadlineMs = this.checkDeadline(deadlineMs);
      }
    }
    // KickDriver.awaitTarget's shape: the mailbox (re-kick check), the word, the acknowledgements, a wait.
    for (;;) {
      const pending = Atomics.load(i32, BreakdownWord.mailbox);
      const word = Atomics.load(i32, BreakdownWord.core);
      if (modeOf(word, siblingB) !== Mode.guest) return;
      if (Atomics.load(i32, BreakdownWord.acks) !== acksBefore) return;
      if ((pending & kickBit) === 0) this.send();
      if (!this.spin(word)) {
        Atomics.add(i32, BreakdownWord.sleepers, 1);
        Atomics.wait(i32, BreakdownWord.core, word, driverWaitTimeoutMs);
        Atomics.sub(i32, BreakdownWord.sleepers, 1);
      }
      if (modeOf(Atomics.load(i32, BreakdownWord.core), siblingB) !== Mode.guest) return;
      deadlineMs = this.checkDeadline(deadlineMs);
    }
  }

  /** Waiter.spin: true as soon as the core word changes. */
  private spin(word: number): boolean {
    for (let check = 0; check < driverSpinChecks; check++) {
      if (Atomics.load(this.i32, BreakdownWord.core) !== word) return true;
    }
    return false;
  }

  /** Untimed, between trips: B back in the guest with no kick pending. */
  private awaitGuest(): void {
    const i32 = this.i32;
    let deadlineMs = 0;
    for (let spins = 1; ; spins++) {
      if (
        modeOf(Atomics.load(i32, BreakdownWord.core), siblingB) === Mode.guest &&
        (Atomics.load(i32, BreakdownWord.mailbox) & kickBit) === 0
      )
        return;
      if ((spins & 0xfffff) === 0) deadlineMs = this.checkDeadline(deadlineMs);
    }
  }

  private trip(): void {
    if (this.level === 0) this.rawTrip();
    else this.kickTrip(Atomics.load(this.i32, BreakdownWord.acks));
  }

  /** As KickDriver.roundTrips: `warmup` untimed trips, then up to `count` timed one by one. */
  roundTrips(count: number, maxMs = 50, warmup = Math.min(100, count)): RoundTripBatch {
    const level = this.level;
    for (let i = 0; i < warmup; i++) {
      if (level > 0) this.awaitGuest();
      this.trip();
    }
    const overhead = clockOverheadNs(2_000);
    const tripNs = new Float64Array(count);
    let bracketedMs = 0;
    let trips = 0;
    const start = performance.now();
    while (trips < count) {
      if (level > 0) this.awaitGuest();
      const acksBefore = Atomics.load(this.i32, BreakdownWord.acks);
      const tripStart = performance.now();
      if (level === 0) this.rawTrip();
      else this.kickTrip(acksBefore);
      const tripEnd = performance.now();
      bracketedMs += tripEnd - tripStart;
      tripNs[trips] = (tripEnd - tripStart) * 1e6;
      trips++;
      if (tripEnd - start > maxMs) break;
    }
    return {
      trips,
      totalNs: (performance.now() - start) * 1e6,
      bracketedTrips: trips,
      bracketedNs: bracketedMs * 1e6,
      tripNs: tripNs.slice(0, trips),
      clockOverheadNs: overhead,
    };
  }

  stop(): void {
    if (this.level === 0) Atomics.store(this.i32, BreakdownWord.mailbox, rawStop);
    else Atomics.or(this.i32, BreakdownWord.mailbox, stopBit);
    Atomics.notify(this.i32, BreakdownWord.mailbox);
  }
}
