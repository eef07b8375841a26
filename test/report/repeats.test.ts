import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/backend/result.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { policies } from '../../src/policy/index.js';
import {
  compareRepeated,
  formatComparison,
  mixesByName,
  repeatedRunCount,
  simRunner,
} from '../../src/report/comparison.js';
import {
  aggregateRepeats,
  containsZero,
  markIndistinguishable,
  meanCi95,
  type RepeatedResult,
  repeatSeeds,
  tQuantile95,
} from '../../src/report/repeats.js';
import { runWithEvents } from './run-with-events.js';

/**
 * Issue 20: repeats with paired seeds, means and 95% CIs. The statistics are checked against values
 * computed elsewhere (R's qt and t.test), the aggregation against runs made here.
 */
describe('the statistics', () => {
  it('t(0.975, dof) is the Student t quantile (R: qt(0.975, c(1, 4, 9, 29)))', () => {
    expect(tQuantile95(1)).toBeCloseTo(12.7062047, 6);
    expect(tQuantile95(4)).toBeCloseTo(2.7764451, 6);
    expect(tQuantile95(9)).toBeCloseTo(2.2621572, 6);
    expect(tQuantile95(29)).toBeCloseTo(2.0452296, 6);
  });

  it('mean and 95% CI half-width as t.test gives them (R: t.test(1:5)$conf.int is 1.036757 4.963243)', () => {
    const interval = meanCi95([1, 2, 3, 4, 5]);
    expect(interval.mean).toBe(3);
    expect(interval.ci95).toBeCloseTo(4.963243 - 3, 5);
    expect(meanCi95([7]).ci95).toBeNull();
    expect(meanCi95([2, 2, 2]).ci95).toBe(0);
  });

  it('an interval holds 0 when |mean| <= half-width; one repeat holds nothing', () => {
    expect(containsZero({ mean: 0.5, ci95: 0.6 })).toBe(true);
    expect(containsZero({ mean: -0.5, ci95: 0.5 })).toBe(true);
    expect(containsZero({ mean: 0.5, ci95: 0.4 })).toBe(false);
    expect(containsZero({ mean: 0, ci95: null })).toBe(false);
  });
});

describe('repeat seeds', () => {
  it('the first is the run seed; the rest are distinct, deterministic and differ between run seeds', () => {
    const seeds = repeatSeeds(1, 50);
    expect(seeds[0]).toBe(1);
    expect(new Set(seeds).size).toBe(50);
    expect(repeatSeeds(1, 50)).toEqual(seeds);
    expect(repeatSeeds(1, 5)).toEqual(seeds.slice(0, 5));
    const other = repeatSeeds(2, 50);
    expect(other.slice(1).filter((seed) => seeds.includes(seed))).toEqual([]);
    for (const seed of seeds) expect(Number.isSafeInteger(seed) && seed >= 0).toBe(true);
  });
});

/** A run result with the figures given (the rest from a real small run). */
function withFigures(base: RunResult, figures: Partial<RunResult>): RunResult {
  return { ...base, ...figures, violations: { ...base.violations, ...figures.violations } };
}

