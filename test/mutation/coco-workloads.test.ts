import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  applyOp,
  type ConversionOp,
  createPrng,
  createTracker,
  hostileWorkload,
  materialize,
  replay,
  workload,
  workloadGfnCountMin,
  workloadNames,
} from '../../src/coco/shared-tracking/index.js';

/**
 * The shared-tracking workloads, pinned (issue 24, mutation testing): the benchmarks and docs/perf-log.md
 * compare trackers on these exact sequences, so a change to a generator must be deliberate: update the
 * digests below and say so in the log. The INV-12/INV-13 suites only check the workloads' shape.
 */
function digest(ops: Iterable<ConversionOp>): string {
  const hash = createHash('sha256');
  let count = 0;
  for (const op of ops) {
    hash.update(`${op.op[0]}${op.gfn}+${op.npages};`);
    count++;
  }
  return `${count}:${hash.digest('hex').slice(0, 16)}`;
}

describe('workload generators, pinned', () => {
  it('workloadNames lists the three workloads by the names workload() takes', () => {
    expect(workloadNames).toEqual(['boot', 'dma-churn', 'hostile']);
  });

  it('createPrng: the same first draws', () => {
    const next = createPrng(7);
    expect([next(), next(), next()]).toEqual([588686121, 1937383562, 4286812467]);
  });

  it('each workload: the same operations for a seed (sha256 of the sequence)', () => {
    expect(digest(workload('boot', 11, 1 << 16))).toBe('19479:ee059657394ed097');
    expect(digest(workload('dma-churn', 11, 1 << 16, 3001))).toBe('3001:2e717ca3855dc024');
    expect(digest(workload('hostile', 11, 1 << 16, 3001))).toBe('3001:2d903537f18b3975');
    expect(digest(workload('dma-churn', 4, 70_000, 2000))).toBe('2000:cfaa64807a31c67a');
    expect(digest(workload('hostile', 5, 4, 9))).toBe('9:adf7d8478eaf9d03');
  });

  it('refuse inputs they cannot honour, naming them', () => {
    expect(() => createPrng(1.5)).toThrow('createPrng: seed must be an integer, got 1.5');
    const small = workloadGfnCountMin - 1;
    expect(() => Array.from(workload('boot', 1, small))).toThrow(
      `workload needs at least ${workloadGfnCountMin} guest frames, got ${small}`,
    );
    expect(Array.from(workload('boot', 1, workloadGfnCountMin)).length).toBeGreaterThan(0);
    expect(() => Array.from(workload('dma-churn', 1, 1 << 16, 4))).toThrow('dma-churn: opsCount 4 too small');
    expect(Array.from(workload('dma-churn', 1, 1 << 16, 5))).toHaveLength(5);
    expect(() => Array.from(workload('hostile', 1, 3, 10))).toThrow('hostile: gfnCount 3 too small');
    expect(() => Array.from(workload('hostile', 1, 4, 0))).toThrow('hostile: bad opsCount 0');
    expect(Array.from(workload('hostile', 1, 4, 1))).toHaveLength(1);
  });
});

describe('replay', () => {
  it('counts the updates that overflowed the bound, as applying them one by one does', () => {
    // Single even pages that never touch overflow a 4-range list soon.
    const ops = Array.from(hostileWorkload(3, 4096, 10));
    const oneByOne = createTracker('range-list', 4096, { rangesMax: 4 });
    const expected = ops.filter((op) => applyOp(oneByOne, op) === 'overflowed').length;
    expect(expected).toBeGreaterThan(0);
    const tracker = createTracker('range-list', 4096, { rangesMax: 4 });
    expect(replay(tracker, materialize('hostile', ops))).toBe(expected);
    expect(tracker.ranges()).toEqual(oneByOne.ranges());
  });
});
