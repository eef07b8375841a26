import { assert } from '../../assert.js';
import { type ControlBlock, LoopState, SlotField } from './control.js';

/**
 * The control thread's watchdog: a worker whose heartbeat has not moved for `timeoutMs` has stopped
 * answering (a policy hook that never returns, a livelock inside one step). A healthy worker beats every
 * `stepsPerCheck` steps, after every blocking wait (each one bounded by its timeout) and while parked,
 * so silence means its thread is stuck in JavaScript, not waiting. Workers that stopped or failed are
 * not watched. The watchdog only reads the control block; what to do is the control thread's call.
 */
export class Watchdog {
  private readonly lastBeat: number[];
  private readonly lastChangeMs: number[];

  constructor(
    private readonly control: ControlBlock,
    readonly timeoutMs: number,
    nowMs: number,
  ) {
    assert(timeoutMs > 0 && Number.isFinite(timeoutMs), `watchdog timeout must be > 0 ms, got ${timeoutMs}`);
    this.lastBeat = [];
    this.lastChangeMs = [];
    for (let slot = 0; slot < control.slotCount; slot++) {
      this.lastBeat.push(this.heartbeat(slot));
      this.lastChangeMs.push(nowMs);
    }
  }

  private heartbeat(slot: number): number {
    return Atomics.load(this.control.i32, this.control.slotIndex(slot, SlotField.heartbeat));
  }

  /** Looks at every slot; returns the slots silent for longer than the timeout. */
  check(nowMs: number): number[] {
    const silent: number[] = [];
    for (let slot = 0; slot < this.control.slotCount; slot++) {
      const beat = this.heartbeat(slot);
      if (beat !== this.lastBeat[slot]) {
        this.lastBeat[slot] = beat;
        this.lastChangeMs[slot] = nowMs;
        continue;
      }
      const state = this.control.loopState(slot);
      if (state === LoopState.stopped || state === LoopState.failed) continue;
      if (nowMs - this.lastChangeMs[slot] > this.timeoutMs) silent.push(slot);
    }
    return silent;
  }

  /** Real ms since the slot's heartbeat last moved (as of the last check). */
  silentMs(slot: number, nowMs: number): number {
    return nowMs - this.lastChangeMs[slot];
  }
}