describe('aggregating repeats', () => {
  const { result: base } = runWithEvents('asi');

  it('means go where the values were, with their CIs; violations are totals; every repeat is kept', () => {
    const runs = [0.1, 0.12, 0.14].map((overhead, repeat) =>
      withFigures(base, {
        seed: repeat + 1,
        overheadVsNone: overhead,
        guestShare: 0.5 + repeat / 100,
        violations: { ...base.violations, 'INV-1': repeat },
      }),
    );
    const result = aggregateRepeats(runs, true);
    expect(result.repeats).toBe(3);
    expect(result.seed).toBe(1);
    expect(result.overheadVsNone).toBeCloseTo(0.12, 12);
    expect(result.ci95.overheadVsNone).toBeCloseTo(meanCi95([0.1, 0.12, 0.14]).ci95 as number, 12);
    expect(result.guestShare).toBeCloseTo(0.51, 12);
    expect(result.violations['INV-1']).toBe(0 + 1 + 2);
    expect(result.perRepeat.map((repeat) => repeat.overheadVsNone)).toEqual([0.1, 0.12, 0.14]);
    expect(result.perRepeat.map((repeat) => repeat.seed)).toEqual([1, 2, 3]);
    expect(result.meantToBeSafe).toBe(true);
    // A sim run's wall time is not part of its result: the same seed gives the same JSON.
    expect(result.perRepeat[0]).not.toHaveProperty('wallSeconds');
  });

  it('records are the first repeat’s (its trace shows them); firstViolations look in every repeat', () => {
    const { result: none } = runWithEvents('none');
    expect(none.violationRecords.length).toBeGreaterThan(0);
    const clean = { ...none, violationRecords: [], violations: { ...base.violations } };
    const result = aggregateRepeats([clean, { ...none, seed: 2 }], false);
    expect(result.violationRecords).toEqual([]);
    expect(result.firstViolations).toEqual(none.violationRecords.slice(0, 3));
  });

  it('overhead without a baseline stays null, with no interval', () => {
    const result = aggregateRepeats([base, { ...base, seed: 9 }], false);
    expect(result.overheadVsNone).toBeNull();
    expect(result.ci95.overheadVsNone).toBeNull();
  });

  it('marks two policies not distinguishable when the CI of their paired difference holds 0', () => {
    const policy = (name: string, overheads: number[]) =>
      aggregateRepeats(
        overheads.map((overhead, repeat) =>
          withFigures(base, { policy: name, seed: repeat + 1, overheadVsNone: overhead }),
        ),
        true,
      );
    // b differs from a by +0.05 in every repeat: a tight difference, distinguishable even though
    // each one's own interval is wide. c differs from a by noise around 0, and from b by ~0.05.
    const a = policy('a', [0.1, 0.2, 0.15, 0.3]);
    const b = policy('b', [0.15, 0.25, 0.2, 0.35]);
    const c = policy('c', [0.12, 0.18, 0.16, 0.3]);
    markIndistinguishable([a, b, c]);
    expect(a.notDistinguishableFrom.map((other) => other.policy)).toEqual(['c']);
    expect(c.notDistinguishableFrom.map((other) => other.policy).sort()).toEqual(['a']);
    expect(b.notDistinguishableFrom.map((other) => other.policy)).toEqual([]);
    const [aVsC] = a.notDistinguishableFrom;
    expect(aVsC.figure).toBe('overheadVsNone');
    expect(aVsC.difference).toBeCloseTo(-0.0025, 12);
    expect(c.notDistinguishableFrom[0].difference).toBeCloseTo(0.0025, 12);
    const text = formatComparison([a, b, c]);
    expect(text).toMatch(/a vs c on sysbench-cpu\s+not distinguishable at 4 repeats/);
    expect(text).not.toMatch(/a vs b/);
  });
});

describe('compareRepeated on the sim', () => {
  it('every policy shares the seeds of a repeat, none is each repeat’s baseline, and the runs are the single runs', async () => {
    const config = parseRunConfig({
      machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
      run: { exits: 300, seed: 4 },
    });
    const compared = [policies.asi, policies.coschedule];
    const runner = simRunner(config, new Map(compared.map((policy) => [policy.name, policy])));
    const comparison = await compareRepeated({
      policies: compared.map((policy) => ({ name: policy.name, meantToBeSafe: true })),
      mixes: mixesByName(['sysbench-cpu']),
      seed: 4,
      repeats: 3,
      baseline: 'always',
      keepEvents: false,
      run: runner.run,
    }).finally(runner.dispose);
    expect(comparison.seeds).toEqual(repeatSeeds(4, 3));
    const [asi, coschedule] = comparison.results;
    expect(asi.perRepeat.map((repeat) => repeat.seed)).toEqual(comparison.seeds);
    expect(coschedule.perRepeat.map((repeat) => repeat.seed)).toEqual(comparison.seeds);
    // Repeat r is the run a single comparison with seed r's seed makes (paired against its own none).
    const { compareOnSim } = await import('../../src/report/comparison.js');
    for (const [repeat, seed] of comparison.seeds.entries()) {
      const single = compareOnSim(
        { ...config, run: { ...config.run, seed } },
        compared,
        mixesByName(['sysbench-cpu']),
      );
      expect(asi.perRepeat[repeat].guestShare).toBe(single.results[0].guestShare);
      expect(asi.perRepeat[repeat].overheadVsNone).toBe(single.results[0].overheadVsNone);
      expect(coschedule.perRepeat[repeat].traceHash).toBe(single.results[1].traceHash);
    }
    expect(asi.ci95.overheadVsNone).toBeGreaterThan(0);
  });

  it("tells a run's progress as it goes: the sim every 65,536 steps, in exits of that run", async () => {
    // 20,000 exits of coschedule take ~27 steps each (docs/measurement.md): several calls, the same
    // every time (the sim is deterministic).
    const config = parseRunConfig({ run: { exits: 20000, seed: 2 } });
    const runner = simRunner(config, new Map([['coschedule', policies.coschedule]]));
    const told: { label: string; exits: number }[] = [];
    let current = '';
    await compareRepeated({
      policies: [{ name: 'coschedule', meantToBeSafe: true }],
      mixes: mixesByName(['sysbench-cpu']),
      seed: 2,
      repeats: 1,
      baseline: 'always',
      keepEvents: false,
      run: runner.run,
      onRun: (label, done) => {
        current = done ? '' : label;
      },
      onRunProgress: (exits) => told.push({ label: current, exits }),
    }).finally(runner.dispose);
    const ofCoschedule = told.filter((entry) => entry.label === 'coschedule on sysbench-cpu');
    expect(ofCoschedule.length).toBeGreaterThan(3);
    expect(told.every((entry) => entry.label !== '')).toBe(true);
    for (const [index, entry] of ofCoschedule.entries()) {
      expect(entry.exits).toBeGreaterThan(index === 0 ? 0 : ofCoschedule[index - 1].exits);
      expect(entry.exits).toBeLessThanOrEqual(20000);
    }
  });
});

