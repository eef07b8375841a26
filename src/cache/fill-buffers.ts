import { assert, assertDebugEnabled } from '../assert.js';
import { acquireCoreLock, releaseCoreLock } from '../kick/core-lock.js';
import { isForeignTo } from '../memory/domains.js';
import {
  fillBufferEntryI32s,
  fillBufferEntryLineInPageI32,
  fillBufferEntryOwnerI32,
  fillBufferEntryPfnI32,
  fillBufferFilterBuckets,
  fillBufferHeaderI32s,
  fillBufferLayout,
  fillBufferLockI32,
  fillBufferNextSlotI32,
  fillBufferValidLinesI32,
  frameHashMultiplier,
} from '../memory/sub-layouts.js';
import {
  assertCoreBufferView,
  type CachedLine,
  type CoreBuffer,
  type CountsView,
  checkLineArguments,
  countValidEntries,
  domainOfOwner,
  ownerInvalid,
  ownerOf,
} from './core-buffer.js';
import { LineCounts } from './line-counts.js';

// The section's layout is declared with the other sub-layouts (memory/sub-layouts.ts).

/**
 * A core's line fill buffers, as far as MDS (RIDL, ZombieLoad) cares: the last `entries` lines brought
 * in on misses stay readable by a sibling until VERW empties them. Modelled as a FIFO ring of lines, each
 * tagged with its owner domain like an L1D line. The L1D does not call this; whoever models a miss calls
 * both (`access` here on an L1D miss), and a flush empties both.
 *
 * Section layout: memory/sub-layouts.ts (header, per-domain counts, entries, filter).
 *
 * The filter answers most misses without a scan: a line whose bucket reads 0 is in no entry. In a sim
 * run nearly every access here is a miss (the line just missed in the L1D, and a hit needs it among the
 * last few misses), so without the filter each one scanned every entry (~20 ns of a ~150 ns sim step on
 * the 2-CPU reference machine).
 *
 * A zero-filled section is empty (owner 0 means invalid), so views never initialise memory. With
 * `entries` 0 the section takes no words and every operation is a no-op that reads as empty.
 */

/** The filter bucket of a line: a multiplicative hash of the frame, mixed with the line in the page. */
export function fillBufferFilterBucket(pfn: number, lineInPage: number): number {
  return (
    ((Math.imul(pfn, frameHashMultiplier) >>> (32 - Math.log2(fillBufferFilterBuckets))) ^ lineInPage) &
    (fillBufferFilterBuckets - 1)
  );
}
/** The exported hash, as this module's hot path calls it. */
const filterBucket = fillBufferFilterBucket;

// The entry layout as `access` reads it.
const pfnWord = fillBufferEntryPfnI32;
const lineInPageWord = fillBufferEntryLineInPageI32;
const ownerWord = fillBufferEntryOwnerI32;
const entryWords = fillBufferEntryI32s;

export class CoreFillBuffers implements CoreBuffer {
  readonly entries: number;
  readonly domainCount: number;
  /**
   * Where the section begins in the machine buffer's view; with no entries the section is empty and the
   * views read a private header.
   */
  readonly baseI32Index: number;
  private readonly i32: Int32Array;
  private readonly lockI32Index: number;
  private readonly validLinesI32Index: number;
  private readonly nextSlotI32Index: number;
  private readonly entriesI32Index: number;
  private readonly filterI32Index: number;
  /** The valid-line total and per-domain counts (line-counts.ts). */
  private readonly counts: LineCounts;

