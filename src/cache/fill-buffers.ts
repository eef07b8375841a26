import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import { sectionAlignI32s } from '../constants.js';
import { acquireCoreLock, releaseCoreLock } from '../kick/core-lock.js';
import { isForeignTo, privateDomain } from '../memory/domains.js';
import { addWord } from '../memory/words.js';
import type { FlushFillBuffersKernel } from './access-kernel.js';
import {
  assertCoreBufferView,
  assertDomainCount,
  type CachedLine,
  type CoreBuffer,
  type CountsView,
  checkAndClearCounts,
  checkLineArguments,
  countValidEntries,
  domainOfOwner,
  foreignLinesFromCounts,
  ownerInvalid,
  ownerOf,
} from './core-buffer.js';
import { CacheDescriptorWord, type KernelSeat, seatByteAddress, seatWords } from './kernel-descriptor.js';

/**
 * A core's line fill buffers, as far as MDS (RIDL, ZombieLoad) cares: the last `entries` lines brought
 * in on misses stay readable by a sibling until VERW empties them. Modelled as a FIFO ring of lines, each
 * tagged with its owner domain like an L1D line. The L1D does not call this; whoever models a miss calls
 * both (`access` here on an L1D miss), and a flush empties both.
 *
 * Section layout (Int32 words from the core's base index, each region derived from the previous):
 *
 *   header   lock, valid-line total, next slot (the oldest once the ring is full)   fillBufferHeaderI32s
 *   counts   valid lines per domain                                               domainCount
 *   entries  per slot: pfn, lineInPage, owner                                     entries x fillBufferEntryI32s
 *   filter   per bucket: valid entries whose line hashes there                    fillBufferFilterBuckets
 *   padding  up to a multiple of 16 words (64 bytes)
 *
 * The filter answers most misses without a scan: a line whose bucket reads 0 is in no entry. In a sim
 * run nearly every access here is a miss (the line just missed in the L1D, and a hit needs it among the
 * last few misses), so without the filter each one scanned every entry (~20 ns of a ~150 ns sim step on
 * the 2-CPU reference machine).
 *
 * A zero-filled section is empty (owner 0 means invalid), so views never initialise memory. With
 * `entries` 0 the section takes no words and every operation is a no-op that reads as empty.
 */

/** Header words. */
export const fillBufferLockI32 = 0;
export const fillBufferValidLinesI32 = fillBufferLockI32 + 1;
/** The slot the next miss fills: slots fill in order from 0 after a flush, so it is also the oldest line. */
export const fillBufferNextSlotI32 = fillBufferValidLinesI32 + 1;
export const fillBufferHeaderI32s = fillBufferNextSlotI32 + 1;

/** Words of one entry. */
export const fillBufferEntryPfnI32 = 0;
export const fillBufferEntryLineInPageI32 = fillBufferEntryPfnI32 + 1;
/** `domain + 1`, 0 when the entry is invalid. */
export const fillBufferEntryOwnerI32 = fillBufferEntryLineInPageI32 + 1;
export const fillBufferEntryI32s = fillBufferEntryOwnerI32 + 1;

/** Buckets of the filter: a power of two, at least twice the most entries (32), so few lines share one. */
export const fillBufferFilterBuckets = 64;

/** The filter bucket of a line: a multiplicative hash of the frame, mixed with the line in the page. */
export function fillBufferFilterBucket(pfn: number, lineInPage: number): number {
  return ((Math.imul(pfn, 0x9e3779b1) >>> 26) ^ lineInPage) & (fillBufferFilterBuckets - 1);
}
/** The exported hash, as this module's hot path calls it. */
const filterBucket = fillBufferFilterBucket;

// The entry layout as `access` reads it.
const pfnWord = fillBufferEntryPfnI32;
const lineInPageWord = fillBufferEntryLineInPageI32;
const ownerWord = fillBufferEntryOwnerI32;
const entryWords = fillBufferEntryI32s;

/** The machine config caps fillBufferEntries at 32 (Skylake has 10, Ice Lake 16); the scan per access is linear. */
export const fillBufferEntriesMax = 32;

/** Offsets of a core's fill-buffer regions from its base index, and the padded size (0 when disabled). */
export interface FillBufferLayout {
  countsI32Offset: number;
  entriesI32Offset: number;
  filterI32Offset: number;
  sizeI32s: number;
}

export function fillBufferLayout(entries: number, domainCount: number): FillBufferLayout {
  assert(
    Number.isInteger(entries) && entries >= 0 && entries <= fillBufferEntriesMax,
    `fill buffer entries must be 0..${fillBufferEntriesMax}, got ${entries}`,
  );
  assertDomainCount(domainCount);
  const countsI32Offset = fillBufferHeaderI32s;
  const entriesI32Offset = countsI32Offset + domainCount;
  const filterI32Offset = entriesI32Offset + entries * fillBufferEntryI32s;
  const endI32Offset = filterI32Offset + fillBufferFilterBuckets;
  const sizeI32s = entries === 0 ? 0 : Math.ceil(endI32Offset / sectionAlignI32s) * sectionAlignI32s;
  assert(
    sizeI32s % sectionAlignI32s === 0 && (entries === 0 || sizeI32s >= endI32Offset),
    'fill buffer padding',
  );
  return { countsI32Offset, entriesI32Offset, filterI32Offset, sizeI32s };
}

/** Int32 words of one core's fill-buffer section: a multiple of 16 (64 bytes), 0 when `entries` is 0. */
export function fillBufferI32s(entries: number, domainCount: number): number {
  return fillBufferLayout(entries, domainCount).sizeI32s;
}

