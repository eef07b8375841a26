import { unreachable } from '../../assert.js';
import { BitmapTracker } from './bitmap.js';
import { IntervalTreeTracker } from './interval-tree.js';
import { RangeListTracker } from './range-list.js';
import type { SharedRangeTracker, TrackerKind } from './tracker.js';

/**
 * The host's shared-range tracking (see tracker.ts for the why): one interface, three bounded
 * implementations, the INV-12/INV-13 checks, and the workloads that exercise them.
 */

export { BitmapTracker } from './bitmap.js';
export { defaultNodesMax, IntervalTreeTracker, intervalTreeBytesPerNode } from './interval-tree.js';
export { defaultRangesMax, RangeListTracker, rangeListBytesPerRange } from './range-list.js';
export {
  applyToTruth,
  type BoundViolation,
  bitmapBytesFor,
  checkAgreement,
  checkBound,
  isValidRange,
  type SharedRangeTracker,
  type TrackerBound,
  type TrackerKind,
  type TrackerUpdate,
  type TrackingDisagreement,
  trackerKinds,
} from './tracker.js';
export {
  applyOp,
  bootHypercallCount,
  bootWorkload,
  type ConversionOp,
  createPrng,
  dmaChurnWorkload,
  hostileWorkload,
  type MaterializedWorkload,
  materialize,
  replay,
  type WorkloadName,
  workload,
  workloadGfnCountMin,
  workloadNames,
} from './workloads.js';

export interface TrackerOptions {
  /** Bound of the range list, in ranges (default: the bitmap's bytes / 8). */
  readonly rangesMax?: number;
  /** Bound of the interval tree, in nodes (default: the bitmap's bytes / 20). */
  readonly nodesMax?: number;
}

/** A tracker of the given kind for a guest of `gfnCount` frames. */
export function createTracker(
  kind: TrackerKind,
  gfnCount: number,
  options: TrackerOptions = {},
): SharedRangeTracker {
  switch (kind) {
    case 'bitmap':
      return new BitmapTracker(gfnCount);
    case 'range-list':
      return new RangeListTracker(gfnCount, { rangesMax: options.rangesMax });
    case 'interval-tree':
      return new IntervalTreeTracker(gfnCount, { nodesMax: options.nodesMax });
    default:
      return unreachable(kind, 'tracker kind');
  }
}
