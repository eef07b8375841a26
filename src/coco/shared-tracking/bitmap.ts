import { assert } from '../../assert.js';
import {
  bitmapBytesFor,
  isValidRange,
  type SharedRangeTracker,
  type TrackerBound,
  type TrackerUpdate,
} from './tracker.js';

/**
 * One bit per guest frame, sized from guest memory when the guest is created (as the KVM page
 * encryption bitmap was sized from the memslots). Exact and always bounded: no guest request can make
 * it grow, and it never overflows. The cost is memory proportional to the guest, used or not.
 */
export class BitmapTracker implements SharedRangeTracker {
  readonly kind = 'bitmap' as const;
  readonly gfnCount: number;
  readonly bound: TrackerBound;
  readonly overflowed = false;
  private readonly words: Uint32Array;

  constructor(gfnCount: number) {
    assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `BitmapTracker: bad gfnCount ${gfnCount}`);
    this.gfnCount = gfnCount;
    this.words = new Uint32Array(bitmapBytesFor(gfnCount) / 4);
    this.bound = { unit: 'pages', entriesMax: gfnCount, memoryBytesMax: this.words.byteLength };
  }

  get entryCount(): number {
    return this.gfnCount;
  }

  setShared(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    this.fill(gfn, gfn + npages, true);
    return 'ok';
  }

  setPrivate(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    this.fill(gfn, gfn + npages, false);
    return 'ok';
  }

  isShared(gfn: number): boolean {
    return gfn >= 0 && gfn < this.gfnCount && ((this.words[gfn >>> 5] >>> (gfn & 31)) & 1) === 1;
  }

  ranges(): Array<[start: number, npages: number]> {
    const ranges: Array<[number, number]> = [];
    let runStart = -1;
    const wordCount = this.words.length;
    for (let wordIndex = 0; wordIndex < wordCount; wordIndex++) {
      const word = this.words[wordIndex];
      // Skip whole words that continue the current state: the common case for sparse sharing.
      if (word === 0 && runStart === -1) continue;
      if (word === 0xffffffff && runStart !== -1) continue;
      for (let bit = 0; bit < 32; bit++) {
        const gfn = wordIndex * 32 + bit;
        if (gfn >= this.gfnCount) break;
        const shared = ((word >>> bit) & 1) === 1;
        if (shared && runStart === -1) runStart = gfn;
        else if (!shared && runStart !== -1) {
          ranges.push([runStart, gfn - runStart]);
          runStart = -1;
        }
      }
    }
    if (runStart !== -1) ranges.push([runStart, this.gfnCount - runStart]);
    return ranges;
  }

  memoryBytes(): number {
    return this.words.byteLength;
  }

  reset(): void {
    this.words.fill(0);
  }

  /** Set or clear bits [start, end): partial words bit by bit, whole words at once. */
  private fill(start: number, end: number, shared: boolean): void {
    let gfn = start;
    while (gfn < end && (gfn & 31) !== 0) this.setBit(gfn++, shared);
    const wholeEnd = end - (end & 31);
    if (gfn < wholeEnd) {
      this.words.fill(shared ? 0xffffffff : 0, gfn >>> 5, wholeEnd >>> 5);
      gfn = wholeEnd;
    }
    while (gfn < end) this.setBit(gfn++, shared);
  }

  private setBit(gfn: number, shared: boolean): void {
    const mask = 1 << (gfn & 31);
    const index = gfn >>> 5;
    this.words[index] = shared ? this.words[index] | mask : this.words[index] & ~mask;
  }
}
