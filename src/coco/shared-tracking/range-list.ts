import { assert, assertDebug } from '../../assert.js';
import {
  bitmapBytesFor,
  isValidRange,
  type SharedRangeTracker,
  type TrackerBound,
  type TrackerUpdate,
} from './tracker.js';

/**
 * A sorted array of shared ranges [start, end), kept disjoint and coalesced: a range that touches or
 * overlaps a neighbour is merged with it. Updates binary-search the affected ranges and shift the tail
 * of the array (O(ranges) per update in the worst case, which the hostile workload provokes); lookups
 * are a binary search.
 *
 * Bound: `rangesMax` ranges (default: as many as fit in the bytes of a bitmap of the same guest, so the
 * list never costs more than the bitmap it is meant to beat). The arrays are allocated at that size
 * up front; `memoryBytes()` reports the bytes the live ranges occupy. Overflow: see tracker.ts — a new
 * range that does not fit is dropped, and a split that does not fit keeps only the larger piece.
 */

/** Two Int32 words per range: start and exclusive end. */
export const rangeListBytesPerRange = 8;

export interface RangeListOptions {
  readonly rangesMax?: number;
}

export function defaultRangesMax(gfnCount: number): number {
  return Math.max(1, Math.floor(bitmapBytesFor(gfnCount) / rangeListBytesPerRange));
}

export class RangeListTracker implements SharedRangeTracker {
  readonly kind = 'range-list' as const;
  readonly gfnCount: number;
  readonly bound: TrackerBound;
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  private count = 0;
  private overflowFlag = false;

  constructor(gfnCount: number, options: RangeListOptions = {}) {
    assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `RangeListTracker: bad gfnCount ${gfnCount}`);
    assert(gfnCount <= 0x7fffffff, 'RangeListTracker: range ends must fit an Int32');
    const rangesMax = options.rangesMax ?? defaultRangesMax(gfnCount);
    assert(Number.isInteger(rangesMax) && rangesMax >= 1, `RangeListTracker: bad rangesMax ${rangesMax}`);
    this.gfnCount = gfnCount;
    this.starts = new Int32Array(rangesMax);
    this.ends = new Int32Array(rangesMax);
    this.bound = {
      unit: 'ranges',
      entriesMax: rangesMax,
      memoryBytesMax: rangesMax * rangeListBytesPerRange,
    };
  }

  get overflowed(): boolean {
    return this.overflowFlag;
  }

  get entryCount(): number {
    return this.count;
  }

  setShared(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    const start = gfn;
    const end = gfn + npages;
    // Ranges [low, high) touch or overlap [start, end]: end >= start and begin <= end.
    const low = this.firstEndAtLeast(start);
    const high = this.firstStartAbove(end);
    const touched = high - low;
    if (touched === 0) {
      if (this.count === this.starts.length) {
        this.overflowFlag = true;
        return 'overflowed';
      }
      this.shift(low, 1);
      this.starts[low] = start;
      this.ends[low] = end;
    } else {
      const mergedStart = Math.min(start, this.starts[low]);
      const mergedEnd = Math.max(end, this.ends[high - 1]);
      this.starts[low] = mergedStart;
      this.ends[low] = mergedEnd;
      this.shift(high, 1 - touched);
    }
    assertDebug(this.isWellFormed(), 'range list must stay sorted, disjoint and coalesced');
    return 'ok';
  }

  setPrivate(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    const start = gfn;
    const end = gfn + npages;
    // Ranges [low, high) overlap [start, end): end > start and begin < end.
    const low = this.firstEndAtLeast(start + 1);
    const high = this.firstStartAbove(end - 1);
    const touched = high - low;
    if (touched === 0) return 'ok';
    const leftStart = this.starts[low];
    const rightEnd = this.ends[high - 1];
    let keepLeft = leftStart < start;
    let keepRight = rightEnd > end;
    let result: TrackerUpdate = 'ok';
    const pieces = (keepLeft ? 1 : 0) + (keepRight ? 1 : 0);
    if (this.count - touched + pieces > this.starts.length) {
      // Only a split of one range into two can grow the list. No room: keep the larger piece, so the
      // record stays a subset of the truly shared pages.
      this.overflowFlag = true;
      result = 'overflowed';
      if (start - leftStart >= rightEnd - end) keepRight = false;
      else keepLeft = false;
    }
    const kept = (keepLeft ? 1 : 0) + (keepRight ? 1 : 0);
    this.shift(high, kept - touched);
    let index = low;
    if (keepLeft) {
      this.starts[index] = leftStart;
      this.ends[index] = start;
      index++;
    }
    if (keepRight) {
      this.starts[index] = end;
      this.ends[index] = rightEnd;
    }
    assertDebug(this.isWellFormed(), 'range list must stay sorted, disjoint and coalesced');
    return result;
  }

  isShared(gfn: number): boolean {
    const index = this.firstEndAtLeast(gfn + 1);
    return index < this.count && this.starts[index] <= gfn;
  }

  ranges(): Array<[start: number, npages: number]> {
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i < this.count; i++) ranges.push([this.starts[i], this.ends[i] - this.starts[i]]);
    return ranges;
  }

  memoryBytes(): number {
    return this.count * rangeListBytesPerRange;
  }

  reset(): void {
    this.count = 0;
    this.overflowFlag = false;
  }

  /** Index of the first range whose end is >= `value` (count when none). */
  private firstEndAtLeast(value: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.ends[mid] >= value) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  /** Index of the first range whose start is > `value` (count when none). */
  private firstStartAbove(value: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.starts[mid] > value) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  /** Move ranges [from, count) by `delta` slots and adjust the count. */
  private shift(from: number, delta: number): void {
    if (delta !== 0 && from < this.count) {
      this.starts.copyWithin(from + delta, from, this.count);
      this.ends.copyWithin(from + delta, from, this.count);
    }
    this.count += delta;
    assert(
      this.count >= 0 && this.count <= this.starts.length,
      `range list count ${this.count} out of bounds`,
    );
  }

  private isWellFormed(): boolean {
    for (let i = 0; i < this.count; i++) {
      if (this.starts[i] >= this.ends[i]) return false;
      if (i > 0 && this.starts[i] <= this.ends[i - 1]) return false;
    }
    return true;
  }
}
