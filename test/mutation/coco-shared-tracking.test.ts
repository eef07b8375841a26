import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import {
  BitmapTracker,
  bitmapBytesFor,
  checkAgreement,
  checkBound,
  createTracker,
  IntervalTreeTracker,
  isValidRange,
  RangeListTracker,
  type SharedRangeTracker,
  type TrackerKind,
} from '../../src/coco/shared-tracking/index.js';

/** A bitmap tracker sharing `shared` pages whose ranges() answers `ranges`: how these tests plant bugs. */
function trackerWithRanges(
  gfnCount: number,
  shared: readonly number[],
  ranges: Array<[number, number]>,
): { tracker: SharedRangeTracker; truth: Uint8Array } {
  const inner = new BitmapTracker(gfnCount);
  const truth = new Uint8Array(gfnCount);
  for (const gfn of shared) {
    inner.setShared(gfn, 1);
    truth[gfn] = 1;
  }
  const tracker = Object.create(inner, { ranges: { value: () => ranges } }) as SharedRangeTracker;
  return { tracker, truth };
}

/**
 * Edges of the shared-range trackers that the INV-12/INV-13 suites (test/coco/shared-tracking/) do not
 * reach, found by mutation testing (issue 24, docs/testing.md).
 */

describe('BitmapTracker edges', () => {
  it('refuses a guest of no pages or of a size that is not a whole number', () => {
    for (const gfnCount of [0, -32, 1.5, Number.NaN]) {
      expect(() => new BitmapTracker(gfnCount)).toThrow(AssertionError);
      expect(() => new BitmapTracker(gfnCount)).toThrow(`BitmapTracker: bad gfnCount ${gfnCount}`);
    }
    expect(new BitmapTracker(1).gfnCount).toBe(1);
  });

  it('ends a run that starts at page 1 and fills its word, however many empty words follow', () => {
    const tracker = new BitmapTracker(96);
    tracker.setShared(1, 31);
    expect(tracker.ranges()).toEqual([[1, 31]]);
  });
});

describe('createTracker', () => {
  it('passes each bound to its own kind', () => {
    expect(createTracker('interval-tree', 1024, { nodesMax: 3, rangesMax: 5 }).bound.entriesMax).toBe(3);
    expect(createTracker('range-list', 1024, { nodesMax: 3, rangesMax: 5 }).bound.entriesMax).toBe(5);
    expect(createTracker('bitmap', 1024, { nodesMax: 3, rangesMax: 5 }).bound.entriesMax).toBe(1024);
  });

  it('refuses a kind it does not know, naming it', () => {
    expect(() => createTracker('hash-set' as TrackerKind, 64)).toThrow(
      'unreachable: unexpected tracker kind: hash-set',
    );
  });
});

describe('isValidRange', () => {
  it('refuses a start or a length that is not a whole number', () => {
    expect(isValidRange(64, 1.5, 2)).toBe(false);
    expect(isValidRange(64, 1, 2.5)).toBe(false);
    expect(isValidRange(64, 1, 2)).toBe(true);
    expect(new RangeListTracker(64).setShared(1.5, 2)).toBe('rejected');
  });
});

describe('bitmapBytesFor', () => {
  it('refuses a guest of no pages or of a size that is not a whole number', () => {
    for (const gfnCount of [0, -1, 2.5])
      expect(() => bitmapBytesFor(gfnCount)).toThrow(`bad gfnCount ${gfnCount}`);
    expect(bitmapBytesFor(33)).toBe(8);
  });
});

describe('checkAgreement on malformed ranges()', () => {
  const gfnCount = 64;

  it('refuses a truth of another size, naming both', () => {
    const { tracker } = trackerWithRanges(gfnCount, [], []);
    expect(() => checkAgreement([tracker], new Uint8Array(32))).toThrow(
      'checkAgreement: bitmap tracks 64 frames, the truth has 32',
    );
  });

  it('checks the pages of guest memory and no others', () => {
    const { tracker, truth } = trackerWithRanges(gfnCount, [3], [[3, 1]]);
    const claimsBeyond = Object.create(tracker, {
      isShared: { value: (gfn: number) => gfn === gfnCount || tracker.isShared(gfn) },
    }) as SharedRangeTracker;
    expect(checkAgreement([claimsBeyond], truth)).toBeNull();
  });

  // Each of these ranges() covers exactly the pages isShared reports, so only the shape check finds them.
  const cases: Array<{ what: string; shared: number[]; ranges: Array<[number, number]>; gfn: number }> = [
    { what: 'a fractional start', shared: [], ranges: [[1.5, 2]], gfn: 1.5 },
    { what: 'a fractional length', shared: [2, 3], ranges: [[2, 1.5]], gfn: 2 },
    { what: 'an empty range', shared: [], ranges: [[2, 0]], gfn: 2 },
    { what: 'a negative start', shared: [0, 1], ranges: [[-1, 3]], gfn: 0 },
    { what: 'a range past the end of memory', shared: [62, 63], ranges: [[62, 4]], gfn: 62 },
    { what: 'a range that starts past the end of memory', shared: [], ranges: [[gfnCount + 5, 1]], gfn: 63 },
    {
      what: 'two ranges that touch (not coalesced)',
      shared: [2, 3, 4, 5],
      ranges: [
        [2, 2],
        [4, 2],
      ],
      gfn: 4,
    },
  ];
  for (const { what, shared, ranges, gfn } of cases) {
    it(`reports ${what} at its (clamped) start`, () => {
      const { tracker, truth } = trackerWithRanges(gfnCount, shared, ranges);
      expect(checkAgreement([tracker], truth)).toEqual({
        invariant: 'INV-13',
        tracker: 'bitmap',
        gfn,
        tracked: true,
        truth: truth[gfn] === 1,
        reason: 'ranges',
        overflowed: false,
      });
    });
  }

  it('says whether the truth shares the page where a malformed range starts', () => {
    const { tracker, truth } = trackerWithRanges(gfnCount, [2, 3], [[2, 1.5]]);
    expect(checkAgreement([tracker], truth)).toMatchObject({ gfn: 2, tracked: true, truth: true });
    const { tracker: empty, truth: none } = trackerWithRanges(gfnCount, [], [[2, 0]]);
    expect(checkAgreement([empty], none)).toMatchObject({ gfn: 2, tracked: true, truth: false });
  });
});

