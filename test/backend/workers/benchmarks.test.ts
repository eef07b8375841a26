import { describe, expect, it } from 'vitest';
import { runWorkersBenchmarks } from '../../../src/backend/workers/benchmarks.js';
import { distBuilt } from './helpers.js';

/**
 * The benchmark report's shape, on a tiny budget (`asi-emu bench --backend workers --json` writes it;
 * scripts read these fields). Figures are not checked: benchmarks are benchmarks, not timed tests.
 */
describe.skipIf(!distBuilt)('workers benchmarks: report shape', () => {
  it('writes kick, exits, policies and scaling with the fields scripts read', async () => {
    const report = await runWorkersBenchmarks({
      kick: true,
      exits: true,
      policies: ['asi'],
      mixes: ['all-fast'],
      scaling: [1],
      timeMs: 20,
      quick: true,
    });
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.kick).toBeDefined();
    for (const field of [
      'roundTripNs',
      'kicksPerSecond',
      'rawSpinRoundTripNs',
      'rawWaitRoundTripNs',
      'ratio',
    ]) {
      expect(report.kick?.[field as keyof typeof report.kick]).toBeGreaterThan(0);
    }
    expect(report.kick?.threads).toBeGreaterThanOrEqual(2);
    // The distributions (issue 20): a quick run has too few trips for p99.9, never too few for p50.
    for (const series of [report.kick, report.kick?.rawSpin, report.kick?.rawWait]) {
      expect(series?.samples).toBeGreaterThan(0);
      expect(series?.p50Ns).toBeLessThanOrEqual(series?.p99Ns ?? 0);
      expect(series?.p999Ns).toBeNull();
    }
    expect(report.kick?.batches).toBeGreaterThan(0);
    expect(report.kick?.cpus).toBe(report.machine.cpus);
    expect(report.exits?.exitsPerSecondPerThread).toBeGreaterThan(0);
    expect(report.exits?.threads).toBeGreaterThan(0);
    expect(report.policies).toHaveLength(1);
    expect(report.policies[0]).toMatchObject({ policy: 'asi', mix: 'all-fast', violations: 0 });
    expect(report.scaling.length).toBeGreaterThan(0);
    expect(report.scaling[0].linearFraction).toBe(1);
  });
});