  constructor(i32: Int32Array, baseI32Index: number, entries: number, domainCount: number) {
    const layout = fillBufferLayout(entries, domainCount);
    this.entries = entries;
    this.domainCount = domainCount;
    this.baseI32Index = baseI32Index;
    let viewI32 = i32;
    let viewBaseI32Index = baseI32Index;
    if (entries === 0) {
      // Disabled buffers own no words of the machine buffer. Reads go to a private zeroed header so that
      // count/validLines/foreignLines need no branch; access and flush never write it.
      viewI32 = new Int32Array(
        new SharedArrayBuffer((fillBufferHeaderI32s + domainCount) * Int32Array.BYTES_PER_ELEMENT),
      );
      viewBaseI32Index = 0;
    } else {
      assertCoreBufferView(i32, baseI32Index, layout.sizeI32s);
    }
    this.i32 = viewI32;
    this.lockI32Index = viewBaseI32Index + fillBufferLockI32;
    this.validLinesI32Index = viewBaseI32Index + fillBufferValidLinesI32;
    this.nextSlotI32Index = viewBaseI32Index + fillBufferNextSlotI32;
    this.entriesI32Index = viewBaseI32Index + layout.entriesI32Offset;
    this.filterI32Index = viewBaseI32Index + layout.filterI32Offset;
    this.counts = new LineCounts(
      viewI32,
      this.validLinesI32Index,
      viewBaseI32Index + layout.countsI32Offset,
      domainCount,
      'fill buffer',
    );
  }

  /** The access with the core lock held around it (the reference path of any backend). */
  access(pfn: number, lineInPage: number, domain: number): boolean {
    // The checks (ASI_EMU_DEBUG=1, a run the accelerated path never serves) are a function of their own,
    // so the hot path stays short when they are off; before the lock, which a throw would leave held.
    if (assertDebugEnabled) checkLineArguments('fill buffer', pfn, lineInPage, domain, this.domainCount);
    if (this.entries === 0) return this.accessHeld(pfn, lineInPage, domain);
    acquireCoreLock(this.i32, this.lockI32Index);
    const hit = this.accessHeld(pfn, lineInPage, domain);
    releaseCoreLock(this.i32, this.lockI32Index);
    return hit;
  }

  /**
   * `access` with the core lock held, or none needed (one thread drives the machine). Apart from
   * `access`, so that the lock's Atomics calls are not compiled into the same function as the scan: on a
   * replica of the fill-buffer access, having them there (untaken) made it ~1.8x slower.
   */
  accessHeld(pfn: number, lineInPage: number, domain: number): boolean {
    if (this.entries === 0) return false;
    return this.accessEntries(pfn, lineInPage, domain);
  }

  /** `accessHeld` of enabled buffers. */
  private accessEntries(pfn: number, lineInPage: number, domain: number): boolean {
    const i32 = this.i32;
    const owner = ownerOf(domain);
    const firstI32Index = this.entriesI32Index;
    const bucketI32Index = this.filterI32Index + filterBucket(pfn, lineInPage);
    if (i32[bucketI32Index] !== 0) {
      const hitI32Index = this.find(pfn, lineInPage);
      if (hitI32Index >= 0) {
        // Same line again: it keeps its place in the FIFO; only a changed owner is retagged.
        const entryOwner = i32[hitI32Index + ownerWord];
        if (entryOwner !== owner) {
          i32[hitI32Index + ownerWord] = owner;
          this.counts.retag(entryOwner, owner);
        }
        return true;
      }
    }
    const slot = i32[this.nextSlotI32Index];
    const slotI32Index = firstI32Index + slot * entryWords;
    const oldOwner = i32[slotI32Index + ownerWord];
    if (oldOwner !== ownerInvalid) {
      i32[
        this.filterI32Index + filterBucket(i32[slotI32Index + pfnWord], i32[slotI32Index + lineInPageWord])
      ]--;
    }
    i32[bucketI32Index]++;
    i32[slotI32Index + pfnWord] = pfn;
    i32[slotI32Index + lineInPageWord] = lineInPage;
    i32[slotI32Index + ownerWord] = owner;
    i32[this.nextSlotI32Index] = slot + 1 === this.entries ? 0 : slot + 1;
    this.counts.refill(oldOwner, owner);
    return false;
  }

