import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../src/config/run-config.js';
import { policies } from '../../src/policy/index.js';
import { compareOnSim, mixesByName } from '../../src/report/comparison.js';
import { busyExitIntervalCycles } from './helpers.js';

/**
 * The RFC thread's claims, as the model shows them (modelled cycles, so no test depends on the speed
 * of this machine). Two cores of two busy threads, one VM of four vCPUs.
 */
function compare(mix: string, names: string[], seed = 7) {
  const config = parseRunConfig({
    machine: { cores: 2, smt: 2, memoryMiB: 48, vms: [{ vcpus: 4, guestMemoryMiB: 2 }] },
    // Busy threads (the RFC thread's setting): 20,000 guest cycles between exits, ~150k exits/s.
    workload: { mix, exitIntervalCycles: busyExitIntervalCycles },
    run: { exits: 6000, seed },
  });
  const { results } = compareOnSim(
    config,
    names.map((name) => policies[name]),
    mixesByName([mix]),
  );
  return Object.fromEntries(results.map((result) => [result.policy, result]));
}

describe('the RFC, in the model', () => {
  it('sysbench-cpu: asi costs far less than coschedule (kicking only on exits that need the full kernel)', () => {
    const results = compare('sysbench-cpu', ['asi', 'coschedule']);
    // Both flush the L1D on entry after the full kernel ran (about a quarter of entries here), and
    // since issue 19's calibration a flush costs the guest its L1D refill too (docs/calibration.md):
    // at this busy rate (~150k exits/s) that refill is a share both pay, so asi's lead shrank from
    // over 3x to ~2.4x (16.6% vs 39.4%, seed 7). The kicks are where asi saves: a third of them.
    expect(results.asi.overheadVsNone!).toBeLessThan(results.coschedule.overheadVsNone! / 2);
    expect(results.asi.kicksPer1kExits).toBeLessThan(results.coschedule.kicksPer1kExits / 3);
    expect(results.asi.isolatedExitShare).toBeGreaterThan(0.6);
  });

  it('nosmt loses about half of the guest capacity of a busy two-thread core', () => {
    const results = compare('sysbench-cpu', ['nosmt']);
    expect(results.nosmt.overheadVsNone!).toBeGreaterThan(0.45);
    expect(results.nosmt.overheadVsNone!).toBeLessThan(0.6);
  });

  it("idle-tracing: not holding the sibling on HLT exits recovers much of coscheduling's loss (Setje-Eilers)", () => {
    const results = compare('idle-tracing', ['coschedule', 'coschedule-nohlt']);
    const loss = results.coschedule.overheadVsNone!;
    const lossWithout = results['coschedule-nohlt'].overheadVsNone!;
    expect(loss).toBeGreaterThan(0.2);
    expect(lossWithout).toBeLessThan(loss / 2);
  });

  it('all-fast exits never leave isolation under asi: no switch, no kick', () => {
    const results = compare('all-fast', ['asi']);
    expect(results.asi.isolatedExitShare).toBe(1);
    expect(results.asi.switchesToFullPer1kExits).toBe(0);
    expect(results.asi.kicksPer1kExits).toBe(0);
    expect(results.asi.faultsByHandler).toEqual({});
  });

  it('all-slow exits always leave isolation, and the faults name their handlers', () => {
    const results = compare('all-slow', ['asi']);
    expect(results.asi.isolatedExitShare).toBe(0);
    expect(Object.keys(results.asi.faultsByHandler).sort()).toEqual([
      'EPT_VIOLATION',
      'EXTERNAL_INTERRUPT',
      'PAUSE',
    ]);
  });
});
