import { afterEach, describe, expect, it, vi } from 'vitest';
import { assertDebugEnabled } from '../../src/assert.js';
import { RangeListTracker } from '../../src/coco/shared-tracking/range-list.js';
import { confidentialMachine } from '../helpers/machines.js';

/**
 * Issue 24: the debug-only self-checks (`assertDebug`, on with ASI_EMU_DEBUG=1) had never run in a test:
 * the range list's `isWellFormed` and the interval tree's AVL height bound were only handed to
 * `assertDebug`, which src/assert.ts reads at module load. Here the modules are loaded afresh with the
 * variable set (vi.stubEnv + vi.resetModules + dynamic import, as test/cache/l1d.test.ts does), and each
 * check is shown to pass on real state, through a whole confidential run, and to fire on corrupted state.
 */

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

/** The modules under test, loaded with ASI_EMU_DEBUG=1 (a module graph of their own). */
async function importDebug() {
  vi.stubEnv('ASI_EMU_DEBUG', '1');
  vi.resetModules();
  const assertModule = await import('../../src/assert.js');
  const rangeList = await import('../../src/coco/shared-tracking/range-list.js');
  const intervalTree = await import('../../src/coco/shared-tracking/interval-tree.js');
  return {
    debugEnabled: assertModule.assertDebugEnabled,
    AssertionErrorDebug: assertModule.AssertionError,
    RangeListDebug: rangeList.RangeListTracker,
    IntervalTreeDebug: intervalTree.IntervalTreeTracker,
  };
}

/** The range list's arrays, reached past `private` to corrupt them (starts[i] < ends[i] <= starts[i+1]). */
interface RangeListInsides {
  starts: Int32Array;
  ends: Int32Array;
}

/** The interval tree's node heights, reached past `private` to corrupt them. */
interface IntervalTreeInsides {
  heights: Int32Array;
}

describe('range list self-check (isWellFormed) with ASI_EMU_DEBUG=1', () => {
  it('fires on the next update once two ranges overlap', async () => {
    const { debugEnabled, AssertionErrorDebug, RangeListDebug } = await importDebug();
    expect(debugEnabled).toBe(true);
    const list = new RangeListDebug(1024);
    expect(list.setShared(10, 10)).toBe('ok');
    expect(list.setShared(30, 10)).toBe('ok');
    expect(list.ranges()).toEqual([
      [10, 10],
      [30, 10],
    ]);
    // Corrupted: the first range now runs into the second ([10, 35) and [30, 40)).
    (list as unknown as RangeListInsides).ends[0] = 35;
    // An update far from both leaves them as they are, and the check after it sees the overlap.
    expect(() => list.setShared(100, 5)).toThrow(AssertionErrorDebug);
    expect(() => list.setShared(200, 5)).toThrow(/range list must stay sorted, disjoint and coalesced/);
  });

  it('fires after a setPrivate too, on an empty range (start = end)', async () => {
    const { AssertionErrorDebug, RangeListDebug } = await importDebug();
    const list = new RangeListDebug(1024);
    list.setShared(10, 10);
    list.setShared(50, 10);
    (list as unknown as RangeListInsides).starts[1] = 60; // [60, 60): empty
    expect(() => list.setPrivate(12, 2)).toThrow(AssertionErrorDebug);
  });

  it.skipIf(assertDebugEnabled)(
    'without ASI_EMU_DEBUG the same corruption goes unnoticed (the check is debug-only)',
    () => {
      const list = new RangeListTracker(1024);
      list.setShared(10, 10);
      list.setShared(30, 10);
      (list as unknown as RangeListInsides).ends[0] = 35;
      expect(list.setShared(100, 5)).toBe('ok');
    },
  );
});

describe('interval tree self-check (AVL height bound) with ASI_EMU_DEBUG=1', () => {
  it('passes through hundreds of updates, then fires on an insert once stored heights are corrupted', async () => {
    const { AssertionErrorDebug, IntervalTreeDebug } = await importDebug();
    const gfnCount = 4096;
    const tree = new IntervalTreeDebug(gfnCount, { nodesMax: 512 });
    // Disjoint ranges two pages apart (never touching, so never merged): 300 nodes, a tree of height ~9.
    for (let i = 0; i < 300; i++) expect(tree.setShared(i * 3, 1)).toBe('ok');
    expect(tree.entryCount).toBe(300);
    expect(tree.validate()).toBeNull();
    expect(tree.height()).toBeLessThanOrEqual(12);
    // Corrupted: every node says it heads a subtree 60 high (the bound is 48). An insert recomputes only
    // the heights on its path, from the stored heights beside it.
    (tree as unknown as IntervalTreeInsides).heights.fill(60);
    expect(() => tree.setShared(3000, 1)).toThrow(AssertionErrorDebug);
    expect(() => tree.setShared(3010, 1)).toThrow(/AVL height bound broken/);
  });
});

describe('a whole confidential run with ASI_EMU_DEBUG=1', () => {
  it('runs every debug self-check on live state and none fires (the range list checks itself at every update)', async () => {
    vi.stubEnv('ASI_EMU_DEBUG', '1');
    vi.resetModules();
    const { assertDebugEnabled: enabled } = await import('../../src/assert.js');
    const { runSim } = await import('../../src/backend/sim/run-sim.js');
    const { parseRunConfig } = await import('../../src/config/run-config.js');
    const { policies } = await import('../../src/policy/index.js');
    const { RangeListTracker: RangeListDebug } = await import('../../src/coco/shared-tracking/range-list.js');
    const { IntervalTreeTracker: IntervalTreeDebug } = await import(
      '../../src/coco/shared-tracking/interval-tree.js'
    );
    expect(enabled).toBe(true);
    const wellFormed = vi.spyOn(
      RangeListDebug.prototype as unknown as { isWellFormed(): boolean },
      'isWellFormed',
    );
    const treeHeight = vi.spyOn(IntervalTreeDebug.prototype, 'height');
    const config = parseRunConfig({
      machine: confidentialMachine,
      workload: { mix: 'snp-guest' },
      run: { exits: 1500, seed: 24 },
    });
    const result = runSim(config, policies.asi);
    expect(Object.values(result.violations).every((count) => count === 0)).toBe(true);
    expect(result.confidential[0].toPrivate).toBeGreaterThan(10);
    expect(result.confidential[0].toShared).toBeGreaterThan(10);
    // The self-checks ran on every update of the trackers, and every one of them held.
    expect(wellFormed.mock.calls.length).toBeGreaterThan(10);
    expect(wellFormed.mock.results.every((call) => call.value === true)).toBe(true);
    expect(treeHeight.mock.calls.length).toBeGreaterThan(10);
    expect(treeHeight.mock.results.every((call) => (call.value as number) <= 48)).toBe(true);
    wellFormed.mockRestore();
    treeHeight.mockRestore();
  });
});
