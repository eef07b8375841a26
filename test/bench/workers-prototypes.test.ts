import { describe, expect, it } from 'vitest';
import { measureKickBreakdown } from '../../bench/kick-breakdown.bench.js';
import { SharedKernelRig } from '../../bench/shared-kernel.js';
import { parseMachineConfig } from '../../src/config/machine-config.js';
import { simRegionBytes } from '../../src/machine.js';
import { computeLayout } from '../../src/memory/layout.js';
import { planRegions } from '../../src/memory/regions.js';
import { distBuilt } from '../backend/workers/helpers.js';

/**
 * The issue 21 item 2 prototypes in bench/: shapes and agreement only (benchmarks are not timed tests).
 */
const machineInput = { cores: 1, smt: 2, memoryMiB: 64, vms: [{ vcpus: 2, guestMemoryMiB: 4 }] };

function rig(workingSetPages: number): SharedKernelRig {
  const config = parseMachineConfig(machineInput);
  const layout = computeLayout(config, planRegions(config));
  return new SharedKernelRig({
    machineInput,
    buffer: new SharedArrayBuffer(layout.totalBytes),
    memory: new WebAssembly.Memory({
      initial: Math.ceil(simRegionBytes(layout) / 65536),
      maximum: 8192,
      shared: true,
    }),
    firstPfn: Math.floor(layout.frameCount / 2),
    workingSetPages,
    seed: 7,
  });
}

describe('shared-kernel prototype', () => {
  it('the kernel over the shared memory and the JavaScript classes agree on every access of a stream', () => {
    // 64 pages: more lines than the L1D holds, so misses (and fill-buffer work) happen on both paths.
    for (const pages of [8, 64]) {
      const paths = rig(pages);
      const js = paths.batch('js', 20_000);
      const locked = paths.batch('wasm-locked', 20_000);
      const other = rig(pages).batch('wasm-unlocked', 20_000);
      expect(locked.hits).toBe(js.hits);
      expect(other.hits).toBe(js.hits);
      expect(js.hits).toBeGreaterThan(0);
      if (pages === 64) expect(js.hits).toBeLessThan(js.accesses);
    }
  });
});

describe.skipIf(!distBuilt)('kick-breakdown benchmark: report shape', () => {
  it('reports raw, each protocol item and the kick, with ratios to raw', async () => {
    const report = await measureKickBreakdown({ rounds: 1, batchesPerRound: 2, tripsPerBatch: 10 });
    expect(report.rows.map((row) => row.level)).toEqual(['raw', 'mailbox', 'casMode', 'notify', 'kick']);
    expect(report.rows[0].ratioToRaw).toBe(1);
    for (const row of report.rows) {
      expect(row.p50Ns).toBeGreaterThan(0);
      expect(row.trips).toBeGreaterThan(0);
    }
  });
});