  /**
   * The entry holding the line, or -1. Entries are only invalidated all at once (flush, which also
   * restarts the ring at slot 0), and the ring fills in slot order, so the valid entries are the first
   * `validLines` slots: an empty or half-full buffer is not scanned past its last line.
   */
  private find(pfn: number, lineInPage: number): number {
    const i32 = this.i32;
    const validEndI32Index = this.entriesI32Index + i32[this.validLinesI32Index] * entryWords;
    // Both words in one test: with a guest's few hot pages the frame alone often matches, and a second
    // branch on the line would mispredict.
    for (
      let entryI32Index = this.entriesI32Index;
      entryI32Index < validEndI32Index;
      entryI32Index += entryWords
    ) {
      if (((i32[entryI32Index + pfnWord] ^ pfn) | (i32[entryI32Index + lineInPageWord] ^ lineInPage)) === 0)
        return entryI32Index;
    }
    return -1;
  }

  /** The flush with the core lock held around it (the reference path). */
  flush(): number {
    if (this.entries === 0) return 0;
    acquireCoreLock(this.i32, this.lockI32Index);
    const dropped = this.finishFlush(this.flushEntries());
    releaseCoreLock(this.i32, this.lockI32Index);
    return dropped;
  }

  /**
   * The rest of a flush, with the core lock held or none needed, after `flushEntries` (or the
   * accelerated path's kernel, which transcribes it) returned `counted`: the paired checks of the counts
   * and the filter, and the counts' reset. Returns the entries dropped. `shared`: whether other threads
   * read the counts (line-counts.ts `clearAfterFlush`).
   */
  finishFlush(counted: number, shared = true): number {
    // The valid entries, whether or not the filter's buckets added up to them.
    const dropped = counted >= 0 ? counted : -1 - counted;
    this.counts.clearAfterFlush(dropped, shared);
    // The paired check of the filter: its buckets counted the same valid entries.
    if (counted < 0) assert(false, 'fill buffer flush: filter buckets and valid entries disagree');
    return dropped;
  }

  /**
   * Counts the valid entries and sums the filter's buckets, then zeroes entries and filter and restarts
   * the ring at slot 0. Returns the valid entries when the buckets add up to them, else -1 - that count
   * (the work the access kernel's `flushFillBuffers` transcribes). The caller holds the core lock (or
   * needs none), has checked that the buffers have entries, and calls `finishFlush` after.
   */
  flushEntries(): number {
    const i32 = this.i32;
    const entriesEndI32Index = this.entriesI32Index + this.entries * fillBufferEntryI32s;
    const valid = countValidEntries(
      i32,
      this.entriesI32Index,
      entriesEndI32Index,
      fillBufferEntryI32s,
      fillBufferEntryOwnerI32,
    );
    let filtered = 0;
    for (let bucket = 0; bucket < fillBufferFilterBuckets; bucket++)
      filtered += i32[this.filterI32Index + bucket];
    // Entries and the filter after them, in one fill.
    i32.fill(0, this.entriesI32Index, this.filterI32Index + fillBufferFilterBuckets);
    i32[this.nextSlotI32Index] = 0;
    return filtered === valid ? valid : -1 - valid;
  }

  count(domain: number): number {
    return this.counts.count(domain);
  }

  validLines(): number {
    return this.counts.validLines();
  }

  countsView(): CountsView {
    return this.counts.view();
  }

  foreignLines(vmId: number): number {
    return this.counts.foreignLines(vmId);
  }

  firstForeignLine(vmId: number): CachedLine | null {
    this.counts.assertVm(vmId);
    for (const line of this.peek()) {
      if (isForeignTo(line.domain, vmId)) return line;
    }
    return null;
  }

  /** The valid lines, oldest (next to be evicted) first. Non-mutating; for tests and reports. */
  peek(): CachedLine[] {
    const lines: CachedLine[] = [];
    if (this.entries === 0) return lines;
    const i32 = this.i32;
    const nextSlot = i32[this.nextSlotI32Index];
    for (let step = 0; step < this.entries; step++) {
      const slot = (nextSlot + step) % this.entries;
      const entryI32Index = this.entriesI32Index + slot * fillBufferEntryI32s;
      const owner = i32[entryI32Index + fillBufferEntryOwnerI32];
      if (owner === ownerInvalid) continue;
      lines.push({
        pfn: i32[entryI32Index + fillBufferEntryPfnI32],
        lineInPage: i32[entryI32Index + fillBufferEntryLineInPageI32],
        domain: domainOfOwner(owner),
      });
    }
    return lines;
  }
}
