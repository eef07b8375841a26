import { describe, expect, it } from 'vitest';
import { defaultRangesMax, RangeListTracker } from '../../../src/coco/shared-tracking/range-list.js';

describe('RangeListTracker', () => {
  it('merges a range with the neighbours it touches or overlaps', () => {
    const tracker = new RangeListTracker(1000);
    tracker.setShared(10, 5);
    tracker.setShared(20, 5);
    expect(tracker.entryCount).toBe(2);
    // [15, 20) touches both neighbours: one range remains.
    tracker.setShared(15, 5);
    expect(tracker.ranges()).toEqual([[10, 15]]);
    tracker.setShared(5, 30);
    expect(tracker.ranges()).toEqual([[5, 30]]);
    expect(tracker.memoryBytes()).toBe(8);
  });

  it('splits a range when a page in the middle goes private, and drops ranges it covers', () => {
    const tracker = new RangeListTracker(1000);
    tracker.setShared(10, 10);
    tracker.setShared(30, 10);
    tracker.setPrivate(14, 2);
    expect(tracker.ranges()).toEqual([
      [10, 4],
      [16, 4],
      [30, 10],
    ]);
    tracker.setPrivate(12, 30);
    expect(tracker.ranges()).toEqual([[10, 2]]);
  });

  it('on overflow drops a new disjoint range and keeps the tracked set a subset of the truth', () => {
    const tracker = new RangeListTracker(1000, { rangesMax: 2 });
    tracker.setShared(0, 1);
    tracker.setShared(10, 1);
    expect(tracker.setShared(20, 1)).toBe('overflowed');
    expect(tracker.overflowed).toBe(true);
    expect(tracker.isShared(20)).toBe(false);
    // Growing an existing range still fits and is applied exactly.
    expect(tracker.setShared(11, 4)).toBe('ok');
    expect(tracker.ranges()).toEqual([
      [0, 1],
      [10, 5],
    ]);
  });

  it('on overflow keeps the larger piece of a split', () => {
    const tracker = new RangeListTracker(1000, { rangesMax: 2 });
    tracker.setShared(0, 1);
    tracker.setShared(10, 20);
    expect(tracker.setPrivate(13, 1)).toBe('overflowed');
    expect(tracker.ranges()).toEqual([
      [0, 1],
      [14, 16],
    ]);
    expect(tracker.setPrivate(27, 1)).toBe('overflowed');
    expect(tracker.ranges()).toEqual([
      [0, 1],
      [14, 13],
    ]);
  });

  it('is bounded by the bytes of a bitmap of the same guest by default, and reset clears the flag', () => {
    expect(defaultRangesMax(1 << 20)).toBe((1 << 20) / 8 / 8);
    const tracker = new RangeListTracker(1 << 20);
    expect(tracker.bound).toEqual({ unit: 'ranges', entriesMax: 16_384, memoryBytesMax: 131_072 });
    const tiny = new RangeListTracker(100, { rangesMax: 1 });
    tiny.setShared(0, 1);
    tiny.setShared(5, 1);
    tiny.reset();
    expect(tiny.overflowed).toBe(false);
    expect(tiny.entryCount).toBe(0);
  });
});