describe('overhead vs kvm-default (issue 19 item 6)', () => {
  const config = parseRunConfig({
    machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
    run: { exits: 300, seed: 4 },
  });

  it('paired like overhead vs none: each repeat against kvm-default run on its own seed, also when it is not compared', async () => {
    const compared = [policies.asi];
    const runner = simRunner(config, new Map(compared.map((policy) => [policy.name, policy])));
    const requested: string[] = [];
    const plan = {
      policies: compared.map((policy) => ({ name: policy.name, meantToBeSafe: true })),
      mixes: mixesByName(['sysbench-cpu']),
      seed: 4,
      repeats: 3,
      baseline: 'always' as const,
      keepEvents: false,
    };
    const comparison = await compareRepeated({
      ...plan,
      run: (request) => {
        requested.push(`${request.policy}@${request.seed}`);
        return runner.run(request);
      },
    }).finally(runner.dispose);
    // Per repeat: none, kvm-default, then asi, all on the repeat's seed.
    expect(requested).toEqual(
      comparison.seeds.flatMap((seed) => [`none@${seed}`, `kvm-default@${seed}`, `asi@${seed}`]),
    );
    expect(repeatedRunCount(plan)).toBe(requested.length);
    const [asi] = comparison.results;
    const kvmDefaultRunner = simRunner(config, new Map([['kvm-default', policies['kvm-default']]]));
    for (const [repeat, seed] of comparison.seeds.entries()) {
      const { result: kvm } = await kvmDefaultRunner.run({
        policy: 'kvm-default',
        mix: mixesByName(['sysbench-cpu'])[0],
        seed,
        repeat,
        keepEvents: false,
      });
      expect(asi.perRepeat[repeat].overheadVsKvmDefault).toBe(
        1 - asi.perRepeat[repeat].guestWork / kvm.guestWork,
      );
    }
    kvmDefaultRunner.dispose();
    const mean = asi.perRepeat.reduce((sum, repeat) => sum + (repeat.overheadVsKvmDefault as number), 0) / 3;
    expect(asi.overheadVsKvmDefault).toBeCloseTo(mean, 12);
    expect(asi.ci95.overheadVsKvmDefault).not.toBeNull();
  });

  it('kvm-default against itself is exactly 0; without the baseline (workers: if-compared) it is null', async () => {
    const compared = [policies['kvm-default'], policies.asi];
    const runner = simRunner(config, new Map(compared.map((policy) => [policy.name, policy])));
    const both = await compareRepeated({
      policies: compared.map((policy) => ({ name: policy.name, meantToBeSafe: false })),
      mixes: mixesByName(['sysbench-cpu']),
      seed: 4,
      repeats: 2,
      baseline: 'if-compared',
      keepEvents: false,
      run: runner.run,
    });
    expect(both.results[0].perRepeat.map((repeat) => repeat.overheadVsKvmDefault)).toEqual([0, 0]);
    expect(both.results[0].ci95.overheadVsKvmDefault).toBe(0);
    expect(both.results[1].overheadVsNone).toBeNull();
    const alone = await compareRepeated({
      policies: [{ name: 'asi', meantToBeSafe: true }],
      mixes: mixesByName(['sysbench-cpu']),
      seed: 4,
      repeats: 2,
      baseline: 'if-compared',
      keepEvents: false,
      run: runner.run,
    }).finally(runner.dispose);
    expect(alone.results[0].overheadVsKvmDefault).toBeNull();
    expect(formatComparison(alone.results)).toMatch(/^asi\s+sysbench-cpu\s+\S+ ± \S+\s+-\s+-\s/m);
  });

  it('the verdict of a safe policy says what it costs beside kvm-default, cheaper only outside the CI', () => {
    const base = aggregateRepeats([runWithEvents('asi', { run: { exits: 200 } }).result], true);
    const verdict = (overhead: number, ci: number | null) => {
      const result: RepeatedResult = {
        ...base,
        overheadVsKvmDefault: overhead,
        ci95: { ...base.ci95, overheadVsKvmDefault: ci },
      };
      return formatComparison([result]);
    };
    expect(verdict(-0.1, 0.02)).toMatch(
      /safe: .*; cheaper than kvm-default \(unsafe\) by 10\.00 ± 2\.00 points/,
    );
    expect(verdict(0.1, 0.02)).toMatch(/; dearer than kvm-default \(unsafe\) by 10\.00 ± 2\.00 points/);
    expect(verdict(0.00003, 0.00001)).toMatch(
      /; the same guest work as kvm-default \(unsafe\), to 0\.01 point$/m,
    );
    expect(verdict(-0.01, 0.02)).toMatch(
      /; vs kvm-default \(unsafe\): -1\.00 ± 2\.00 points .*within its 95% CI/,
    );
  });
});
