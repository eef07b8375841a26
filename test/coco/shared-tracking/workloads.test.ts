import { describe, expect, it } from 'vitest';
import {
  applyOp,
  applyToTruth,
  bootHypercallCount,
  bootWorkload,
  checkAgreement,
  createPrng,
  createTracker,
  dmaChurnWorkload,
  hostileWorkload,
  materialize,
  replay,
  trackerKinds,
  workload,
} from '../../../src/coco/shared-tracking/index.js';

const gfnCount = 1 << 18;

describe('workload generators', () => {
  it('are deterministic for a seed and differ between seeds', () => {
    const a = Array.from(dmaChurnWorkload(1, gfnCount, 500));
    expect(Array.from(dmaChurnWorkload(1, gfnCount, 500))).toEqual(a);
    expect(Array.from(dmaChurnWorkload(2, gfnCount, 500))).not.toEqual(a);
    const prng = createPrng(99);
    const again = createPrng(99);
    expect([prng(), prng(), prng()]).toEqual([again(), again(), again()]);
  });

  it('boot: 19,479 status hypercalls, mostly single 4 KiB flips, all inside guest memory', () => {
    const ops = Array.from(bootWorkload(3, gfnCount));
    expect(ops).toHaveLength(bootHypercallCount);
    const singlePage = ops.filter((op) => op.npages === 1).length;
    expect(singlePage / ops.length).toBeGreaterThan(0.85);
    expect(ops.every((op) => op.gfn >= 0 && op.gfn + op.npages <= gfnCount)).toBe(true);
  });

  it('boot and dma-churn stay within every tracker’s default bound, and all trackers agree', () => {
    for (const name of ['boot', 'dma-churn'] as const) {
      const trackers = trackerKinds.map((kind) => createTracker(kind, gfnCount));
      const truth = new Uint8Array(gfnCount);
      for (const op of workload(name, 11, gfnCount)) {
        applyToTruth(truth, op.op, op.gfn, op.npages);
        for (const tracker of trackers) expect(applyOp(tracker, op)).toBe('ok');
      }
      expect(trackers.map((tracker) => tracker.overflowed)).toEqual([false, false, false]);
      expect(checkAgreement(trackers, truth)).toBeNull();
    }
  });

  it('dma-churn keeps its static ranges and flips the same pool pages back to private', () => {
    const tracker = createTracker('range-list', gfnCount);
    const work = materialize('dma-churn', dmaChurnWorkload(5, gfnCount, 2000));
    expect(work.opsCount).toBe(2000);
    expect(replay(tracker, work)).toBe(0);
    expect(tracker.ranges()).toHaveLength(3);
  });

  it('hostile: single pages that never touch, so every shared page is its own range', () => {
    const ops = Array.from(hostileWorkload(9, 4096, 3000));
    expect(ops.every((op) => op.npages === 1 && op.gfn % 2 === 0)).toBe(true);
    const bitmap = createTracker('bitmap', 4096);
    for (const op of ops) applyOp(bitmap, op);
    expect(bitmap.ranges().every(([, npages]) => npages === 1)).toBe(true);
    expect(bitmap.ranges().length).toBeGreaterThan(1000);
  });
});
