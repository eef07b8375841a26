import { assert } from '../assert.js';

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
 *   (Intel, "Indirect Branch Predictor Barrier" deep dive). Here: each hyperthread has a barrier mark;
 *   entries trained before its last IBPB cannot steer it, entries a sibling trains later can.
 * - STIBP, per logical processor (IA32_SPEC_CTRL bit 1): turned on "to prevent the sibling thread from
 *   controlling branch target buffer" (spectre.rst, "A user process attacking another user process").
 *   Here: a hyperthread with STIBP is steered only by entries it trained itself.
 * - The return stack buffer is per hyperthread; an RSB fill (RSB_CLEAR_LOOPS = 32 calls, "To forcibly
 *   overwrite all entries", arch/x86/include/asm/nospec-branch.h) empties it. IBPB does not: that is
 *   why ASI's control flush does both (RFC v2 patch 27/29: wrmsr PRED_CMD_IBPB, then
 *   fill_return_buffer()).
 *
 * Domains are small integers chosen by the caller (for example 0 kernel, 1 + mm for a process, ...),
 * below `predictorDomainCountMax` so that the domains able to steer a thread fit one bit mask.
 */
export const predictorDomainCountMax = 31;

/** Entries per core. Small on purpose: the model tracks who trained, not prediction accuracy. */
export const predictorEntriesDefault = 16;

export interface BranchPredictorOptions {
  readonly threadsPerCore: number;
  readonly entryCount: number;
  readonly siblingsShare: boolean;
}

const noDomain = -1;

export class BranchPredictor {
  readonly threadsPerCore: number;
  readonly siblingsShare: boolean;
  /** Per entry: the training domain (noDomain when empty), the trainer, and when (a training count). */
  private readonly entryDomain: Int32Array;
  private readonly entryThread: Int32Array;
  private readonly entryStamp: Float64Array;
  /** Per hyperthread: the stamp of its last IBPB, its STIBP bit, and its return stack's domains. */
  private readonly barrierStamp: Float64Array;
  private readonly stibp: Uint8Array;
  private readonly returnStackDomains: Int32Array;
  private stamp = 0;

  constructor(options: BranchPredictorOptions) {
    assert(
      Number.isInteger(options.threadsPerCore) && options.threadsPerCore >= 1 && options.threadsPerCore <= 4,
      `threadsPerCore must be 1..4 (DESIGN.md: smt 1..4), got ${options.threadsPerCore}`,
    );
    assert(
      Number.isInteger(options.entryCount) && options.entryCount >= 1 && options.entryCount <= 4096,
      `entryCount must be 1..4096, got ${options.entryCount}`,
    );
    this.threadsPerCore = options.threadsPerCore;
    this.siblingsShare = options.siblingsShare;
    this.entryDomain = new Int32Array(options.entryCount).fill(noDomain);
    this.entryThread = new Int32Array(options.entryCount);
    this.entryStamp = new Float64Array(options.entryCount);
    this.barrierStamp = new Float64Array(options.threadsPerCore);
    this.stibp = new Uint8Array(options.threadsPerCore);
    this.returnStackDomains = new Int32Array(options.threadsPerCore);
  }

  get entryCount(): number {
    return this.entryDomain.length;
  }

  /**
   * Code of `domain` running on `thread` executes an indirect branch that maps to entry `slot` (any
   * integer: a branch address hash) and a call that leaves a return address: it trains both.
   */
  train(thread: number, domain: number, slot: number): void {
    this.assertThread(thread);
    assertDomain(domain);
    assert(Number.isSafeInteger(slot) && slot >= 0, `slot must be a non-negative integer, got ${slot}`);
    const entry = slot % this.entryDomain.length;
    this.stamp += 1;
    this.entryDomain[entry] = domain;
    this.entryThread[entry] = thread;
    this.entryStamp[entry] = this.stamp;
    this.returnStackDomains[thread] |= 1 << domain;
  }

  /** IBPB on `thread`: nothing trained before it steers that thread's indirect branches afterwards. */
  ibpb(thread: number): void {
    this.assertThread(thread);
    this.stamp += 1;
    this.barrierStamp[thread] = this.stamp;
    assert(this.indirectSteeringMask(thread) === 0, 'IBPB left an entry able to steer its thread');
  }

  /** RSB fill on `thread`: its return stack holds only the fill's own (kernel, harmless) entries. */
  rsbFill(thread: number): void {
    this.assertThread(thread);
    this.returnStackDomains[thread] = 0;
  }

  setStibp(thread: number, enabled: boolean): void {
    this.assertThread(thread);
    this.stibp[thread] = enabled ? 1 : 0;
  }

  stibpEnabled(thread: number): boolean {
    this.assertThread(thread);
    return this.stibp[thread] === 1;
  }

  /** Bit mask of the domains whose indirect-branch training can steer `thread` now. */
  indirectSteeringMask(thread: number): number {
    this.assertThread(thread);
    const barrier = this.barrierStamp[thread];
    const ownOnly = this.stibp[thread] === 1 || !this.siblingsShare;
    let mask = 0;
    for (let entry = 0; entry < this.entryDomain.length; entry++) {
      const domain = this.entryDomain[entry];
      if (domain === noDomain || this.entryStamp[entry] <= barrier) continue;
      if (ownOnly && this.entryThread[entry] !== thread) continue;
      mask |= 1 << domain;
    }
    return mask;
  }

  /** Bit mask of the domains whose return addresses sit in `thread`'s return stack. */
  returnSteeringMask(thread: number): number {
    this.assertThread(thread);
    return this.returnStackDomains[thread];
  }

  /** Can code of `domain` steer `thread`'s speculation now, by an indirect branch or a return? */
  canSteer(thread: number, domain: number): boolean {
    assertDomain(domain);
    const bit = 1 << domain;
    return ((this.indirectSteeringMask(thread) | this.returnSteeringMask(thread)) & bit) !== 0;
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
