import { describe, expect, it } from 'vitest';
import { IntervalTreeTracker } from '../../../src/coco/shared-tracking/interval-tree.js';

describe('IntervalTreeTracker', () => {
  it('merges touching and overlapping intervals and splits on private', () => {
    const tracker = new IntervalTreeTracker(1000, { nodesMax: 16 });
    tracker.setShared(10, 5);
    tracker.setShared(20, 5);
    tracker.setShared(40, 5);
    tracker.setShared(15, 5);
    expect(tracker.ranges()).toEqual([
      [10, 15],
      [40, 5],
    ]);
    tracker.setPrivate(12, 1);
    expect(tracker.ranges()).toEqual([
      [10, 2],
      [13, 12],
      [40, 5],
    ]);
    tracker.setShared(0, 100);
    expect(tracker.ranges()).toEqual([[0, 100]]);
    expect(tracker.entryCount).toBe(1);
    expect(tracker.memoryBytes()).toBe(20);
  });

  it('stays AVL-balanced when intervals arrive in ascending order', () => {
    const count = 1000;
    const tracker = new IntervalTreeTracker(2 * count, { nodesMax: count });
    for (let i = 0; i < count; i++) tracker.setShared(2 * i, 1);
    expect(tracker.entryCount).toBe(count);
    // An AVL tree of n nodes is at most 1.44 log2(n + 2) high.
    expect(tracker.height()).toBeLessThanOrEqual(Math.floor(1.4405 * Math.log2(count + 2)));
    for (let i = 0; i < count; i += 2) tracker.setPrivate(2 * i, 1);
    expect(tracker.entryCount).toBe(count / 2);
    expect(tracker.height()).toBeLessThanOrEqual(Math.floor(1.4405 * Math.log2(count / 2 + 2)));
    expect(tracker.isShared(2)).toBe(true);
    expect(tracker.isShared(4)).toBe(false);
  });

  it('rebalances the zig-zag cases (double rotations) on insert and delete', () => {
    const tracker = new IntervalTreeTracker(10_000, { nodesMax: 64 });
    // Left-right, then right-left shapes.
    for (const gfn of [100, 50, 70, 200, 300, 250]) {
      tracker.setShared(gfn, 1);
      expect(tracker.validate()).toBeNull();
    }
    for (const gfn of [20, 400, 10, 30, 25, 27, 26]) tracker.setShared(gfn, 1);
    expect(tracker.validate()).toBeNull();
    for (const gfn of [400, 300, 250, 200]) {
      tracker.setPrivate(gfn, 1);
      expect(tracker.validate()).toBeNull();
    }
    // 25, 26 and 27 merged into one interval: 11 intervals, 4 removed.
    expect(tracker.entryCount).toBe(7);
  });

  it('returns freed nodes to the pool', () => {
    const tracker = new IntervalTreeTracker(100, { nodesMax: 4 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) expect(tracker.setShared(10 * i, 1)).toBe('ok');
      tracker.setPrivate(0, 100);
      expect(tracker.entryCount).toBe(0);
    }
    expect(tracker.overflowed).toBe(false);
  });

  it('on overflow drops a new interval and keeps the larger piece of a split', () => {
    const tracker = new IntervalTreeTracker(1000, { nodesMax: 2 });
    tracker.setShared(0, 1);
    tracker.setShared(10, 20);
    expect(tracker.setShared(50, 1)).toBe('overflowed');
    expect(tracker.isShared(50)).toBe(false);
    expect(tracker.setPrivate(25, 1)).toBe('overflowed');
    expect(tracker.ranges()).toEqual([
      [0, 1],
      [10, 15],
    ]);
    expect(tracker.overflowed).toBe(true);
    expect(tracker.entryCount).toBe(2);
  });
});
