import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyToTruth,
  BitmapTracker,
  checkAgreement,
  checkBound,
  createTracker,
  hostileWorkload,
  IntervalTreeTracker,
  RangeListTracker,
  type SharedRangeTracker,
  type TrackerUpdate,
  trackerKinds,
} from '../../../src/coco/shared-tracking/index.js';

interface Op {
  readonly op: 'shared' | 'private';
  readonly gfn: number;
  readonly npages: number;
}

/** Conversions over a small guest, including malformed ones (outside memory, zero pages). */
function opArbitrary(gfnCount: number): fc.Arbitrary<Op> {
  return fc.record({
    op: fc.constantFrom<'shared' | 'private'>('shared', 'private'),
    gfn: fc.integer({ min: -2, max: gfnCount + 2 }),
    npages: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 40 })),
  });
}

function apply(tracker: SharedRangeTracker, op: Op): TrackerUpdate {
  return op.op === 'shared' ? tracker.setShared(op.gfn, op.npages) : tracker.setPrivate(op.gfn, op.npages);
}

const propertySeed = 424_242;

describe('INV-13: the three trackers agree with the per-page truth', () => {
  const gfnCount = 160;

  it(`after any sequence of conversions within their bounds (fast-check seed ${propertySeed})`, () => {
    fc.assert(
      fc.property(fc.array(opArbitrary(gfnCount), { maxLength: 80 }), (ops) => {
        // Bounds large enough for the worst fragmentation of 160 pages (80 ranges): never overflow.
        const tree = new IntervalTreeTracker(gfnCount, { nodesMax: gfnCount / 2 });
        const trackers = [
          new BitmapTracker(gfnCount),
          new RangeListTracker(gfnCount, { rangesMax: gfnCount / 2 }),
          tree,
        ];
        const truth = new Uint8Array(gfnCount);
        for (const op of ops) {
          const valid = applyToTruth(truth, op.op, op.gfn, op.npages);
          for (const tracker of trackers) expect(apply(tracker, op)).toBe(valid ? 'ok' : 'rejected');
          expect(checkAgreement(trackers, truth)).toBeNull();
          expect(tree.validate()).toBeNull();
        }
        for (const tracker of trackers) expect(tracker.overflowed).toBe(false);
        expect(trackers[1].ranges()).toEqual(trackers[0].ranges());
        expect(trackers[2].ranges()).toEqual(trackers[0].ranges());
      }),
      { seed: propertySeed, numRuns: 300 },
    );
  });

  it(`keeps the overflow contract (shared set only shrinks) and the bound under tight bounds (fast-check seed ${propertySeed + 1})`, () => {
    fc.assert(
      fc.property(
        fc.array(opArbitrary(gfnCount), { maxLength: 80 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        (ops, rangesMax, nodesMax) => {
          const trackers = [
            new BitmapTracker(gfnCount),
            new RangeListTracker(gfnCount, { rangesMax }),
            new IntervalTreeTracker(gfnCount, { nodesMax }),
          ];
          const truth = new Uint8Array(gfnCount);
          const sawOverflow = [false, false, false];
          for (const op of ops) {
            applyToTruth(truth, op.op, op.gfn, op.npages);
            trackers.forEach((tracker, i) => {
              if (apply(tracker, op) === 'overflowed') sawOverflow[i] = true;
              expect(checkBound(tracker)).toBeNull();
            });
            expect(checkAgreement(trackers, truth)).toBeNull();
          }
          trackers.forEach((tracker, i) => {
            expect(tracker.overflowed).toBe(sawOverflow[i]);
          });
          expect(trackers[0].overflowed).toBe(false);
        },
      ),
      { seed: propertySeed + 1, numRuns: 300 },
    );
  });
});

describe('INV-12: bounds hold under the hostile workload', () => {
  it('flags overflow in the range list and the interval tree, never grows, and the bitmap stays exact', () => {
    const gfnCount = 8192;
    const trackers = trackerKinds.map((kind) => createTracker(kind, gfnCount));
    const truth = new Uint8Array(gfnCount);
    let opsCount = 0;
    for (const op of hostileWorkload(7, gfnCount, 4000)) {
      applyToTruth(truth, op.op, op.gfn, op.npages);
      for (const tracker of trackers) {
        apply(tracker, op);
        expect(checkBound(tracker)).toBeNull();
      }
      opsCount++;
    }
    expect(opsCount).toBe(4000);
    const [bitmap, list, tree] = trackers;
    expect(bitmap.overflowed).toBe(false);
    expect(list.overflowed).toBe(true);
    expect(tree.overflowed).toBe(true);
    expect(list.entryCount).toBe(list.bound.entriesMax);
    expect(tree.entryCount).toBe(tree.bound.entriesMax);
    expect(list.memoryBytes()).toBeLessThanOrEqual(bitmap.memoryBytes());
    expect(tree.memoryBytes()).toBeLessThanOrEqual(bitmap.memoryBytes());
    expect(checkAgreement(trackers, truth)).toBeNull();
  });
});

describe('the checks themselves can fail', () => {
  const gfnCount = 64;

  /** `inner` with some members replaced: how the tests plant bugs for the checks to find. */
  function withOverrides(inner: SharedRangeTracker, overrides: Record<string, unknown>): SharedRangeTracker {
    const descriptors: PropertyDescriptorMap = {};
    for (const [key, value] of Object.entries(overrides)) descriptors[key] = { value };
    return Object.create(inner, descriptors) as SharedRangeTracker;
  }

  /** A tracker that lies about one page. */
  function lyingAbout(inner: SharedRangeTracker, liar: number): SharedRangeTracker {
    return withOverrides(inner, {
      isShared: (gfn: number) => (gfn === liar ? !inner.isShared(gfn) : inner.isShared(gfn)),
    });
  }

  it('reports the first page where a tracker disagrees with the truth', () => {
    const truth = new Uint8Array(gfnCount);
    const honest = new RangeListTracker(gfnCount);
    honest.setShared(10, 5);
    applyToTruth(truth, 'shared', 10, 5);
    expect(checkAgreement([honest, lyingAbout(honest, 12)], truth)).toEqual({
      invariant: 'INV-13',
      tracker: 'range-list',
      gfn: 12,
      tracked: false,
      truth: true,
      reason: 'isShared',
      overflowed: false,
    });
  });

  it('reports ranges() that disagree with isShared or are not coalesced', () => {
    const truth = new Uint8Array(gfnCount);
    applyToTruth(truth, 'shared', 4, 4);
    const tracker = new BitmapTracker(gfnCount);
    tracker.setShared(4, 4);
    const split = withOverrides(tracker, {
      ranges: () => [
        [4, 2],
        [6, 2],
      ],
    });
    expect(checkAgreement([split], truth)).toMatchObject({ reason: 'ranges', gfn: 6 });
    const short = withOverrides(tracker, { ranges: () => [[4, 3]] });
    expect(checkAgreement([short], truth)).toMatchObject({ reason: 'ranges', gfn: 7 });
  });

  it('reports an overflowed tracker that calls a private page shared', () => {
    const truth = new Uint8Array(gfnCount);
    const tracker = new RangeListTracker(gfnCount, { rangesMax: 1 });
    tracker.setShared(0, 1);
    expect(tracker.setShared(5, 1)).toBe('overflowed');
    applyToTruth(truth, 'shared', 5, 1);
    // The truth says page 0 went private behind the tracker's back: the contract is broken.
    expect(checkAgreement([tracker], truth)).toMatchObject({ reason: 'overflow-contract', gfn: 0 });
  });

  it('reports a tracker above its bound', () => {
    const tracker = new RangeListTracker(gfnCount, { rangesMax: 2 });
    const grown = withOverrides(tracker, { entryCount: 3, memoryBytes: () => 24 });
    expect(checkBound(grown)).toEqual({
      invariant: 'INV-12',
      tracker: 'range-list',
      entryCount: 3,
      entriesMax: 2,
      memoryBytes: 24,
      memoryBytesMax: 16,
    });
  });
});
