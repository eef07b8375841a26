import { assert } from '../../assert.js';

/**
 * The host's record of which guest pages are shared (unencrypted), for one confidential guest.
 *
 * Why the host keeps one: to live-migrate an SEV guest the VMM must send private pages through the
 * SEV firmware (SEND_UPDATE_DATA) and shared pages as they are, so the guest reports every change of
 * a page's encryption status with a hypercall (KVM_HC_PAGE_ENC_STATUS in Ashish Kalra's series, later
 * KVM_HC_MAP_GPA_RANGE). How to store the record was argued on the kvm list in 2020-21:
 *   - a bitmap sized from the memslots: fixed memory, so a guest cannot make the host allocate
 *     ("the max. bitmap size is computed dynamically by walking the KVM memslots", Kalra, Jan 2021);
 *   - a list of shared ranges: small for sane guests, but "How should the kernel upper bound the size
 *     of the list in the face of malicious guests ... How will the kernel tag a guest as having
 *     exceeded its maximum list size ... Track a poison bit" (Steve Rutherford, Jan 2021);
 *   - an rbtree/interval tree: logarithmic updates, again needing a bound.
 * Boot is conversion-heavy: of 19,573 hypercalls during an SEV guest's boot, 19,479 were page
 * encryption status calls, mostly OVMF flipping bounce-buffer pages one at a time (Kalra, kvm list,
 * 24 Feb 2021). workloads.ts reproduces that shape.
 *
 * The three implementations (bitmap.ts, range-list.ts, interval-tree.ts) share this interface so they
 * can be compared differentially (INV-13) and benchmarked. All of them are bounded (INV-12).
 *
 * Overflow rule (range list, interval tree): when an update would need more entries than the bound,
 * the tracker sets `overflowed` (sticky until `reset()`) and applies the update only as far as it can
 * without growing, always erring towards *fewer* shared pages. So after an overflow the tracked set is
 * a subset of the true shared set: `isShared(gfn) === true` still means the page is shared, `false`
 * means private or unknown. That direction is chosen because believing a private page shared would let
 * the host touch guest-private memory (INV-10), while missing a shared page only costs the VMM a
 * fallback — it must treat the record as incomplete (the poison bit), e.g. rebuild it or refuse to
 * migrate. The bitmap never overflows.
 */

export type TrackerKind = 'bitmap' | 'range-list' | 'interval-tree';
export const trackerKinds: readonly TrackerKind[] = ['bitmap', 'range-list', 'interval-tree'];

export interface TrackerBound {
  /** What `entriesMax` counts. */
  readonly unit: 'pages' | 'ranges' | 'nodes';
  readonly entriesMax: number;
  /** Most bytes the record may ever need; `memoryBytes()` never exceeds it. */
  readonly memoryBytesMax: number;
}

/**
 * 'ok': applied exactly. 'overflowed': applied only partly (see the overflow rule above). 'rejected':
 * the guest's request was malformed (outside guest memory, no pages) and nothing changed — KVM answers
 * such a hypercall with -KVM_EINVAL.
 */
export type TrackerUpdate = 'ok' | 'overflowed' | 'rejected';

export interface SharedRangeTracker {
  readonly kind: TrackerKind;
  /** Guest memory size in 4 KiB frames; valid gfns are [0, gfnCount). */
  readonly gfnCount: number;
  setShared(gfn: number, npages: number): TrackerUpdate;
  setPrivate(gfn: number, npages: number): TrackerUpdate;
  isShared(gfn: number): boolean;
  /** Shared ranges as [start, npages], sorted, disjoint and coalesced (no two touch). Allocates. */
  ranges(): Array<[start: number, npages: number]>;
  /** Set once an update could not be represented within the bound. */
  readonly overflowed: boolean;
  /** Entries in use, in `bound.unit` (for the bitmap: all of its bits, always). */
  readonly entryCount: number;
  /** Bytes the live record occupies: what the host has to keep, and to serialize for migration. */
  memoryBytes(): number;
  readonly bound: TrackerBound;
  /** Back to "all private", overflow flag cleared. */
  reset(): void;
}

/** Whether a guest request names a non-empty range inside guest memory. */
export function isValidRange(gfnCount: number, gfn: number, npages: number): boolean {
  return (
    Number.isInteger(gfn) && Number.isInteger(npages) && gfn >= 0 && npages > 0 && gfn + npages <= gfnCount
  );
}

/** The reference model: one byte per guest frame, 1 = shared. */
export function applyToTruth(
  truthShared: Uint8Array,
  op: 'shared' | 'private',
  gfn: number,
  npages: number,
): boolean {
  if (!isValidRange(truthShared.length, gfn, npages)) return false;
  truthShared.fill(op === 'shared' ? 1 : 0, gfn, gfn + npages);
  return true;
}

