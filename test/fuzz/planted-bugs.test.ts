import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { replayCase } from '../../src/fuzz/replay.js';
import { readReplayFile } from '../../src/fuzz/replay-format.js';
import { plantedBugs } from '../../src/policy/planted.js';

/**
 * The planted-bug suite (issue 5): a campaign finds each subtly broken policy within a bounded number
 * of cases, shrinks the first failing case to a small replay file, and the file replays to the same
 * violation with the same trace hash. Nothing here tells the fuzzer what a bug needs.
 */
const seed = 1;
const casesMax = 100;
const out = mkdtempSync(join(tmpdir(), 'asi-emu-planted-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe(`planted bugs are found and shrunk (campaign seed ${seed}, at most ${casesMax} cases each)`, () => {
  it("today's Linux ASI's three bugs (issue 22) are in the suite", () => {
    const names = plantedBugs.map((bug) => bug.policy.name);
    for (const name of [
      'planted-linux-asi-user-no-guest-ibpb',
      'planted-linux-asi-exit-no-kernel-data',
      'planted-linux-asi-nested-nmi-no-flush',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('the suite has the six bugs the issue names, and more', () => {
    const names = plantedBugs.map((bug) => bug.policy.name);
    for (const name of [
      'planted-barrier-one-sibling',
      'planted-kick-after-switch',
      'planted-no-flush-after-nmi',
      'planted-lost-wakeup',
      'planted-enters-beside-vmm',
      'planted-stun-race',
    ]) {
      expect(names).toContain(name);
    }
    expect(names.length).toBeGreaterThanOrEqual(6);
  });

  for (const bug of plantedBugs) {
    it(`${bug.policy.name}: ${bug.mistake}`, async () => {
      const { summary } = await runCampaign({
        policy: { name: bug.policy.name },
        seed,
        cases: casesMax,
        outDir: join(out, bug.policy.name),
        executor: inProcessExecutor(),
        casesPerTask: 1,
        maxFailures: 1,
      });
      expect(summary.violations, `no failing case in ${casesMax} cases`).toBe(1);
      const [failure] = summary.failures;
      expect(failure.caseIndex).toBeLessThan(casesMax);
      expect(bug.breaks).toContain(failure.failure);
      expect(failure.shrunk).toBe(true);

      const replayPath = join(out, bug.policy.name, failure.replay);
      const document = readReplayFile(replayPath);
      expect(document.shrink.shrunk).toBe(true);
      // Small: a handful of exits (a lost wake-up needs the others to run past INV-9's bound), one
      // core's worth of hyperthreads, few injected events, and a file of a few KiB.
      expect(document.size.exits).toBeLessThanOrEqual(bug.shrunkExitsMax ?? 50);
      expect(document.size.exits).toBeLessThanOrEqual(document.shrink.originalSize.exits);
      expect(document.size.hyperthreads).toBeLessThanOrEqual(4);
      expect(document.size.injectedEvents).toBeLessThanOrEqual(3);
      expect(statSync(replayPath).size).toBeLessThan(8 * 1024);

      const replayed = await replayCase(document);
      expect(replayed.reproduced).toBe(true);
      expect(replayed.verdict.failure).toBe(document.expected.failure);
      expect(replayed.traceHashMatches).toBe(true);
      expect(JSON.parse(readFileSync(replayPath, 'utf8')).schemaVersion).toBe(3);
    });
  }
});
