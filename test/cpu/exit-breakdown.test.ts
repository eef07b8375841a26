import { describe, expect, it } from 'vitest';
import { ExitStatField, exitBreakdown, newExitStats } from '../../src/cpu/exit-breakdown.js';
import { exitCatalogue } from '../../src/cpu/exits.js';
import { policies } from '../../src/policy/index.js';
import { simulate, testConfig } from '../sim/helpers.js';

/**
 * The per-exit-reason breakdown (issue 20, item 2) agrees with the run's own counters, which are
 * counted elsewhere on the exit path: every exit lands in exactly one row, the kicks and switches to
 * full of the rows add up to the threads' totals, and the rows are sorted by total time. Seed 1.
 */
describe('byReason on the sim backend', () => {
  const cases = [
    ['asi', 'sysbench-cpu'],
    ['coschedule', 'sysbench-cpu'],
    ['none', 'idle-tracing'],
    ['asi-stun', 'all-slow'],
  ] as const;

  it.each(cases)('%s on %s: the rows add up to the run counters', (policy, mix) => {
    const result = simulate(testConfig({ workload: { mix }, run: { exits: 2000 } }), policies[policy]);
    const rows = result.byReason;
    expect(rows.length).toBeGreaterThan(0);
    const sum = (pick: (row: (typeof rows)[number]) => number) =>
      rows.reduce((total, row) => total + pick(row), 0);
    // Kick exits are counted apart from workload exits in the result; the table has both.
    expect(sum((row) => row.count)).toBe(result.exits + result.kickExits);
    const kickRow = rows.find((row) => row.reason === 'EXTERNAL_INTERRUPT' && row.variant === 'kick');
    expect(kickRow?.count ?? 0).toBe(result.kickExits);
    expect(sum((row) => row.kicks)).toBe(
      result.perThread.reduce((total, thread) => total + thread.kicksSent, 0),
    );
    expect(sum((row) => row.switchesToFull)).toBe(
      result.perThread.reduce((total, thread) => total + thread.switchesToFull, 0),
    );
    expect(sum((row) => row.share)).toBeCloseTo(1, 9);
    expect(sum((row) => row.timeShare)).toBeCloseTo(1, 9);
    for (let i = 1; i < rows.length; i++)
      expect(rows[i - 1].totalCycles).toBeGreaterThanOrEqual(rows[i].totalCycles);
    for (const row of rows) {
      expect(row.isolatedShare).toBeGreaterThanOrEqual(0);
      expect(row.isolatedShare).toBeLessThanOrEqual(1);
      if (row.meanCycles === null) continue;
      // An exit takes at least its round trip (costs.exitRoundTrip: both halves) to the next entry.
      expect(row.minCycles).toBeGreaterThanOrEqual(testConfig().costs.exitRoundTrip);
      expect(row.minCycles as number).toBeLessThanOrEqual(row.meanCycles);
      expect(row.meanCycles).toBeLessThanOrEqual(row.maxCycles as number);
    }
  });

  it('a baseline handles nothing in isolation; asi handles its fast exits there and never its VMM exits', () => {
    const config = testConfig({ run: { exits: 2000 } });
    for (const row of simulate(config, policies.none).byReason) expect(row.isolatedShare).toBe(0);
    const asi = simulate(config, policies.asi).byReason;
    const row = (reason: string, variant: string) =>
      asi.find((candidate) => candidate.reason === reason && candidate.variant === variant);
    expect(row('MSR_WRITE', 'fastpath')?.isolatedShare).toBe(1);
    expect(row('MSR_WRITE', 'fastpath')?.kicks).toBe(0);
    expect(row('EPT_MISCONFIG', 'userspace')?.isolatedShare).toBe(0);
    // The device interrupt's handler reaches host data: every one switches to full (but the exit each
    // of the 2 threads may still have in flight when the run stops).
    const device = row('EXTERNAL_INTERRUPT', 'device');
    expect(device?.switchesToFull).toBeLessThanOrEqual(device?.count ?? 0);
    expect(device?.switchesToFull).toBeGreaterThanOrEqual((device?.count ?? 0) - 2);
  });

  it('the same seed gives the same rows', () => {
    const config = testConfig({ run: { exits: 1000, seed: 7 } });
    expect(simulate(config, policies.asi).byReason).toEqual(simulate(config, policies.asi).byReason);
  });
});

describe('exitBreakdown merges threads', () => {
  it('sums counts and cycles, keeps the least and most, and leaves out variants never taken', () => {
    const variants = exitCatalogue.reduce((sum, spec) => sum + spec.variants.length, 0);
    const a = newExitStats(variants);
    const b = newExitStats(variants);
    const set = (
      stats: Float64Array,
      slot: number,
      values: Partial<Record<keyof typeof ExitStatField, number>>,
    ) => {
      for (const [field, value] of Object.entries(values))
        stats[slot * ExitStatField.count + ExitStatField[field as keyof typeof ExitStatField]] = value;
    };
    set(a, 0, {
      exits: 2,
      handled: 2,
      isolated: 1,
      timed: 2,
      cycles: 300,
      minCycles: 100,
      maxCycles: 200,
      kicksSent: 1,
    });
    set(b, 0, { exits: 1, handled: 1, isolated: 1, timed: 1, cycles: 50, minCycles: 50, maxCycles: 50 });
    // Slot 1: one exit still in flight at the end (no time yet), worth less total time than slot 0.
    set(b, 1, { exits: 1 });
    const rows = exitBreakdown(exitCatalogue, [a, b]);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      reason: exitCatalogue[0].name,
      variant: exitCatalogue[0].variants[0].name,
      count: 3,
      share: 0.75,
      isolatedShare: 2 / 3,
      kicks: 1,
      minCycles: 50,
      maxCycles: 200,
      totalCycles: 350,
      timeShare: 1,
    });
    expect(rows[0].meanCycles).toBeCloseTo(350 / 3, 9);
    expect(rows[1]).toMatchObject({
      count: 1,
      meanCycles: null,
      minCycles: null,
      maxCycles: null,
      timeShare: 0,
    });
  });
});
