import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assert } from '../../src/assert.js';
import { ConfigError } from '../../src/errors.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor, poolExecutor } from '../../src/fuzz/executor.js';
import { MachineCache, runFuzzCase } from '../../src/fuzz/fuzz-case.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import { mergeSummaries, mergeSummaryFiles } from '../../src/fuzz/merge.js';
import { policySpecOf } from '../../src/fuzz/policy-spec.js';
import { replayCase } from '../../src/fuzz/replay.js';
import { readReplayFile } from '../../src/fuzz/replay-format.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase, shrinkCase } from '../../src/fuzz/shrink.js';
import type { FuzzSummary } from '../../src/fuzz/summary.js';
import { doFuzzTask } from '../../src/fuzz/tasks.js';
import { definePolicy } from '../../src/policy/policy.js';
import { loadPolicyModule } from '../../src/policy/policy-module.js';

/**
 * Campaigns: sharding (the union of the shards is the unsharded campaign), merging, the pool giving
 * what this thread gives, and user policy modules. Small shrink budgets keep it fast: a shrink is
 * deterministic for a given budget, so both sides of every comparison use the same one.
 */
const seed = 11;
const cases = 12;
const policy = { name: 'planted-no-flush-after-nmi' };
const shrinkRunsMax = 10;
const root = mkdtempSync(join(tmpdir(), 'asi-emu-campaign-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** What a campaign found, without where and how fast. */
function findings(summary: FuzzSummary) {
  return {
    casesRun: summary.casesRun,
    complete: summary.complete,
    byFailure: summary.byFailure,
    failures: summary.failures.map(({ replay: _replay, ...rest }) => rest),
  };
}

describe(`fuzz campaigns (${policy.name}, seed ${seed}, ${cases} cases)`, () => {
  let unsharded: FuzzSummary;

  it('the union of the shards equals the unsharded campaign, and merge joins them', async () => {
    const whole = await runCampaign({
      policy,
      seed,
      cases,
      outDir: join(root, 'whole'),
      executor: inProcessExecutor(),
      shrinkRunsMax,
    });
    unsharded = whole.summary;
    expect(unsharded.complete).toBe(true);
    expect(unsharded.casesRun).toBe(cases);
    expect(unsharded.violations).toBeGreaterThan(0);
    expect(unsharded.violations).toBeLessThan(cases);

    const shardPaths: string[] = [];
    for (let index = 1; index <= 3; index++) {
      const { summary, summaryPath } = await runCampaign({
        policy,
        seed,
        cases,
        shard: { index, count: 3 },
        outDir: join(root, `machine-${index}`),
        executor: inProcessExecutor(),
        shrinkRunsMax,
      });
      expect(summary.casesRun).toBe(cases / 3);
      expect(summary.complete).toBe(false); // one shard is not the whole campaign
      expect(summaryPath).toBe(join(root, `machine-${index}`, `summary-shard-${index}-of-3.json`));
      shardPaths.push(summaryPath);
    }
    const mergedPath = join(root, 'merged', 'merged.json');
    const merged = mergeSummaryFiles(shardPaths, mergedPath);
    expect(findings(merged)).toEqual(findings(unsharded));
    expect(merged.shards.map((run) => run.shard)).toEqual(['1/3', '2/3', '3/3']);
    // Replay paths are rebased onto the merged summary's directory and the files replay as recorded.
    for (const failure of merged.failures) {
      const path = resolve(dirname(mergedPath), failure.replay);
      expect(existsSync(path)).toBe(true);
      expect(readReplayFile(path).expected.traceHash).toBe(failure.traceHash);
    }
  });

  it('merge refuses shards of another campaign and shards given twice', async () => {
    const other = await runCampaign({
      policy,
      seed: seed + 1,
      cases,
      shard: { index: 1, count: 3 },
      outDir: join(root, 'other'),
      executor: inProcessExecutor(),
      shrinkRunsMax,
    });
    const shard1 = join(root, 'machine-1', 'summary-shard-1-of-3.json');
    expect(() => mergeSummaryFiles([shard1, other.summaryPath], join(root, 'bad.json'))).toThrow(
      /summary-shard-1-of-3\.json: campaign: a shard of the same campaign as .*seed 11/,
    );
    expect(() => mergeSummaryFiles([shard1, shard1], join(root, 'bad.json'))).toThrow(
      /shard 1\/3 is also in/,
    );
    expect(() =>
      mergeSummaries([{ path: 'x.json', summary: { ...unsharded, shards: [] } }], join(root, 'partial.json')),
    ).not.toThrow();
    expect(() => mergeSummaryFiles([join(root, 'nope.json')], join(root, 'bad.json'))).toThrow(ConfigError);
  });

  it('a piscina pool finds exactly what this thread finds', async () => {
    const executor = poolExecutor({ jobs: 2 });
    try {
      const pooled = await runCampaign({
        policy,
        seed,
        cases,
        outDir: join(root, 'pool'),
        executor,
        shrinkRunsMax,
      });
      expect(findings(pooled.summary)).toEqual(findings(unsharded));
      expect(pooled.summary.jobs).toBe(2);
    } finally {
      await executor.close();
    }
  });

  it('a time-boxed campaign runs a prefix of its shard and says it is not complete', async () => {
    let now = 0;
    const { summary } = await runCampaign({
      policy: { name: 'asi' },
      seed,
      timeLimitMs: 1000,
      // A fake clock that moves 100 ms per reading: the campaign stops drawing after a few batches.
      clock: () => (now += 100),
      outDir: join(root, 'timed'),
      executor: inProcessExecutor(),
    });
    expect(summary.casesRun).toBeGreaterThan(0);
    expect(summary.casesRun % 4).toBe(0);
    expect(summary.complete).toBe(false);
    expect(summary.campaign.cases).toBeNull();
    expect(summary.violations).toBe(0);
  });

  it('a time-boxed campaign stops drawing when its time is up, then shrinks every failure it found', async () => {
    let now = 0;
    const { summary } = await runCampaign({
      policy,
      seed,
      timeLimitMs: 1000,
      // 100 ms per reading: time is up after a few batches, while shrinks are still queued.
      clock: () => (now += 100),
      outDir: join(root, 'timed-failing'),
      executor: inProcessExecutor(),
      shrinkRunsMax,
    });
    expect(summary.violations).toBeGreaterThan(1);
    expect(summary.failures.every((failure) => failure.shrunk)).toBe(true);
  });

  it('keeps exactly --max-failures failures, even when a batch in flight finds more', async () => {
    const { summary } = await runCampaign({
      policy,
      seed,
      cases: 200,
      outDir: join(root, 'max-failures'),
      executor: inProcessExecutor(),
      maxFailures: 2,
      casesPerTask: 16,
      shrinkRunsMax,
    });
    expect(summary.violations).toBe(2);
    const replays = readdirSync(join(root, 'max-failures')).filter((name) => name.endsWith('.replay.json'));
    expect(replays).toHaveLength(2);
  });

  it('an aborted campaign finishes what is in flight, writes its summary and stops', async () => {
    const controller = new AbortController();
    const { summary } = await runCampaign({
      policy,
      seed,
      cases: 1000,
      outDir: join(root, 'aborted'),
      executor: inProcessExecutor(),
      shrinkRunsMax,
      signal: controller.signal,
      onProgress: (progress) => {
        if (progress.casesRun >= 8) controller.abort();
      },
    });
    expect(summary.casesRun).toBe(8);
    expect(summary.complete).toBe(false);
    expect(readdirSync(join(root, 'aborted'))).toContain('summary.json');
  });

  it('fuzzes a user policy module (loaded by path) and replays its case', async () => {
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'user-policy.mjs');
    const spec = await policySpecOf(undefined, fixture);
    expect(spec).toEqual({ name: 'user-asi-no-barrier', module: fixture, moduleSha256: expect.any(String) });
    const { summary } = await runCampaign({
      policy: spec,
      seed,
      cases: 50,
      outDir: join(root, 'user'),
      executor: inProcessExecutor(),
      maxFailures: 1,
      casesPerTask: 1,
      shrinkRunsMax,
    });
    expect(summary.violations).toBe(1);
    expect(['INV-1', 'INV-3']).toContain(summary.failures[0].failure);
    const document = readReplayFile(join(root, 'user', summary.failures[0].replay));
    expect(document.policy).toEqual(spec);
    // The file names its module, but replay loads only a module the user names (issue 18).
    await expect(replayCase(document)).rejects.toThrow(
      /--policy-module: the policy module this replay file was made with/,
    );
    const replayed = await replayCase(document, { policyModule: fixture });
    expect(replayed.traceHashMatches).toBe(true);
    expect(replayed.moduleMatches).toBe(true);
  });

  it('refuses a module that exports no policy, or a --policy that names another one', async () => {
    const fixtures = join(import.meta.dirname, '..', 'fixtures');
    await expect(loadPolicyModule(join(fixtures, 'not-a-policy.mjs'))).rejects.toThrow(
      /--policy-module: an ES module .* exporting a policy .*no policy exported/,
    );
    await expect(loadPolicyModule(join(fixtures, 'missing.mjs'))).rejects.toThrow(/ENOENT/);
    await expect(policySpecOf('asi', join(fixtures, 'user-policy.mjs'))).rejects.toThrow(
      /--policy: the name of/,
    );
    await expect(policySpecOf('nope', undefined)).rejects.toThrow(
      /--policy: one of none, kvm-default, nosmt/,
    );
  });
});

describe('a run that throws is a finding too', () => {
  it(`verdict 'error', shrunk like a violation (seed ${seed})`, () => {
    // A user policy with a bug of another kind: it throws on the first switch to full.
    const throwing = definePolicy({
      name: 'throws-on-switch',
      description: 'test policy',
      kickBeforeFull: () => {
        throw new RangeError('policy bug');
      },
    });
    for (let caseIndex = 0; caseIndex < 20; caseIndex++) {
      const caseSeed = caseSeedOf(seed, caseIndex);
      const { verdict } = runFuzzCase(generateCase(caseSeed), throwing, { machines: new MachineCache() });
      if (verdict.failure === null) continue;
      expect(verdict).toMatchObject({ failure: 'error', error: 'policy bug', violation: null });
      const shrunk = shrinkCase(caseSeed, throwing, 'error', { runsMax: 50 });
      assert(shrunk !== null, 'a deterministic policy fails again');
      expect(shrunk.verdict.failure).toBe('error');
      expect(shrunk.fuzzCase.run.exits).toBeLessThanOrEqual(generateCase(caseSeed).run.exits);
      return;
    }
    throw new Error('no case reached a switch to full in 20 cases');
  });
});

describe('every case is drawn in a job, from its seed', () => {
  it(`a 'case' task (a hung run's case, for its replay file) gives the case its run drew (seed ${seed})`, async () => {
    for (const caseIndex of [0, 1, 7]) {
      const caseSeed = caseSeedOf(seed, caseIndex);
      const drawn = await doFuzzTask({ kind: 'case', policy, caseSeed, limits: fuzzLimits });
      expect(drawn).toEqual(generateCase(caseSeed, fuzzLimits));
    }
  });
});
