import { performance } from 'node:perf_hooks';
import { assert } from '../../assert.js';
import { Mode, modeNames, modeOf, withMode } from '../../cpu/modes.js';
import { Mailboxes, Vector } from '../../kick/ipi.js';
import { attachMachine, type Machine } from '../../machine.js';
import {
  CoreField,
  coreFieldIndex,
  ThreadField,
  ThreadStat,
  threadFieldIndex,
  threadStatIndex,
} from '../../memory/layout.js';
import { ControlBlock, sleeperStrideI32s } from './control.js';
import { clockOverheadNs, type RoundTripBatch } from './ping-pong.js';
import { Sleepers, Waiter } from './waiter.js';

/**
 * The sibling-kick round trip, measured on the real protocol (DESIGN.md "Performance goals"): this
 * driver plays hyperthread A, in `isolated` on one sibling of a core; hyperthread B, a real hyperthread
 * worker of a `workers` run, runs guest steps on another sibling. A round trip: A sends the kick
 * (Mailboxes.send: the pending bit and a notify), then waits (spin, then Atomics.wait) until B's nibble
 * of the core word leaves `guest`; B sees the bit at its next guest-step check, CASes itself to
 * `isolated` and notifies. Only that interval is timed (performance.now around each trip); B's handler
 * and re-entry happen between trips, untimed, while A waits for B to be back in the guest.
 *
 * As the state machine's own kicker does (kick/kicker.ts waitForSiblings), A kicks again when B is in the guest with
 * no kick pending: B's entry clears a kick that arrived between its CAS into the guest and the entry's
 * end as stale. A waits for B's entry count to move before each trip, so that happens only by accident.
 */
export interface KickDriverSetup {
  machineBuffer: SharedArrayBuffer;
  controlBuffer: SharedArrayBuffer;
  /** The hyperthread A plays: a sibling of `targetThread` with no vCPU of its own. */
  driverThread: number;
  targetThread: number;
  spinChecks: number;
  waitTimeoutMs: number;
  /** A round trip (or B's re-entry) slower than this means B is gone: the driver throws. */
  tripTimeoutMs: number;
}

/** A's nap while B finishes an entry it began (B descheduled): short, B is a few steps from done. */
const entrySleepMs = 0.05;

export class KickDriver {
  private readonly machine: Machine;
  private readonly mailboxes: Mailboxes;
  private readonly sleepers: Sleepers;
  private readonly waiter: Waiter;
  private readonly coreIndex: number;
  private readonly sleeperIndex: number;
  private readonly driverSibling: number;
  private readonly targetSibling: number;
  private readonly entriesIndex: number;
  private readonly acksIndex: number;
  private entriesSeen = 0;
  /** Kicks sent again because B was in the guest with no kick pending. */
  retries = 0;

