import { describe, expect, it } from 'vitest';
import { BitmapTracker } from '../../../src/coco/shared-tracking/bitmap.js';

describe('BitmapTracker', () => {
  it('sets and clears ranges that straddle 32-page words, including whole words', () => {
    const tracker = new BitmapTracker(200);
    expect(tracker.setShared(30, 70)).toBe('ok');
    expect([29, 30, 31, 32, 63, 64, 99, 100].map((gfn) => tracker.isShared(gfn))).toEqual([
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      false,
    ]);
    expect(tracker.setPrivate(40, 30)).toBe('ok');
    expect(tracker.ranges()).toEqual([
      [30, 10],
      [70, 30],
    ]);
  });

  it('reports a range that runs to the last page of a guest whose size is not a multiple of 32', () => {
    const tracker = new BitmapTracker(70);
    tracker.setShared(60, 10);
    expect(tracker.ranges()).toEqual([[60, 10]]);
    expect(tracker.isShared(69)).toBe(true);
    expect(tracker.isShared(70)).toBe(false);
  });

  it('rejects requests outside guest memory and never overflows or changes size', () => {
    const tracker = new BitmapTracker(64);
    expect(tracker.setShared(60, 5)).toBe('rejected');
    expect(tracker.setShared(-1, 2)).toBe('rejected');
    expect(tracker.setPrivate(3, 0)).toBe('rejected');
    expect(tracker.ranges()).toEqual([]);
    for (let gfn = 0; gfn < 64; gfn += 2) tracker.setShared(gfn, 1);
    expect(tracker.ranges()).toHaveLength(32);
    expect(tracker.overflowed).toBe(false);
    expect(tracker.memoryBytes()).toBe(8);
    expect(tracker.bound).toEqual({ unit: 'pages', entriesMax: 64, memoryBytesMax: 8 });
  });

  it('reset makes every page private again', () => {
    const tracker = new BitmapTracker(64);
    tracker.setShared(0, 64);
    tracker.reset();
    expect(tracker.ranges()).toEqual([]);
  });
});
