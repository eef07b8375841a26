import { assert } from '../assert.js';
import { Mode, modeOf } from '../cpu/modes.js';
import { type Layout, ThreadField, threadFieldIndex } from '../memory/layout.js';
import { addWord, loadWord } from '../memory/words.js';
import type { Policy, PolicyView } from '../policy/policy.js';
import { interruptVectors, type Mailboxes, Vector } from './ipi.js';
import type { Notifier } from './wait.js';

/**
 * The sibling kick protocol (DESIGN.md "Where the idea comes from"; INV-3, INV-4, INV-9), in one place.
 * docs/kick-protocol.md says the same for readers of the model.
 *
 * Words (memory/layout.ts): each core has one core word (every sibling's mode and stun bit, changed
 * only by compare-and-swap: cpu/modes.ts); each hyperthread has a mailbox (pending-vector bits, ipi.ts)
 * and a kick-acknowledgement counter (ThreadField.kickAcks).
 *
 * The kicker K, about to leave isolation (or, coscheduling, on every exit):
 *   1. kick: reads the core word, asks the policy which siblings to kick (those in the guest by
 *      default), and for each records its acknowledgement count, pays the IPI send, sets the kick bit in
 *      its mailbox (with the send time: the IPI's latency) and notifies the mailbox word.
 *   2. wait for siblings out: reads the core word; done when the policy says the siblings are out. A
 *      sibling still in the guest with no kick pending took an earlier kick and went back in (or its
 *      exit raced the kick): K kicks it again (a re-kick) and looks once more. Otherwise K waits on the
 *      core word, with the value it just read.
 *   3. switch: one CAS of the core word that satisfied the condition (cpu/hyperthread.ts); if the word
 *      moved meanwhile, back to 2.
 * The kicked sibling S polls its mailbox at every guest step. Once the kick is visible (sent + IPI
 * latency) and the policy wants the exit, S exits: its mode goes to isolated by a CAS of the core word
 * (which notifies the core word), it clears the kick bit and adds one to its acknowledgement counter
 * (which notifies that word). At its next entry, a kick still pending is stale (K waited for S to
 * leave, and S did): dropped, not acknowledged. An idle S drops a kick too: it has no guest to leave.
 * The planted `plantedBugs.waitFor: 'ack'` policy waits for the counters to move instead of the core word (and on
 * the wrong word: its bug).
 *
 * Why no wake-up is lost (as piscina's wait loop does: piscina 5.3.2 dist/worker.js `atomicsWaitLoop`
 * waits on the request count it last saw, then reloads it): every wait is on a word with the value
 * read just before, and the condition is checked on that same value; every writer changes the word
 * first and notifies after. A waiter that would miss the change reads the new value before it blocks
 * (the workers' Atomics.wait compares and blocks in one atomic step; the sim parks it only while the
 * word holds the value, and a notify wakes every parked thread whose word differs). A kick consumed
 * too early cannot strand K either: K never waits while a sibling is in the guest without a kick
 * pending (the re-kick of step 2). Every wait also has a bound: the sim's deadlines and liveness
 * watchdog, the workers' wait timeout (backend/workers/waiter.ts), and `retriesMax` re-kicks here.
 */

/** What `waitForSiblings` found. */
export const KickWait = {
  /** The policy's condition holds: the siblings are out (or acknowledged). */
  out: 0,
  /** A sibling back in the guest with no kick pending was kicked again: look again next step. */
  rekicked: 1,
  /** Wait while word `waitIndex` still holds `waitValue` (kick/wait.ts `WordWait`). */
  blocked: 2,
} as const;

/**
 * Re-kicks one kicker may send in one wait before the run is called stuck (an assert): a sibling that
 * takes each kick and re-enters at once is re-kicked once per round, and a healthy wait takes a few.
 */
export const rekicksMax = 1_000_000;

/** What the kicker needs of its hyperthread: its clock, its core word, and its counts. */
export interface KickerHost {
  readonly clockCycles: number;
  /** The core word, read as the hyperthread reads it. */
  coreWord(): number;
  /** Advances the hyperthread's clock by `cycles`. */
  spend(cycles: number): void;
  /** A kick went to hyperthread `target` (a re-kick when `rekick`): the thread's counts and observer. */
  kickSent(target: number, rekick: boolean): void;
  /** The first time in a kick wait that an interrupt is pending in the kicker's own mailbox. */
  interruptInKickWait(): void;
}

/** Where a kicker lives: its hyperthread, its core's words, and the IPI costs (cpu/costs.ts). */
export interface KickerPlace {
  i32: Int32Array;
  layout: Layout;
  /** Machine.concurrent: Atomics where siblings run in other threads (memory/words.ts). */
  atomic: boolean;
  mailboxes: Mailboxes;
  notifier: Notifier;
  thread: number;
  /** This thread's position among its core's siblings, and the core's threads by position. */
  sibling: number;
  siblingThreads: readonly number[];
  /** The i32 index of the core word. */
  coreI32Index: number;
  ipiSendCycles: number;
  ipiDeliveryCycles: number;
}

export class Kicker {
  readonly thread: number;
  /** Set when `waitForSiblings` returns KickWait.blocked. */
  waitIndex = 0;
  waitValue = 0;

  /** The siblings kicked last (a bit per sibling position), and the sum of their counters then. */
  private targetsMask = 0;
  private ackSeen = 0;
  private rekicks = 0;
  private interruptSeen = false;

  private readonly i32: Int32Array;
  private readonly atomic: boolean;
  private readonly mailboxes: Mailboxes;
  private readonly notifier: Notifier;
  private readonly sibling: number;
  private readonly siblingThreads: readonly number[];
  /** Each sibling position's acknowledgement counter (ThreadField.kickAcks). */
  private readonly ackIndices: Int32Array;
  private readonly ownAckIndex: number;
  private readonly ownMailboxIndex: number;
  private readonly coreI32Index: number;
  private readonly ipiSendCycles: number;
  private readonly ipiDeliveryCycles: number;

