import type { PolicyView } from '../policy/policy.js';

/**
 * What the view reads of its hyperthread: exactly a PolicyView (the Hyperthread is one), so a member
 * added to PolicyView needs its getter here and nowhere else.
 */
type ViewedThread = PolicyView;

/**
 * The read-only PolicyView a hyperthread hands its policy's hooks (issue 18). Hooks used to receive
 * the live Hyperthread, so a hook that wrote `view.clockCycles` or `view.phase` corrupted the run
 * (a guest share of 30,570%, no violation). This object is made once per hyperthread; its getters
 * read the thread as it is now (so it is always up to date, with no copy per call), it has no setters
 * (a write throws in strict code and is ignored in sloppy code), and the thread sits in an ES private
 * field, which no code outside this class can reach.
 */
export class ThreadPolicyView implements PolicyView {
  readonly #thread: ViewedThread;

  constructor(thread: ViewedThread) {
    this.#thread = thread;
    Object.freeze(this);
  }

  get thread(): number {
    return this.#thread.thread;
  }
  get sibling(): number {
    return this.#thread.sibling;
  }
  get smt(): number {
    return this.#thread.smt;
  }
  get vmId(): number {
    return this.#thread.vmId;
  }
  get exitReasonName(): string {
    return this.#thread.exitReasonName;
  }
  get switchedToFullSinceEntry(): boolean {
    return this.#thread.switchedToFullSinceEntry;
  }
  get vmmSinceEntry(): boolean {
    return this.#thread.vmmSinceEntry;
  }
  get nmiSinceEntry(): boolean {
    return this.#thread.nmiSinceEntry;
  }
  get interruptSinceEntry(): boolean {
    return this.#thread.interruptSinceEntry;
  }
  get faultedSinceEntry(): boolean {
    return this.#thread.faultedSinceEntry;
  }
  get l1tfFlushL1d(): boolean {
    return this.#thread.l1tfFlushL1d;
  }
  coreWord(): number {
    return this.#thread.coreWord();
  }
  foreignLines(): number {
    return this.#thread.foreignLines();
  }
}
