import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import { privateDomain } from '../memory/domains.js';
import {
  type CountsView,
  checkAndClearCounts,
  domainOfOwner,
  foreignLinesFromCounts,
  ownerInvalid,
} from './core-buffer.js';

/**
 * The bookkeeping a core buffer of lines keeps beside its lines (the L1D's and the fill buffers', which
 * wrote it twice: duplicates D1 of issue 21): the valid-line total and the per-domain counts in the
 * section's header, which INV-2 reads in O(1) from other threads. Updates are `Atomics` operations: in
 * the workers backend a monitor reads the counts while a sibling writes them. (The sim's accelerated
 * path makes its accesses in the kernel, accel/access-kernel.wat, and only its rare fallbacks come here.)
 */
export class LineCounts {
  readonly i32: Int32Array;
  readonly validLinesI32Index: number;
  readonly countsI32Index: number;
  readonly domainCount: number;
  /** Names the buffer in messages ('l1d', 'fill buffer'). */
  private readonly what: string;

  constructor(
    i32: Int32Array,
    validLinesI32Index: number,
    countsI32Index: number,
    domainCount: number,
    what: string,
  ) {
    this.i32 = i32;
    this.validLinesI32Index = validLinesI32Index;
    this.countsI32Index = countsI32Index;
    this.domainCount = domainCount;
    this.what = what;
  }

  /** A slot whose owner was `oldOwner` (ownerInvalid: it was empty) now holds a line of `newOwner`. */
  refill(oldOwner: number, newOwner: number): void {
    const i32 = this.i32;
    if (oldOwner === ownerInvalid) {
      Atomics.add(i32, this.validLinesI32Index, 1);
    } else {
      const left = Atomics.sub(i32, this.countsI32Index + domainOfOwner(oldOwner), 1) - 1;
      if (assertDebugEnabled) assertDebug(left >= 0, `${this.what}: domain count went negative on eviction`);
    }
    Atomics.add(i32, this.countsI32Index + domainOfOwner(newOwner), 1);
  }

  /** A valid line's frame changed owner from `oldOwner` to `newOwner` (freed and reallocated, converted). */
  retag(oldOwner: number, newOwner: number): void {
    Atomics.sub(this.i32, this.countsI32Index + domainOfOwner(oldOwner), 1);
    Atomics.add(this.i32, this.countsI32Index + domainOfOwner(newOwner), 1);
  }

  /**
   * A flush dropped `dropped` lines: the paired check against the counts, then the counts back to 0.
   * `shared` false: no other thread reads the counts (a machine one thread drives, on the accelerated
   * path), so plain loads and stores do; a flush comes every few steps under asi, and the Atomics of
   * the shared case cost the sim ~3% (measured against 325947d).
   */
  clearAfterFlush(dropped: number, shared: boolean): void {
    checkAndClearCounts(
      this.i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      dropped,
      this.what,
      shared,
    );
  }

  count(domain: number): number {
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      `${this.what} count: domain out of range`,
    );
    return Atomics.load(this.i32, this.countsI32Index + domain);
  }

  validLines(): number {
    return Atomics.load(this.i32, this.validLinesI32Index);
  }

  view(): CountsView {
    return {
      i32: this.i32,
      validLinesI32Index: this.validLinesI32Index,
      countsI32Index: this.countsI32Index,
      domainCount: this.domainCount,
    };
  }

  foreignLines(vmId: number): number {
    return foreignLinesFromCounts(this.i32, this.countsI32Index, this.domainCount, vmId);
  }

  /** The check of `firstForeignLine`'s argument. */
  assertVm(vmId: number): void {
    assert(
      Number.isInteger(vmId) && vmId >= 0 && privateDomain(vmId) < this.domainCount,
      `${this.what} firstForeignLine: no VM ${vmId} among ${this.domainCount} domains`,
    );
  }
}
