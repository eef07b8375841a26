import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { safePolicyNames } from '../../src/policy/index.js';

/**
 * The safe built-in policies run clean: every generated scenario (smt up to 4, two VMs, NMIs, #MCs,
 * IRQs, halts, VMM exits, jitter) holds every invariant. Kept to a few seconds here; longer campaigns
 * run from the CLI (`asi-emu fuzz --policy asi --time 10m --seed S`).
 */
const seed = 5;
const cases = 40;
const out = mkdtempSync(join(tmpdir(), 'asi-emu-safe-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe(`safe policies hold every invariant (campaign seed ${seed}, ${cases} cases each)`, () => {
  for (const name of safePolicyNames) {
    it(name, async () => {
      const { summary } = await runCampaign({
        policy: { name },
        seed,
        cases,
        outDir: join(out, name),
        executor: inProcessExecutor(),
      });
      expect(summary.failures.map((failure) => `${failure.failure}: ${failure.detail}`)).toEqual([]);
      expect(summary.casesRun).toBe(cases);
      expect(summary.complete).toBe(true);
    });
  }
});
