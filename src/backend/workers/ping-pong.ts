import { performance } from 'node:perf_hooks';
import { assert } from '../../assert.js';
import { sectionAlignI32s } from '../../constants.js';
import { Waiter } from './waiter.js';

/**
 * The raw Atomics ping-pong between two workers: the physical limit a sibling kick is compared with
 * (DESIGN.md "Performance goals"), measured in the same process run. `spin`: both sides spin on
 * Atomics.load; `wait`: both sides block in Atomics.wait and wake each other with Atomics.notify, with
 * no spinning. The ping and pong words sit on different 64-byte lines, so a round trip is two line
 * transfers and nothing else.
 */
export type PingPongMode = 'spin' | 'wait';

export const PingPongField = {
  ping: 0,
  pong: sectionAlignI32s,
  /** Sleeper count of the Waiter (unused by the raw protocol: it always notifies in wait mode). */
  sleepers: 2 * sectionAlignI32s,
  count: 3 * sectionAlignI32s,
} as const;

/** The ping word holding this ends the ponger. */
export const pingStop = -1;

/** What one batch of round trips measured, in the thread that drove it. */
export interface RoundTripBatch {
  trips: number;
  /** performance.now() around those trips: trips x round trip (+ whatever runs between trips). */
  totalNs: number;
  /** Trips timed one by one, and the sum of the performance.now() brackets around each. */
  bracketedTrips: number;
  bracketedNs: number;
  /**
   * Each of those brackets, in ns, the clock's cost not taken off (`clockOverheadNs`): the samples of
   * the latency distribution (benchmarks.ts).
   */
  tripNs: Float64Array;
  /** Cost of the bracket itself (one performance.now() call), measured in the same thread just before. */
  clockOverheadNs: number;
  /** Kick benchmark: kicks sent again so far (the kicked thread cleared one as stale at its entry). */
  retries?: number;
}

/** Mean cost of one performance.now() call in this thread, in ns (what a bracket adds to a sample). */
export function clockOverheadNs(samples = 20_000): number {
  let sum = 0;
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    sum += performance.now() - start;
  }
  return (sum / samples) * 1e6;
}

export interface PingPongOptions {
  mode: PingPongMode;
  /** Spin mode: checks before an idle side blocks for `idleBlockMs` (between batches). */
  idleSpinChecks: number;
  idleBlockMs: number;
  /** A round trip that takes longer than this means the other side died. */
  tripTimeoutMs: number;
}

export const defaultPingPongOptions = (mode: PingPongMode): PingPongOptions => ({
  mode,
  // ~1-5 ms of spinning: far more than a round trip, so spinning never blocks inside a batch.
  idleSpinChecks: 1_000_000,
  idleBlockMs: 1,
  tripTimeoutMs: 5_000,
});

function waiterFor(i32: Int32Array, options: PingPongOptions): Waiter {
  return new Waiter(i32, i32, options.mode === 'spin' ? options.idleSpinChecks : 0);
}

/** Waits until i32[index] !== value (spinning, or blocking in wait mode); throws after the trip timeout. */
function awaitChange(
  i32: Int32Array,
  waiter: Waiter,
  index: number,
  value: number,
  options: PingPongOptions,
): void {
  let deadlineMs = 0;
  for (;;) {
    waiter.waitWhile(index, value, PingPongField.sleepers, options.idleBlockMs);
    if (Atomics.load(i32, index) !== value) return;
    // Only a slow trip reads the clock: the fast path is loads and nothing else.
    const nowMs = performance.now();
    if (deadlineMs === 0) deadlineMs = nowMs + options.tripTimeoutMs;
    else if (nowMs > deadlineMs)
      throw new Error(`ping-pong: no answer within ${options.tripTimeoutMs} ms (the other side died?)`);
  }
}

/** The side that measures: sends ping n, waits for pong n. */
export class Pinger {
  private sequence = 0;
  private readonly waiter: Waiter;

