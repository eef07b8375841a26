/**
 * The wait interface between a hyperthread state machine and its backend (kicker.ts states the
 * protocol this serves). The state machine never blocks: a step that cannot go on sets a `WordWait` and
 * returns, and the backend blocks it (sim: parks it in virtual time; workers: spins, then
 * Atomics.wait with a timeout, backend/workers/waiter.ts). Whoever changes a word that someone may
 * wait on tells the backend through `Notifier.notify`, after the change.
 */

/** A thread's wait: while word `waitIndex` of the machine buffer still holds `waitValue`, until the deadline. */
export interface WordWait {
  /** The i32 index of the word waited on (a core word, a mailbox, an acknowledgement counter). */
  readonly waitIndex: number;
  /** The value last read from it: the wait ends as soon as the word holds any other. */
  readonly waitValue: number;
  /** Virtual time at which the wait ends anyway (+Infinity: none; the workers backend adds a timeout). */
  readonly waitDeadlineCycles: number;
}

export interface Notifier {
  /**
   * Word `i32Index` changed: wake whoever waits on it. `nowCycles` is the notifying thread's clock (the
   * sim moves a thread it wakes to that time; the workers backend has real time and ignores it).
   */
  notify(i32Index: number, nowCycles: number): void;
}