/** INV-13 record: the first place a tracker disagrees with the per-page truth. */
export interface TrackingDisagreement {
  readonly invariant: 'INV-13';
  readonly tracker: TrackerKind;
  readonly gfn: number;
  /** What the tracker answers for `gfn` (through `isShared`, or through `ranges()` for 'ranges'). */
  readonly tracked: boolean;
  readonly truth: boolean;
  /**
   * 'isShared': an exact tracker's answer differs from the truth. 'overflow-contract': an overflowed
   * tracker claims a private page is shared. 'ranges': `ranges()` disagrees with `isShared` or is not
   * sorted, disjoint and coalesced.
   */
  readonly reason: 'isShared' | 'overflow-contract' | 'ranges';
  readonly overflowed: boolean;
}

/**
 * INV-13 differential check: every tracker against the per-page truth (1 = shared), and each
 * tracker's `ranges()` against its own `isShared`. A tracker that has not overflowed must agree
 * exactly; an overflowed one must still never call a private page shared. Returns the first
 * disagreement (trackers in the given order, lowest gfn first), or null.
 */
export function checkAgreement(
  trackers: readonly SharedRangeTracker[],
  truthShared: Uint8Array,
): TrackingDisagreement | null {
  for (const tracker of trackers) {
    assert(
      tracker.gfnCount === truthShared.length,
      `checkAgreement: ${tracker.kind} tracks ${tracker.gfnCount} frames, the truth has ${truthShared.length}`,
    );
    const ranges = tracker.ranges();
    const malformedAt = firstMalformedRange(ranges, tracker.gfnCount);
    if (malformedAt !== -1)
      return disagreement(tracker, malformedAt, true, truthShared[malformedAt] === 1, 'ranges');
    let rangeIndex = 0;
    for (let gfn = 0; gfn < truthShared.length; gfn++) {
      const tracked = tracker.isShared(gfn);
      const truth = truthShared[gfn] === 1;
      if (tracker.overflowed ? tracked && !truth : tracked !== truth) {
        return disagreement(
          tracker,
          gfn,
          tracked,
          truth,
          tracker.overflowed ? 'overflow-contract' : 'isShared',
        );
      }
      // Walk ranges() alongside: it must cover exactly the pages isShared reports.
      while (rangeIndex < ranges.length && ranges[rangeIndex][0] + ranges[rangeIndex][1] <= gfn) rangeIndex++;
      const inRanges = rangeIndex < ranges.length && ranges[rangeIndex][0] <= gfn;
      if (inRanges !== tracked) return disagreement(tracker, gfn, inRanges, truth, 'ranges');
    }
  }
  return null;
}

/** Start of the first range that is empty, out of bounds, unsorted, overlapping or touching; else -1. */
function firstMalformedRange(ranges: ReadonlyArray<readonly [number, number]>, gfnCount: number): number {
  let previousEnd = -1;
  for (const [start, npages] of ranges) {
    const clampedStart = Math.min(Math.max(start, 0), gfnCount - 1);
    if (!Number.isInteger(start) || !Number.isInteger(npages) || npages <= 0) return clampedStart;
    if (start < 0 || start + npages > gfnCount || start <= previousEnd) return clampedStart;
    previousEnd = start + npages;
  }
  return -1;
}

function disagreement(
  tracker: SharedRangeTracker,
  gfn: number,
  tracked: boolean,
  truth: boolean,
  reason: TrackingDisagreement['reason'],
): TrackingDisagreement {
  return {
    invariant: 'INV-13',
    tracker: tracker.kind,
    gfn,
    tracked,
    truth,
    reason,
    overflowed: tracker.overflowed,
  };
}

/** INV-12 record: a tracker outgrew its bound. */
export interface BoundViolation {
  readonly invariant: 'INV-12';
  readonly tracker: TrackerKind;
  readonly entryCount: number;
  readonly entriesMax: number;
  readonly memoryBytes: number;
  readonly memoryBytesMax: number;
}

/** INV-12 check for one tracker: entries and bytes within the bound. */
export function checkBound(tracker: SharedRangeTracker): BoundViolation | null {
  const memoryBytes = tracker.memoryBytes();
  const { entriesMax, memoryBytesMax } = tracker.bound;
  if (tracker.entryCount <= entriesMax && memoryBytes <= memoryBytesMax) return null;
  return {
    invariant: 'INV-12',
    tracker: tracker.kind,
    entryCount: tracker.entryCount,
    entriesMax,
    memoryBytes,
    memoryBytesMax,
  };
}

/** Bytes of a bitmap with one bit per guest frame, in 32-bit words: the reference size for the bounds. */
export function bitmapBytesFor(gfnCount: number): number {
  assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `bad gfnCount ${gfnCount}`);
  return Math.ceil(gfnCount / 32) * 4;
}
