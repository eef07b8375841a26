import { assert, assertDebug } from '../assert.js';
import { framesMax, linesPerPage, sectionAlignI32s } from '../constants.js';
import { isForeignTo, privateDomain } from '../memory/domains.js';
import {
  acquireCoreLock,
  assertCoreBufferView,
  assertDomainCount,
  type CachedLine,
  type CoreBuffer,
  checkAndClearCounts,
  countValidEntries,
  domainOfOwner,
  foreignLinesFromCounts,
  ownerInvalid,
  ownerOf,
  releaseCoreLock,
} from './core-buffer.js';

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
 *   padding  up to a multiple of 16 words (64 bytes)
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

/** The machine config caps fillBufferEntries at 32 (Skylake has 10, Ice Lake 16); the scan per access is linear. */
export const fillBufferEntriesMax = 32;

/** Offsets of a core's fill-buffer regions from its base index, and the padded size (0 when disabled). */
export interface FillBufferLayout {
  countsI32Offset: number;
  entriesI32Offset: number;
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
  const endI32Offset = entriesI32Offset + entries * fillBufferEntryI32s;
  const sizeI32s = entries === 0 ? 0 : Math.ceil(endI32Offset / sectionAlignI32s) * sectionAlignI32s;
  assert(
    sizeI32s % sectionAlignI32s === 0 && (entries === 0 || sizeI32s >= endI32Offset),
    'fill buffer padding',
  );
  return { countsI32Offset, entriesI32Offset, sizeI32s };
}

/** Int32 words of one core's fill-buffer section: a multiple of 16 (64 bytes), 0 when `entries` is 0. */
export function fillBufferI32s(entries: number, domainCount: number): number {
  return fillBufferLayout(entries, domainCount).sizeI32s;
}

export class CoreFillBuffers implements CoreBuffer {
  readonly entries: number;
  readonly domainCount: number;
  private readonly i32: Int32Array;
  private readonly lockI32Index: number;
  private readonly validLinesI32Index: number;
  private readonly nextSlotI32Index: number;
  private readonly countsI32Index: number;
  private readonly entriesI32Index: number;

  /** @param concurrent false when one thread drives every hyperthread (sim): the core lock is skipped. */
  constructor(
    i32: Int32Array,
    baseI32Index: number,
    entries: number,
    domainCount: number,
    private readonly concurrent = true,
  ) {
    const layout = fillBufferLayout(entries, domainCount);
    this.entries = entries;
    this.domainCount = domainCount;
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
  }

  access(pfn: number, lineInPage: number, domain: number): boolean {
    assertDebug(
      Number.isInteger(pfn) && pfn >= 0 && pfn <= framesMax,
      'fill buffer access: pfn must be an integer 0..framesMax',
    );
    assertDebug(
      Number.isInteger(lineInPage) && lineInPage >= 0 && lineInPage < linesPerPage,
      'fill buffer access: lineInPage must be an integer 0..63',
    );
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      'fill buffer access: domain must be an integer 0..domainCount-1',
    );
    if (this.entries === 0) return false;
    const i32 = this.i32;
    const owner = ownerOf(domain);
    const entriesEndI32Index = this.entriesI32Index + this.entries * fillBufferEntryI32s;
    if (this.concurrent) acquireCoreLock(i32, this.lockI32Index);
    for (
      let entryI32Index = this.entriesI32Index;
      entryI32Index < entriesEndI32Index;
      entryI32Index += fillBufferEntryI32s
    ) {
      const entryOwner = i32[entryI32Index + fillBufferEntryOwnerI32];
      if (
        i32[entryI32Index + fillBufferEntryPfnI32] === pfn &&
        i32[entryI32Index + fillBufferEntryLineInPageI32] === lineInPage &&
        entryOwner !== ownerInvalid
      ) {
        // Same line again: it keeps its place in the FIFO; only a changed owner is retagged.
        if (entryOwner !== owner) {
          i32[entryI32Index + fillBufferEntryOwnerI32] = owner;
          Atomics.sub(i32, this.countsI32Index + domainOfOwner(entryOwner), 1);
          Atomics.add(i32, this.countsI32Index + domain, 1);
        }
        if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
        return true;
      }
    }
    const slot = i32[this.nextSlotI32Index];
    assertDebug(slot >= 0 && slot < this.entries, 'fill buffer: next slot out of range');
    const entryI32Index = this.entriesI32Index + slot * fillBufferEntryI32s;
    const oldOwner = i32[entryI32Index + fillBufferEntryOwnerI32];
    if (oldOwner === ownerInvalid) {
      Atomics.add(i32, this.validLinesI32Index, 1);
    } else {
      const left = Atomics.sub(i32, this.countsI32Index + domainOfOwner(oldOwner), 1) - 1;
      assertDebug(left >= 0, 'fill buffer: domain count went negative on eviction');
    }
    i32[entryI32Index + fillBufferEntryPfnI32] = pfn;
    i32[entryI32Index + fillBufferEntryLineInPageI32] = lineInPage;
    i32[entryI32Index + fillBufferEntryOwnerI32] = owner;
    Atomics.add(i32, this.countsI32Index + domain, 1);
    i32[this.nextSlotI32Index] = slot + 1 === this.entries ? 0 : slot + 1;
    if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
    return false;
  }

  flush(): number {
    if (this.entries === 0) return 0;
    const i32 = this.i32;
    if (this.concurrent) acquireCoreLock(i32, this.lockI32Index);
    const entriesEndI32Index = this.entriesI32Index + this.entries * fillBufferEntryI32s;
    const dropped = countValidEntries(
      i32,
      this.entriesI32Index,
      entriesEndI32Index,
      fillBufferEntryI32s,
      fillBufferEntryOwnerI32,
    );
    checkAndClearCounts(
      i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      dropped,
      'fill buffer',
    );
    i32.fill(0, this.entriesI32Index, entriesEndI32Index);
    i32[this.nextSlotI32Index] = 0;
    if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
    return dropped;
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

  foreignLines(vmId: number): number {
    return foreignLinesFromCounts(
      this.i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      vmId,
      this.concurrent,
    );
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