  constructor(
    place: KickerPlace,
    private readonly policy: Policy,
    private readonly view: PolicyView,
    private readonly host: KickerHost,
  ) {
    assert(
      place.siblingThreads[place.sibling] === place.thread,
      `thread ${place.thread} is sibling ${place.sibling} of its core`,
    );
    assert(place.ipiSendCycles >= 0 && place.ipiDeliveryCycles >= 0, 'IPI costs are >= 0 cycles');
    this.thread = place.thread;
    this.i32 = place.i32;
    this.atomic = place.atomic;
    this.mailboxes = place.mailboxes;
    this.notifier = place.notifier;
    this.sibling = place.sibling;
    this.siblingThreads = place.siblingThreads;
    this.ackIndices = Int32Array.from(place.siblingThreads, (target) =>
      threadFieldIndex(place.layout, target, ThreadField.kickAcks),
    );
    this.ownAckIndex = this.ackIndices[place.sibling];
    this.ownMailboxIndex = place.mailboxes.index(place.thread);
    this.coreI32Index = place.coreI32Index;
    this.ipiSendCycles = place.ipiSendCycles;
    this.ipiDeliveryCycles = place.ipiDeliveryCycles;
  }

  // ---- the kicker's side ----------------------------------------------------------------------------------

  /** Step 1: kicks the siblings the policy names (those in the guest by default). */
  kick(): void {
    const targets = this.policy.kickTargets(this.host.coreWord(), this.view);
    this.targetsMask = targets;
    if (targets === 0) return;
    this.ackSeen = 0;
    for (let sibling = 0; sibling < this.siblingThreads.length; sibling++) {
      if ((targets & (1 << sibling)) === 0 || sibling === this.sibling) continue;
      this.ackSeen += loadWord(this.i32, this.ackIndices[sibling], this.atomic);
      this.send(sibling, false);
    }
  }

  /** A new wait for the siblings begins (after `kick`, or where the policy sends none). */
  beginWait(): void {
    this.rekicks = 0;
    this.interruptSeen = false;
  }

  /**
   * Step 2: KickWait.out when the policy's condition holds (siblings out of the guest, or their
   * acknowledgements), else KickWait.rekicked after kicking again a sibling that went back into the
   * guest with no kick pending, or KickWait.blocked with the word to wait on.
   */
  waitForSiblings(): number {
    if (!this.interruptSeen && (this.mailboxes.pendingAt(this.ownMailboxIndex) & interruptVectors) !== 0) {
      this.interruptSeen = true;
      this.host.interruptInKickWait();
    }
    if (this.policy.plantedBugs.waitFor === 'ack') {
      if (this.targetsMask === 0 || this.acks() > this.ackSeen) return KickWait.out;
      // Planted bug: waits on its own mailbox, which no acknowledgement ever changes.
      return this.block(this.ownMailboxIndex, this.mailboxes.pendingAt(this.ownMailboxIndex));
    }
    const word = this.host.coreWord();
    if (this.policy.siblingsOut(word, this.view)) return KickWait.out;
    for (let sibling = 0; sibling < this.siblingThreads.length; sibling++) {
      if (sibling === this.sibling || modeOf(word, sibling) !== Mode.guest) continue;
      const target = this.siblingThreads[sibling];
      if ((this.mailboxes.pending(target) & Vector.kick) === 0) {
        this.rekicks++;
        assert(this.rekicks < rekicksMax, `thread ${this.thread}: sibling ${target} never left the guest`);
        this.send(sibling, true);
        return KickWait.rekicked;
      }
    }
    return this.block(this.coreI32Index, word);
  }

  /** The one send of a kick, first or again: the IPI's cost, the mailbox bit, the notify. */
  private send(sibling: number, rekick: boolean): void {
    const target = this.siblingThreads[sibling];
    this.host.spend(this.ipiSendCycles);
    this.mailboxes.send(target, Vector.kick, this.host.clockCycles, this.notifier);
    this.host.kickSent(target, rekick);
  }

  /** Sum of the acknowledgement counters of the siblings last kicked. */
  private acks(): number {
    let sum = 0;
    for (let sibling = 0; sibling < this.siblingThreads.length; sibling++) {
      if ((this.targetsMask & (1 << sibling)) === 0 || sibling === this.sibling) continue;
      sum += loadWord(this.i32, this.ackIndices[sibling], this.atomic);
    }
    return sum;
  }

  private block(index: number, value: number): number {
    this.waitIndex = index;
    this.waitValue = value;
    return KickWait.blocked;
  }

  // ---- the kicked side ----------------------------------------------------------------------------------

  /** When the kick pending for this thread becomes visible to it: sent, plus the IPI's latency. */
  kickVisibleAtCycles(): number {
    return this.mailboxes.kickSentAt(this.thread) + this.ipiDeliveryCycles;
  }

  /** This thread exited for a kick: one more on its acknowledgement counter, then the notify. */
  acknowledge(nowCycles: number): void {
    addWord(this.i32, this.ownAckIndex, 1, this.atomic);
    this.notifier.notify(this.ownAckIndex, nowCycles);
  }

  /**
   * Drops a kick pending while this thread is out of the guest (entering it, or idle): the kicker
   * waited for it to leave, and it did. Not acknowledged (the ack-waiting planted policy depends on
   * that). Returns whether one was pending.
   */
  dropStaleKick(): boolean {
    return this.mailboxes.take(this.thread, Vector.kick) !== 0;
  }
}
