import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  IntervalTreeTracker,
  intervalTreeBytesPerNode,
} from '../../src/coco/shared-tracking/interval-tree.js';

/**
 * The interval tree's structure check and its balance, where mutation testing found them unpinned
 * (docs/testing.md): `validate()` must name the first problem of a corrupted tree, exactly; the AVL
 * rotations must keep every node balanced through any mix of merges, splits and removals.
 */
interface Nodes {
  starts: Int32Array;
  ends: Int32Array;
  lefts: Int32Array;
  rights: Int32Array;
  heights: Int32Array;
  root: number;
}
const nodesOf = (tracker: IntervalTreeTracker) => tracker as unknown as Nodes;

/** A tree of single-page intervals at these gfns, inserted in this order (node i holds the i-th). */
function tree(gfns: number[]): IntervalTreeTracker {
  const tracker = new IntervalTreeTracker(1000, { nodesMax: 8 });
  for (const gfn of gfns) expect(tracker.setShared(gfn, 5)).toBe('ok');
  expect(tracker.validate()).toBeNull();
  return tracker;
}

describe('validate() names the first problem of a corrupted tree', () => {
  it('an empty interval', () => {
    const tracker = tree([10]);
    nodesOf(tracker).ends[0] = 10;
    expect(tracker.validate()).toBe('node 0 is empty');
    nodesOf(tracker).ends[0] = 9;
    expect(tracker.validate()).toBe('node 0 is empty');
  });

  it('an interval that overlaps or touches its predecessor', () => {
    const tracker = tree([10, 20]);
    nodesOf(tracker).starts[1] = 15;
    expect(tracker.validate()).toBe('node 1 overlaps or touches its predecessor');
    nodesOf(tracker).starts[1] = 12;
    expect(tracker.validate()).toBe('node 1 overlaps or touches its predecessor');
    nodesOf(tracker).starts[1] = 16;
    expect(tracker.validate()).toBeNull();
  });

  it('a stale height, too high or too low', () => {
    const tracker = tree([10, 20]);
    expect(nodesOf(tracker).heights[0]).toBe(2);
    nodesOf(tracker).heights[0] = 3;
    expect(tracker.validate()).toBe('node 0 height stale');
    nodesOf(tracker).heights[0] = 1;
    expect(tracker.validate()).toBe('node 0 height stale');
  });

  it('an unbalanced node, with both heights', () => {
    // 10 <- 20 -> 30 rebuilt by hand as a right-leaning chain 10 -> 20 -> 30.
    const tracker = tree([10, 20, 30]);
    const nodes = nodesOf(tracker);
    expect(nodes.root).toBe(1);
    nodes.root = 0;
    nodes.lefts.set([-1, -1, -1]);
    nodes.rights.set([1, 2, -1]);
    nodes.heights.set([3, 2, 1]);
    expect(tracker.validate()).toBe('node 0 unbalanced (0 vs 2)');
    // Mirrored: 30 <- 20 <- 10.
    nodes.root = 2;
    nodes.lefts.set([-1, 0, 1]);
    nodes.rights.set([-1, -1, -1]);
    nodes.heights.set([1, 2, 3]);
    expect(tracker.validate()).toBe('node 2 unbalanced (2 vs 0)');
    // Unbalanced and empty: the first problem found at that node is named, not the last.
    nodes.ends[2] = nodes.starts[2];
    expect(tracker.validate()).toBe('node 2 is empty');
  });

  it('only the first problem, in key order, however many there are', () => {
    const tracker = tree([10, 20, 30]);
    const nodes = nodesOf(tracker);
    // Node 0 (first in order) empty and stale; node 2 empty too.
    nodes.ends[0] = 10;
    nodes.heights[0] = 4;
    nodes.ends[2] = 30;
    expect(tracker.validate()).toBe('node 0 is empty');
    // Node 1 both touches node 0 and is stale: the overlap is named.
    nodes.ends[0] = 15;
    nodes.heights[0] = 1;
    nodes.starts[1] = 15;
    nodes.heights[1] = 5;
    expect(tracker.validate()).toBe('node 1 overlaps or touches its predecessor');
  });
});

describe('the interval tree’s bound and pool', () => {
  it('reports its bound in nodes and bytes', () => {
    expect(new IntervalTreeTracker(1000, { nodesMax: 7 }).bound).toEqual({
      unit: 'nodes',
      entriesMax: 7,
      memoryBytesMax: 7 * intervalTreeBytesPerNode,
    });
  });

  it('when full, still merges into an interval it holds and still removes', () => {
    const tracker = new IntervalTreeTracker(1000, { nodesMax: 2 });
    tracker.setShared(10, 5);
    tracker.setShared(30, 5);
    expect(tracker.setShared(15, 5)).toBe('ok');
    expect(tracker.setShared(25, 5)).toBe('ok');
    expect(tracker.ranges()).toEqual([
      [10, 10],
      [25, 10],
    ]);
    expect(tracker.setShared(20, 5)).toBe('ok');
    expect(tracker.ranges()).toEqual([[10, 25]]);
    expect(tracker.overflowed).toBe(false);
    // Trimming an end never needs a node.
    expect(tracker.setPrivate(10, 3)).toBe('ok');
    expect(tracker.setPrivate(30, 10)).toBe('ok');
    expect(tracker.ranges()).toEqual([[13, 17]]);
  });

  it('after reset holds nodesMax intervals again, and overflows at one more', () => {
    const tracker = new IntervalTreeTracker(1000, { nodesMax: 3 });
    tracker.setShared(0, 1);
    tracker.setShared(100, 1);
    expect(tracker.setShared(50, 1)).toBe('ok');
    expect(tracker.setShared(75, 1)).toBe('overflowed');
    tracker.reset();
    expect([tracker.entryCount, tracker.overflowed, tracker.ranges()]).toEqual([0, false, []]);
    for (const gfn of [7, 3, 5]) expect(tracker.setShared(gfn, 1)).toBe('ok');
    expect(tracker.setShared(9, 1)).toBe('overflowed');
    expect(tracker.ranges()).toEqual([
      [3, 1],
      [5, 1],
      [7, 1],
    ]);
  });
});

describe('the interval tree stays a balanced, valid tree that agrees with the per-page truth', () => {
  it('through any sequence of conversions (fast-check)', () => {
    const gfnCount = 200;
    const op = fc.record({
      shared: fc.boolean(),
      gfn: fc.integer({ min: 0, max: gfnCount - 1 }),
      npages: fc.integer({ min: 1, max: 12 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const tracker = new IntervalTreeTracker(gfnCount, { nodesMax: 100 });
        const truth = new Uint8Array(gfnCount);
        for (const { shared, gfn, npages } of ops) {
          const end = Math.min(gfnCount, gfn + npages);
          const update = shared ? tracker.setShared(gfn, end - gfn) : tracker.setPrivate(gfn, end - gfn);
          expect(update).toBe('ok');
          truth.fill(shared ? 1 : 0, gfn, end);
          expect(tracker.validate()).toBeNull();
          expect(tracker.height()).toBeLessThanOrEqual(
            Math.floor(1.4405 * Math.log2(tracker.entryCount + 2)),
          );
        }
        for (let gfn = 0; gfn < gfnCount; gfn++) expect(tracker.isShared(gfn) ? 1 : 0).toBe(truth[gfn]);
      }),
      { seed: 2424, numRuns: 300 },
    );
  });
});
