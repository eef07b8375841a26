import { assert } from '../../assert.js';
import type { Layout } from '../../memory/layout.js';

/**
 * How a hyperthread worker waits for a word of the machine buffer to change: spin for a bounded number
 * of checks, then block in Atomics.wait with a timeout (DESIGN.md: a spin round trip costs ~100-350 ns,
 * a wait/notify round trip 20-90 µs). The only Atomics.wait caller besides kick/.
 *
 * Sleeper counts make a notify free when nobody sleeps: Atomics.notify takes a process-wide lock
 * (~40 ns even with no waiter), and a mode change notifies its core word every time. A waiter adds
 * itself to the sleeper count of the word's core before it blocks and removes itself after; a notifier
 * changes the word first and notifies only when that count is not zero.
 *
 * Why no wake-up is lost: all four operations are sequentially consistent atomics. If the notifier
 * reads a count of zero, the waiter's increment comes later in the one total order, so the waiter's
 * Atomics.wait (which compares the word and blocks atomically) comes later still and sees the changed
 * word: it does not block. If the count is not zero, the notify reaches a waiter that is blocked, or
 * one that has not blocked yet and will see the changed word. The wait timeout is a second guard.
 */
export const WaitResult = {
  /** The word no longer holds the value (or a notify came): look again. */
  changed: 0,
  /** The timeout passed with the word unchanged. */
  timedOut: 1,
} as const;

export class Waiter {
  /** Spins that saw the word change, and waits that had to block (for statistics). */
  spinHits = 0;
  blocks = 0;

  constructor(
    private readonly i32: Int32Array,
    private readonly sleepers: Int32Array,
    readonly spinChecks: number,
  ) {
    assert(
      Number.isInteger(spinChecks) && spinChecks >= 0,
      `spinChecks must be an integer >= 0, got ${spinChecks}`,
    );
  }

  /** Checks the word up to `spinChecks` times; true as soon as it no longer holds `value`. */
  spin(index: number, value: number): boolean {
    const i32 = this.i32;
    for (let check = 0; check < this.spinChecks; check++) {
      if (Atomics.load(i32, index) !== value) {
        this.spinHits++;
        return true;
      }
    }
    return false;
  }

  /**
   * Blocks while `i32[index] === value`, at most `timeoutMs`, counted as a sleeper of the word's core
   * (`sleeperIndex` in the sleepers array; see the class comment).
   */
  block(index: number, value: number, sleeperIndex: number, timeoutMs: number): number {
    assert(timeoutMs >= 0 && Number.isFinite(timeoutMs), `a wait needs a finite timeout, got ${timeoutMs}`);
    this.blocks++;
    Atomics.add(this.sleepers, sleeperIndex, 1);
    const outcome = Atomics.wait(this.i32, index, value, timeoutMs);
    Atomics.sub(this.sleepers, sleeperIndex, 1);
    return outcome === 'timed-out' ? WaitResult.timedOut : WaitResult.changed;
  }

  /** Spin, then block once: returns WaitResult. */
  waitWhile(index: number, value: number, sleeperIndex: number, timeoutMs: number): number {
    if (this.spin(index, value)) return WaitResult.changed;
    return this.block(index, value, sleeperIndex, timeoutMs);
  }
}

/**
 * Which sleeper count guards a machine-buffer word: the core whose record holds it (a core word) or
 * whose hyperthread's record holds it (a mailbox, an acknowledgement counter). Waiter and notifier
 * must agree, so both ask this. Any other word has no count: its notifier always notifies (and its
 * waiter counts itself on core 0, which only costs a needless notify there).
 */
export class Sleepers {
  private readonly coresStart: number;
  private readonly coresEnd: number;
  private readonly threadsStart: number;
  private readonly threadsEnd: number;

  constructor(
    private readonly i32: Int32Array,
    readonly counts: Int32Array,
    private readonly layout: Layout,
    private readonly smt: number,
    /** Index in `counts` of core 0's count, and the distance between two cores' counts. */
    private readonly firstIndex: number,
    private readonly strideI32s: number,
  ) {
    const { cores, threads } = layout.sections;
    this.coresStart = cores.offsetI32;
    this.coresEnd = cores.offsetI32 + cores.lengthI32;
    this.threadsStart = threads.offsetI32;
    this.threadsEnd = threads.offsetI32 + threads.lengthI32;
  }

  /** Core whose sleeper count guards word `index`, or -1. */
  coreOf(index: number): number {
    if (index >= this.coresStart && index < this.coresEnd)
      return Math.floor((index - this.coresStart) / this.layout.coreStrideI32s);
    if (index >= this.threadsStart && index < this.threadsEnd)
      return Math.floor(Math.floor((index - this.threadsStart) / this.layout.threadStrideI32s) / this.smt);
    return -1;
  }

  /** Index in `counts` a waiter on word `index` counts itself at. */
  countIndexOf(index: number): number {
    const core = this.coreOf(index);
    return this.firstIndex + Math.max(core, 0) * this.strideI32s;
  }

  /** Wakes the waiters of word `index` (after the word changed) unless the count says none sleeps. */
  notify(index: number): void {
    const core = this.coreOf(index);
    if (core >= 0 && Atomics.load(this.counts, this.firstIndex + core * this.strideI32s) === 0) return;
    Atomics.notify(this.i32, index);
  }
}