export class CoreFillBuffers implements CoreBuffer {
  readonly entries: number;
  readonly domainCount: number;
  /**
   * Where the section begins in the machine buffer's view (the access kernel derives the regions from it,
   * as fillBufferLayout does); with no entries the section is empty and the views read a private header.
   */
  readonly baseI32Index: number;
  private readonly i32: Int32Array;
  private readonly lockI32Index: number;
  private readonly validLinesI32Index: number;
  private readonly nextSlotI32Index: number;
  private readonly countsI32Index: number;
  private readonly entriesI32Index: number;
  private readonly filterI32Index: number;

  private readonly concurrent: boolean;
  /** The access kernel's `flushFillBuffers` over the memory that holds `i32` (a sim machine), or null. */
  private readonly flushKernel: FlushFillBuffersKernel | null;
  /** The Int32 index of the core's cache descriptor in the kernel's memory (-1 without a kernel). */
  readonly descriptorI32Index: number;

  /**
   * @param concurrent false when one thread drives every hyperthread (sim): the core lock is skipped.
   * @param seat the access kernel over the memory that holds `i32` (its `flushFillBuffers` flushes) and
   *   the core's cache descriptor, whose fill-buffer words are written here; null without a kernel
   */
  constructor(
    i32: Int32Array,
    baseI32Index: number,
    entries: number,
    domainCount: number,
    concurrent = true,
    seat: KernelSeat | null = null,
  ) {
    this.concurrent = concurrent;
    this.flushKernel = seat === null ? null : seat.kernels.flushFillBuffers;
    this.descriptorI32Index = seat === null ? -1 : seat.descriptor.i32Index;
    const layout = fillBufferLayout(entries, domainCount);
    if (seat !== null) {
      // Byte addresses in the kernel's memory of the section and its parts (none with 0 entries: the
      // kernel's `access` then skips the buffers and `flush` returns before its kernel).
      const words = seatWords(seat);
      const word = CacheDescriptorWord;
      words[word.fillBuffers] = seatByteAddress(seat, baseI32Index);
      words[word.fillBufferEntries] = entries;
      words[word.fillBufferFirst] = seatByteAddress(seat, baseI32Index + layout.entriesI32Offset);
      words[word.fillBufferFilter] = seatByteAddress(seat, baseI32Index + layout.filterI32Offset);
    }
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
    this.countsI32Index = viewBaseI32Index + layout.countsI32Offset;
    this.entriesI32Index = viewBaseI32Index + layout.entriesI32Offset;
    this.filterI32Index = viewBaseI32Index + layout.filterI32Offset;
  }

  access(pfn: number, lineInPage: number, domain: number): boolean {
    // The checks are a function of their own, so the hot path stays short when they are off.
    if (assertDebugEnabled) checkLineArguments('fill buffer', pfn, lineInPage, domain, this.domainCount);
    if (this.entries === 0) return false;
    if (!this.concurrent) return this.accessHeld(pfn, lineInPage, domain);
    acquireCoreLock(this.i32, this.lockI32Index);
    const hit = this.accessHeld(pfn, lineInPage, domain);
    releaseCoreLock(this.i32, this.lockI32Index);
    return hit;
  }

  /**
   * `access` with the core lock held (or no lock needed: the sim). Apart from `access`, so that the
   * lock's Atomics calls are not compiled into the same function as the scan: on a replica of the
   * fill-buffer access, having them there (untaken) made it ~1.8x slower.
   */
  private accessHeld(pfn: number, lineInPage: number, domain: number): boolean {
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
          this.recount(entryOwner, owner);
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
    this.recount(oldOwner, owner);
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

  /** The counts after an entry's owner changed from `oldOwner` (ownerInvalid: it was empty) to `newOwner`. */
  private recount(oldOwner: number, newOwner: number): void {
    const i32 = this.i32;
    if (oldOwner === ownerInvalid) {
      addWord(i32, this.validLinesI32Index, 1, this.concurrent);
    } else {
      const left = addWord(i32, this.countsI32Index + domainOfOwner(oldOwner), -1, this.concurrent) - 1;
      assertDebug(left >= 0, 'fill buffer: domain count went negative on eviction');
    }
    addWord(i32, this.countsI32Index + domainOfOwner(newOwner), 1, this.concurrent);
  }

  flush(): number {
    if (this.entries === 0) return 0;
    const i32 = this.i32;
    if (this.concurrent) acquireCoreLock(i32, this.lockI32Index);
    const counted =
      this.flushKernel !== null ? this.flushKernel(this.descriptorI32Index) : this.flushEntries();
    // The valid entries, whether or not the filter's buckets added up to them.
    const dropped = counted >= 0 ? counted : -1 - counted;
    checkAndClearCounts(
      i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      dropped,
      'fill buffer',
      this.concurrent,
    );
    // The paired check of the filter: its buckets counted the same valid entries.
    if (counted < 0) assert(false, 'fill buffer flush: filter buckets and valid entries disagree');
    if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
    return dropped;
  }

  /**
   * Counts the valid entries and sums the filter's buckets, then zeroes entries and filter and restarts
   * the ring at slot 0. Returns the valid entries when the buckets add up to them, else -1 - that count
   * (the work the access kernel's `flushFillBuffers` transcribes).
   */
  private flushEntries(): number {
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
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      'fill buffer count: domain out of range',
    );
    return Atomics.load(this.i32, this.countsI32Index + domain);
  }

  validLines(): number {
    return Atomics.load(this.i32, this.validLinesI32Index);
  }

  countsView(): CountsView {
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

  firstForeignLine(vmId: number): CachedLine | null {
    assert(
      Number.isInteger(vmId) && vmId >= 0 && privateDomain(vmId) < this.domainCount,
      `fill buffer firstForeignLine: no VM ${vmId} among ${this.domainCount} domains`,
    );
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