  constructor(private readonly setup: KickDriverSetup) {
    this.machine = attachMachine(setup.machineBuffer);
    const { machine } = this;
    const smt = machine.config.smt;
    const core = machine.coreOf(setup.targetThread);
    assert(machine.coreOf(setup.driverThread) === core, 'the driver is a sibling of the kicked hyperthread');
    assert(setup.driverThread !== setup.targetThread, 'the driver kicks another hyperthread');
    assert(
      !machine.pinning.some((pins) => pins.includes(setup.driverThread)),
      `ht${setup.driverThread} runs a vCPU: the driver needs a free sibling`,
    );
    const control = ControlBlock.attach(setup.controlBuffer);
    this.sleepers = new Sleepers(
      machine.i32,
      control.i32,
      machine.layout,
      smt,
      control.sleeperIndex(0),
      sleeperStrideI32s,
    );
    this.waiter = new Waiter(machine.i32, control.i32, setup.spinChecks);
    this.mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout);
    this.coreIndex = coreFieldIndex(machine.layout, core, CoreField.state);
    this.sleeperIndex = this.sleepers.countIndexOf(this.coreIndex);
    this.driverSibling = setup.driverThread % smt;
    this.targetSibling = setup.targetThread % smt;
    this.entriesIndex = threadStatIndex(machine.layout, setup.targetThread, ThreadStat.entries);
    this.acksIndex = threadFieldIndex(machine.layout, setup.targetThread, ThreadField.kickAcks);
    // A runs in B's VM (INV-3: siblings in guest/isolated must be of the same VM).
    const targetVm = Atomics.load(
      machine.i32,
      threadFieldIndex(machine.layout, setup.targetThread, ThreadField.vmId),
    );
    Atomics.store(
      machine.i32,
      threadFieldIndex(machine.layout, setup.driverThread, ThreadField.vmId),
      targetVm,
    );
    this.setDriverMode(Mode.isolated);
  }

  private setDriverMode(mode: number): void {
    for (let attempt = 0; attempt < 1_000_000; attempt++) {
      const word = Atomics.load(this.machine.i32, this.coreIndex);
      if (
        Atomics.compareExchange(
          this.machine.i32,
          this.coreIndex,
          word,
          withMode(word, this.driverSibling, mode),
        ) === word
      ) {
        this.sleepers.notify(this.coreIndex);
        return;
      }
    }
    assert(false, 'the core word never settled');
  }

  private targetMode(): number {
    return modeOf(Atomics.load(this.machine.i32, this.coreIndex), this.targetSibling);
  }

  /**
   * Waits (spin, then block) until B's mode satisfies `done`, or `left()` says B left and came back
   * while A was not looking (descheduled); kicks again when B is in the guest with no kick pending.
   * Throws after the trip timeout.
   */
  private awaitTarget(
    done: (mode: number) => boolean,
    what: string,
    left: () => boolean,
    rekick: boolean,
  ): void {
    let deadlineMs = 0;
    for (;;) {
      // The mailbox before the word: B takes the bit only after leaving the guest, so a bit missing
      // while the later-read word still says guest was cleared at B's entry, not by its exit.
      const pending = rekick ? this.mailboxes.pending(this.setup.targetThread) : Vector.kick;
      const word = Atomics.load(this.machine.i32, this.coreIndex);
      if (done(modeOf(word, this.targetSibling))) return;
      if (left()) return;
      if ((pending & Vector.kick) === 0) {
        this.retries++;
        this.mailboxes.send(this.setup.targetThread, Vector.kick, 0, this.sleepers);
      }
      this.waiter.waitWhile(this.coreIndex, word, this.sleeperIndex, this.setup.waitTimeoutMs);
      if (done(this.targetMode())) return;
      const nowMs = performance.now();
      if (deadlineMs === 0) deadlineMs = nowMs + this.setup.tripTimeoutMs;
      else if (nowMs > deadlineMs) {
        throw new Error(
          `kick driver: ht${this.setup.targetThread} did not ${what} within ${this.setup.tripTimeoutMs} ms ` +
            `(its mode is ${modeNames[this.targetMode()]})`,
        );
      }
    }
  }

  /** B's kick acknowledgements: bumped by every kick exit, after B's nibble left the guest. */
  private acks(): number {
    return Atomics.load(this.machine.i32, this.acksIndex);
  }

  /** One timed round trip; `acksBefore` is B's acknowledgement count read before it. */
  private trip(acksBefore: number): void {
    this.mailboxes.send(this.setup.targetThread, Vector.kick, 0, this.sleepers);
    this.awaitTarget(
      (mode) => mode !== Mode.guest,
      'leave the guest',
      () => this.acks() > acksBefore,
      true,
    );
  }

  /**
   * Until B is in the guest and its entry has finished: its nibble first (a word A can wait on), then
   * its entry count, which moves a few steps after the CAS and changes no word A could block on, so A
   * spins on it and sleeps a little now and then (B may have lost its CPU in between).
   */
  private awaitGuest(): void {
    this.awaitTarget(
      (mode) => mode === Mode.guest,
      'come back into the guest',
      () => false,
      false,
    );
    const f64 = this.machine.f64;
    let deadlineMs = 0;
    for (let spins = 1; f64[this.entriesIndex] <= this.entriesSeen; spins++) {
      if (spins % this.setup.spinChecks !== 0) continue;
      const nowMs = performance.now();
      if (deadlineMs === 0) deadlineMs = nowMs + this.setup.tripTimeoutMs;
      else if (nowMs > deadlineMs)
        throw new Error(`kick driver: ht${this.setup.targetThread} never finished its entry into the guest`);
      const word = Atomics.load(this.machine.i32, this.coreIndex);
      this.waiter.block(this.coreIndex, word, this.sleeperIndex, entrySleepMs);
    }
    this.entriesSeen = f64[this.entriesIndex];
  }

  /**
   * `warmup` untimed round trips, then up to `count` timed ones (B back in the guest before each),
   * ending early after `maxMs` so that a starved machine cannot stretch a batch to minutes.
   */
  roundTrips(count: number, maxMs = 100, warmup = Math.min(100, count)): RoundTripBatch {
    for (let i = 0; i < warmup; i++) {
      this.awaitGuest();
      this.trip(this.acks());
    }
    const overhead = clockOverheadNs(2_000);
    const tripNs = new Float64Array(count);
    let bracketedMs = 0;
    let trips = 0;
    const start = performance.now();
    while (trips < count) {
      this.awaitGuest();
      const acksBefore = this.acks();
      const tripStart = performance.now();
      this.trip(acksBefore);
      const tripEnd = performance.now();
      bracketedMs += tripEnd - tripStart;
      tripNs[trips] = (tripEnd - tripStart) * 1e6;
      trips++;
      if (tripEnd - start > maxMs) break;
    }
    const totalMs = performance.now() - start;
    return {
      trips,
      totalNs: totalMs * 1e6,
      bracketedTrips: trips,
      bracketedNs: bracketedMs * 1e6,
      tripNs: tripNs.slice(0, trips),
      clockOverheadNs: overhead,
      retries: this.retries,
    };
  }

  /** Takes A off the core (offline), so B's run can end normally. */
  release(): void {
    this.setDriverMode(Mode.offline);
  }
}
