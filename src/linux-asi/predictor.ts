import { assert } from '../assert.js';
import { predictorEntriesPerCore, predictorI32s } from '../memory/sub-layouts.js';

/**
 * A small per-core branch predictor: what INV-15 needs to know, not how a BTB indexes.
 *
 * - Indirect branch predictor entries (BTB) are shared by a core's hyperthreads: "level 1 cache and
 *   branch target buffer (BTB) may be shared between hardware threads in a CPU core. A malicious
 *   program running on the sibling thread may influence its peer's BTB" (Linux
 *   Documentation/admin-guide/hw-vuln/spectre.rst, "Spectre variant 2"). `siblingsShare: false` models
 *   a core whose predictors are per thread.
 * - Each entry is tagged with the domain whose code trained it and the hyperthread that ran it.
 * - IBPB is per logical processor: "Software that executed before the barrier cannot control the
 *   predicted targets of indirect branches executed after the barrier on the same logical processor"
 *   (Intel, "Indirect Branch Predictor Barrier" deep dive). Here: each entry keeps the hyperthreads it
 *   may still steer; an IBPB takes its thread out of every entry, and an entry a sibling trains later
 *   steers every thread again.
 * - STIBP, per logical processor (IA32_SPEC_CTRL bit 1): turned on "to prevent the sibling thread from
 *   controlling branch target buffer" (spectre.rst, "A user process attacking another user process").
 *   Here: a hyperthread with STIBP is steered only by entries it trained itself.
 * - The return stack buffer is per hyperthread; an RSB fill (RSB_CLEAR_LOOPS = 32 calls, "To forcibly
 *   overwrite all entries", arch/x86/include/asm/nospec-branch.h) empties it. IBPB does not: that is
 *   why ASI's control flush does both (RFC v2 patch 27/29: wrmsr PRED_CMD_IBPB, then
 *   fill_return_buffer()).
 *
 * The state lives in Int32 words (the core's record in the machine buffer: memory/sub-layouts.ts), so
 * every view of a machine, each worker of the workers backend included, shares one predictor per core.
 *
 * Domains are small integers chosen by the caller (for example 0 kernel, 1 + mm for a process, ...),
 * below `predictorDomainCountMax` so that the domains able to steer a thread fit one bit mask.
 */
export const predictorDomainCountMax = 31;

/** Entries per core (memory/sub-layouts.ts sizes the buffer's record with it). */
export const predictorEntriesDefault = predictorEntriesPerCore;

export interface BranchPredictorOptions {
  readonly threadsPerCore: number;
  readonly entryCount: number;
  readonly siblingsShare: boolean;
  /**
   * The predictor's words (`predictorI32s(entryCount, threadsPerCore)` of them: a core's record in the
   * machine buffer, memory/layout.ts `corePredictorIndex`), all 0 for an empty predictor. Two predictors
   * over the same words (two workers' views of one core) are one predictor. Absent: words of its own.
   */
  readonly words?: Int32Array;
  /**
   * Whether other threads write the words at the same time (a machine made `concurrent`: the workers
   * backend): writes are then atomic. Otherwise plain (the sim: one thread; faster). Default true.
   */
  readonly concurrent?: boolean;
}

/**
 * An entry is one word: its domain (bits 0..4), the hyperthread that trained it (bits 5..6), and the
 * hyperthreads it may still steer (bits 7..10, one per thread). Training writes all threads' bits; an
 * IBPB on thread t clears bit t in every entry. That is the barrier's rule as stamps would state it (an
 * entry trained before t's last IBPB cannot steer t, one trained after can), and each change is one
 * atomic write of one word, so siblings on workers need no lock. An empty entry is 0: it steers no one.
 */
const entryThreadShift = 5;
const entryThreadMask = 0b11;
const entryDomainMask = 0b11111;
const entryMaySteerShift = 7;

export class BranchPredictor {
  readonly threadsPerCore: number;
  readonly siblingsShare: boolean;
  readonly entryCount: number;
  /** The record: entries, then per hyperthread its STIBP word, then its return stack's domain mask. */
  private readonly words: Int32Array;
  private readonly stibpAt: number;
  private readonly returnStackAt: number;
  /** An entry word's steer bits with every hyperthread set: what a training writes. */
  private readonly allThreads: number;
  private readonly concurrent: boolean;