  constructor(
    private readonly i32: Int32Array,
    private readonly options: PingPongOptions,
  ) {
    assert(i32.length >= PingPongField.count, 'ping-pong buffer too small');
    this.waiter = waiterFor(i32, options);
  }

  private trip(): void {
    const i32 = this.i32;
    const previous = this.sequence;
    this.sequence = previous + 1 === pingStop ? previous + 2 : previous + 1;
    Atomics.store(i32, PingPongField.ping, this.sequence);
    if (this.options.mode === 'wait') Atomics.notify(i32, PingPongField.ping);
    if (Atomics.load(i32, PingPongField.pong) === previous)
      awaitChange(i32, this.waiter, PingPongField.pong, previous, this.options);
  }

  /**
   * `warmup` untimed trips (the ponger may have blocked between batches), then up to `count` trips
   * with a clock bracket each, then up to `count` with no clock inside the loop (the raw figure). Each
   * loop also ends after `maxMs` (looked at every 256 trips): a starved machine makes a trip take a
   * time slice, and a batch must not take minutes.
   */
  roundTrips(count: number, maxMs = 100, warmup = Math.min(1000, count)): RoundTripBatch {
    const warmupEndMs = performance.now() + maxMs;
    for (let i = 0; i < warmup && ((i & 255) !== 255 || performance.now() < warmupEndMs); i++) this.trip();
    const overhead = clockOverheadNs(2_000);
    const tripNs = new Float64Array(count);
    let bracketedMs = 0;
    let bracketedTrips = 0;
    const bracketedStart = performance.now();
    while (bracketedTrips < count) {
      const tripStart = performance.now();
      this.trip();
      const tripMs = performance.now() - tripStart;
      bracketedMs += tripMs;
      tripNs[bracketedTrips] = tripMs * 1e6;
      bracketedTrips++;
      if ((bracketedTrips & 255) === 0 && performance.now() - bracketedStart > maxMs) break;
    }
    const plainStart = performance.now();
    let trips = 0;
    while (trips < count) {
      this.trip();
      trips++;
      if ((trips & 255) === 0 && performance.now() - plainStart > maxMs) break;
    }
    const plainMs = performance.now() - plainStart;
    return {
      trips,
      totalNs: plainMs * 1e6,
      bracketedTrips,
      bracketedNs: bracketedMs * 1e6,
      tripNs: tripNs.slice(0, bracketedTrips),
      clockOverheadNs: overhead,
    };
  }

  stop(): void {
    Atomics.store(this.i32, PingPongField.ping, pingStop);
    Atomics.notify(this.i32, PingPongField.ping);
  }
}

/**
 * The side that answers: copies each new ping to pong until the ping word says stop, or until it has
 * been idle for `idleMaxMs` (its pinger is gone). Returns the trips answered.
 */
export function runPonger(i32: Int32Array, options: PingPongOptions, idleMaxMs = 60_000): number {
  const waiter = waiterFor(i32, options);
  // A fresh buffer's ping is 0; a ping sent before this side started is answered at once.
  let last = 0;
  let answered = 0;
  /** When the ponger last saw nothing to answer after blocking; 0 while pings keep coming. */
  let idleSinceMs = 0;
  for (;;) {
    // Idle (between batches, or while another measurement runs): block at once, leave the CPU alone.
    if (idleSinceMs === 0)
      waiter.waitWhile(PingPongField.ping, last, PingPongField.sleepers, options.idleBlockMs);
    else waiter.block(PingPongField.ping, last, PingPongField.sleepers, options.idleBlockMs);
    const sequence = Atomics.load(i32, PingPongField.ping);
    if (sequence === last) {
      const nowMs = performance.now();
      if (idleSinceMs === 0) idleSinceMs = nowMs;
      else if (nowMs - idleSinceMs > idleMaxMs) return answered;
      continue;
    }
    if (sequence === pingStop) return answered;
    idleSinceMs = 0;
    last = sequence;
    Atomics.store(i32, PingPongField.pong, sequence);
    if (options.mode === 'wait') Atomics.notify(i32, PingPongField.pong);
    answered++;
  }
}
