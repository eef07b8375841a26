import { type Layout, ThreadField, ThreadStat, threadFieldIndex, threadStatIndex } from '../memory/layout.js';
import { andWord, loadWord, orWord } from '../memory/words.js';
import type { Notifier } from './wait.js';

/**
 * IPI mailboxes: one word of pending-vector bits per hyperthread (DESIGN.md "IPI mailboxes"). A
 * sender sets a bit with Atomics.or and then wakes the target through the backend's `notify`
 * (Atomics.notify in the workers backend). The target checks its mailbox between guest steps and
 * takes an exit when a bit is set, as hardware delivers an interrupt at an instruction boundary.
 *
 * Why no wake-up is lost: a waiter waits on the mailbox word *while it still holds the value it last
 * read*; a sender changes the word before notifying, so either the waiter reads the new value before
 * it blocks or the notify finds it blocked (Atomics.wait compares and blocks atomically).
 */
export const Vector = {
  /** The ASI sibling kick: leave the guest. */
  kick: 1 << 0,
  /** An IPI from another vCPU of the VM (PV send-IPI, kick-CPU): wakes a halted vCPU. */
  wake: 1 << 1,
  nmi: 1 << 2,
  machineCheck: 1 << 3,
  /** A host device interrupt. */
  irq: 1 << 4,
} as const;

/** The vectors that interrupt a handler (and that a kicker notes while it waits). */
export const interruptVectors = Vector.nmi | Vector.machineCheck | Vector.irq;

export class Mailboxes {
  /** Word index of thread 0's mailbox, and the distance between two threads' records. */
  private readonly mailbox0I32Index: number;
  private readonly threadStrideI32s: number;

  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly layout: Layout;
  private readonly atomic: boolean;

  constructor(
    i32: Int32Array,
    f64: Float64Array,
    layout: Layout,
    /** Machine.concurrent: Atomics only where senders run in other threads (memory/words.ts). */
    atomic = true,
  ) {
    this.i32 = i32;
    this.f64 = f64;
    this.layout = layout;
    this.atomic = atomic;
    this.mailbox0I32Index = threadFieldIndex(layout, 0, ThreadField.mailbox);
    this.threadStrideI32s = layout.threadStrideI32s;
  }

  index(thread: number): number {
    return this.mailbox0I32Index + thread * this.threadStrideI32s;
  }

  /** Sends `vector` to `target` at virtual time `nowCycles` (the sender's clock). */
  send(target: number, vector: number, nowCycles: number, notifier: Notifier): void {
    if (vector === Vector.kick)
      this.f64[threadStatIndex(this.layout, target, ThreadStat.kickSentAtCycles)] = nowCycles;
    const index = this.index(target);
    orWord(this.i32, index, vector, this.atomic);
    notifier.notify(index, nowCycles);
  }

  pending(thread: number): number {
    return this.pendingAt(this.index(thread));
  }

  /** `pending` of the mailbox at `index` (`index(thread)`), for a thread that polls its own and keeps it. */
  pendingAt(index: number): number {
    return loadWord(this.i32, index, this.atomic);
  }

  /** Takes (clears) `vectors` from `thread`'s mailbox; returns the bits that were set. */
  take(thread: number, vectors: number): number {
    return andWord(this.i32, this.index(thread), ~vectors, this.atomic) & vectors;
  }

  kickSentAt(target: number): number {
    return this.f64[threadStatIndex(this.layout, target, ThreadStat.kickSentAtCycles)];
  }
}