  constructor(options: BranchPredictorOptions) {
    assert(
      Number.isInteger(options.threadsPerCore) && options.threadsPerCore >= 1 && options.threadsPerCore <= 4,
      `threadsPerCore must be 1..4 (DESIGN.md: smt 1..4), got ${options.threadsPerCore}`,
    );
    assert(
      Number.isInteger(options.entryCount) && options.entryCount >= 1 && options.entryCount <= 4096,
      `entryCount must be 1..4096, got ${options.entryCount}`,
    );
    const length = predictorI32s(options.entryCount, options.threadsPerCore);
    assert(
      options.words === undefined || options.words.length === length,
      `predictor words: ${length} expected, got ${options.words?.length}`,
    );
    this.threadsPerCore = options.threadsPerCore;
    this.siblingsShare = options.siblingsShare;
    this.entryCount = options.entryCount;
    this.words = options.words ?? new Int32Array(length);
    this.stibpAt = options.entryCount;
    this.returnStackAt = options.entryCount + options.threadsPerCore;
    this.allThreads = ((1 << options.threadsPerCore) - 1) << entryMaySteerShift;
    this.concurrent = options.concurrent ?? true;
  }

  /**
   * Code of `domain` running on `thread` executes an indirect branch that maps to entry `slot` (any
   * integer: a branch address hash) and a call that leaves a return address: it trains both.
   */
  train(thread: number, domain: number, slot: number): void {
    this.assertThread(thread);
    assertDomain(domain);
    assert(Number.isSafeInteger(slot) && slot >= 0, `slot must be a non-negative integer, got ${slot}`);
    const entry = slot % this.entryCount;
    const word = domain | (thread << entryThreadShift) | this.allThreads;
    const returnStack = this.returnStackAt + thread;
    if (this.concurrent) {
      Atomics.store(this.words, entry, word);
      Atomics.or(this.words, returnStack, 1 << domain);
    } else {
      this.words[entry] = word;
      this.words[returnStack] |= 1 << domain;
    }
  }

  /** IBPB on `thread`: nothing trained before it steers that thread's indirect branches afterwards. */
  ibpb(thread: number): void {
    this.assertThread(thread);
    const keep = ~(1 << (entryMaySteerShift + thread));
    // No check that nothing steers `thread` after: on workers a sibling may train an entry between this
    // loop and such a check, and that entry may steer it (it came after the barrier).
    if (this.concurrent)
      for (let entry = 0; entry < this.entryCount; entry++) Atomics.and(this.words, entry, keep);
    else for (let entry = 0; entry < this.entryCount; entry++) this.words[entry] &= keep;
  }

  /** RSB fill on `thread`: its return stack holds only the fill's own (kernel, harmless) entries. */
  rsbFill(thread: number): void {
    this.assertThread(thread);
    this.store(this.returnStackAt + thread, 0);
  }

  setStibp(thread: number, enabled: boolean): void {
    this.assertThread(thread);
    this.store(this.stibpAt + thread, enabled ? 1 : 0);
  }

  stibpEnabled(thread: number): boolean {
    this.assertThread(thread);
    return this.words[this.stibpAt + thread] === 1;
  }

  /** Bit mask of the domains whose indirect-branch training can steer `thread` now. */
  indirectSteeringMask(thread: number): number {
    const ownOnly = this.stibpEnabled(thread) || !this.siblingsShare;
    const steers = 1 << (entryMaySteerShift + thread);
    const words = this.words;
    let mask = 0;
    // Plain reads (here and below): each word is read whole, and a sibling's write racing a read is one
    // the hardware could order either side of it too.
    for (let entry = 0; entry < this.entryCount; entry++) {
      const word = words[entry];
      if ((word & steers) === 0) continue;
      if (ownOnly && ((word >> entryThreadShift) & entryThreadMask) !== thread) continue;
      mask |= 1 << (word & entryDomainMask);
    }
    return mask;
  }

  /** Bit mask of the domains whose return addresses sit in `thread`'s return stack. */
  returnSteeringMask(thread: number): number {
    this.assertThread(thread);
    return this.words[this.returnStackAt + thread];
  }

  /** Can code of `domain` steer `thread`'s speculation now, by an indirect branch or a return? */
  canSteer(thread: number, domain: number): boolean {
    assertDomain(domain);
    const bit = 1 << domain;
    return ((this.indirectSteeringMask(thread) | this.returnSteeringMask(thread)) & bit) !== 0;
  }

  private store(index: number, value: number): void {
    if (this.concurrent) Atomics.store(this.words, index, value);
    else this.words[index] = value;
  }

  private assertThread(thread: number): void {
    assert(
      Number.isInteger(thread) && thread >= 0 && thread < this.threadsPerCore,
      `thread must be 0..${this.threadsPerCore - 1}, got ${thread}`,
    );
  }
}

function assertDomain(domain: number): void {
  assert(
    Number.isInteger(domain) && domain >= 0 && domain < predictorDomainCountMax,
    `predictor domain must be 0..${predictorDomainCountMax - 1}, got ${domain}`,
  );
}