describe('checkBound', () => {
  const tracker = new RangeListTracker(64, { rangesMax: 2 });
  const withBound = (entryCount: number, memoryBytes: number) =>
    Object.create(tracker, {
      entryCount: { value: entryCount },
      memoryBytes: { value: () => memoryBytes },
    }) as SharedRangeTracker;

  it('reports too many entries even within the bytes, and too many bytes even within the entries', () => {
    expect(checkBound(withBound(3, 16))).toMatchObject({
      invariant: 'INV-12',
      entryCount: 3,
      memoryBytes: 16,
    });
    expect(checkBound(withBound(2, 17))).toMatchObject({
      invariant: 'INV-12',
      entryCount: 2,
      memoryBytes: 17,
    });
    expect(checkBound(withBound(2, 16))).toBeNull();
  });
});

/** The two bounded trackers share their refusals and their exact-fill split. */
const boundedTrackers = [
  {
    name: 'RangeListTracker',
    boundKey: 'rangesMax',
    ends: 'range ends must fit an Int32',
    make: (gfnCount: number, bound?: number) =>
      bound === undefined
        ? new RangeListTracker(gfnCount)
        : new RangeListTracker(gfnCount, { rangesMax: bound }),
  },
  {
    name: 'IntervalTreeTracker',
    boundKey: 'nodesMax',
    ends: 'interval ends must fit an Int32',
    make: (gfnCount: number, bound?: number) =>
      bound === undefined
        ? new IntervalTreeTracker(gfnCount)
        : new IntervalTreeTracker(gfnCount, { nodesMax: bound }),
  },
] as const;

describe.each(boundedTrackers)('$name edges', ({ name, boundKey, ends, make }) => {
  it('refuses a bad guest size or bound, naming it', () => {
    for (const gfnCount of [0, -1, 2.5]) {
      expect(() => make(gfnCount)).toThrow(`${name}: bad gfnCount ${gfnCount}`);
    }
    expect(() => make(2 ** 31, 1)).toThrow(`${name}: ${ends}`);
    expect(make(0x7fffffff, 1).gfnCount).toBe(0x7fffffff);
    for (const bound of [0, 1.5]) {
      expect(() => make(64, bound)).toThrow(`${name}: bad ${boundKey} ${bound}`);
    }
  });

  it('splits a range into two when that fills it exactly, without overflowing', () => {
    const tracker = make(64, 2);
    tracker.setShared(0, 10);
    expect(tracker.setPrivate(4, 2)).toBe('ok');
    expect(tracker.overflowed).toBe(false);
    expect(tracker.ranges()).toEqual([
      [0, 4],
      [6, 4],
    ]);
  });
});

describe('RangeListTracker edges', () => {
  it('with no room for a split keeps the left piece when both pieces are the same size', () => {
    const tracker = new RangeListTracker(64, { rangesMax: 1 });
    tracker.setShared(0, 10);
    expect(tracker.setPrivate(4, 2)).toBe('overflowed');
    expect(tracker.ranges()).toEqual([[0, 4]]);
  });
});

describe('IntervalTreeTracker edges', () => {
  it('with no room for a split keeps the larger piece, and the left one on a tie', () => {
    const tie = new IntervalTreeTracker(64, { nodesMax: 1 });
    tie.setShared(0, 10);
    expect(tie.setPrivate(4, 2)).toBe('overflowed');
    expect(tie.ranges()).toEqual([[0, 4]]);
    const right = new IntervalTreeTracker(64, { nodesMax: 1 });
    right.setShared(10, 10);
    expect(right.setPrivate(12, 2)).toBe('overflowed');
    expect(right.ranges()).toEqual([[14, 6]]);
  });
});
