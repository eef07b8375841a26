import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultExploreCase } from '../../src/explore/explore-case.js';
import { explore } from '../../src/explore/explorer.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { namedPolicy } from '../../src/policy/policy-module.js';

/**
 * Issue 23's "no longer than the fuzzer's shrunk case": for planted bugs found at 2 exits on
 * 1 core x 2, the explorer's shortest counterexample needs no more exits and no more hyperthreads
 * than the smallest case the fuzzer shrinks for the same invariant (a short campaign, seed 1, in this
 * thread). The explorer's unit is a transition, the fuzzer's a case (exits, hyperthreads, choices):
 * exits and hyperthreads are what both have.
 */
const out = mkdtempSync(join(tmpdir(), 'asi-emu-explore-fuzz-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("the explorer's counterexample is no longer than the fuzzer's shrunk case", () => {
  for (const name of ['planted-no-barrier', 'planted-kick-after-switch', 'planted-stun-race']) {
    it(name, async () => {
      const explored = await explore({
        policy: namedPolicy(name),
        fuzzCase: defaultExploreCase(2),
        bounds: { exits: 2, interrupts: { nmi: 0, irq: 0, mc: 0 }, maxDepth: 200, timeLimitMs: null },
      });
      const found = explored.counterexample;
      expect(found).not.toBeNull();
      if (found === null) return;
      const { summary } = await runCampaign({
        policy: { name },
        seed: 1,
        cases: 60,
        maxFailures: 4,
        outDir: join(out, name),
        executor: inProcessExecutor(),
      });
      const shrunk = summary.failures.filter(
        (failure) => failure.failure === found.violation.id && failure.shrunk,
      );
      expect(shrunk.length, `the fuzzer shrinks a ${found.violation.id} case`).toBeGreaterThan(0);
      const fewestExits = Math.min(...shrunk.map((failure) => failure.size.exits));
      const fewestThreads = Math.min(...shrunk.map((failure) => failure.size.hyperthreads));
      expect(found.replay.exits).toBeLessThanOrEqual(fewestExits);
      expect(found.fuzzCase.machine.cores * found.fuzzCase.machine.smt).toBeLessThanOrEqual(fewestThreads);
    });
  }
});
