import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import { generateCase } from '../../src/fuzz/shrink.js';

/**
 * Confidential scenarios (issue 7): the fuzzer draws SEV-SNP-style VMs with conversions, lazy accepts
 * and sometimes a hostile VMM that remaps validated pages; INV-10..13 hold under asi, and the planted
 * confidential bugs (a guest that re-validates a remapped page; a VMM that keeps its mapping of pages
 * turned private) are found and shrunk.
 */
const seed = 3;
const out = mkdtempSync(join(tmpdir(), 'asi-emu-coco-fuzz-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const allConfidential = { ...fuzzLimits, confidentialPercent: 100 };

describe(`confidential fuzz scenarios (campaign seed ${seed})`, () => {
  it('are drawn: a confidential first VM, conversion exits in the mix, hostile VMMs in some cases', () => {
    const cases = Array.from({ length: 40 }, (_, index) => generateCase(index + 1, allConfidential));
    expect(cases.every((fuzzCase) => fuzzCase.machine.vms[0].confidential === true)).toBe(true);
    expect(cases.some((fuzzCase) => fuzzCase.workload.confidential?.hostileVmm)).toBe(true);
    expect(
      cases.some((fuzzCase) =>
        Object.keys(fuzzCase.workload.mix.weights).some((key) => key.startsWith('VMGEXIT')),
      ),
    ).toBe(true);
    const defaults = Array.from({ length: 60 }, (_, index) => generateCase(index + 1));
    const share =
      defaults.filter((fuzzCase) => fuzzCase.machine.vms[0].confidential).length / defaults.length;
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.6);
  });

  it('asi holds INV-10..13 (and every other invariant) over confidential cases, hostile VMMs included', async () => {
    const { summary } = await runCampaign({
      policy: { name: 'asi' },
      seed,
      cases: 40,
      outDir: join(out, 'clean'),
      executor: inProcessExecutor(),
      limits: allConfidential,
    });
    expect(summary.failures.map((failure) => `${failure.failure}: ${failure.detail}`)).toEqual([]);
  });

  for (const [flag, invariant] of [
    ['plantedGuestRevalidates', 'INV-11'],
    ['plantedKeepsVmmMapping', 'INV-10'],
  ] as const) {
    it(`a planted ${flag} is found (${invariant}) and shrunk`, async () => {
      const { summary } = await runCampaign({
        policy: { name: 'asi' },
        seed,
        cases: 60,
        outDir: join(out, flag),
        executor: inProcessExecutor(),
        limits: { ...allConfidential, [flag]: 1 },
        casesPerTask: 1,
        maxFailures: 1,
      });
      expect(summary.violations).toBe(1);
      expect(summary.failures[0].failure).toBe(invariant);
      expect(summary.failures[0].shrunk).toBe(true);
    });
  }
});
