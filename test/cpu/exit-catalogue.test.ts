import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../src/config/run-config.js';
import { newReasonsMax } from '../../src/config/workload.js';
import { catalogueWith, exitCatalogue, exitReasonIndex } from '../../src/cpu/exits.js';
import { parseUserMix, resolveMix } from '../../src/cpu/mixes.js';
import { ConfigError } from '../../src/errors.js';
import { policies } from '../../src/policy/index.js';
import { simulate, testConfig } from '../sim/helpers.js';

/**
 * The exit catalogue (cpu/exits.ts): the reasons issue 19 added (DR_ACCESS, MSR_READ, CR_ACCESS,
 * INVLPG, XSETBV, MSR_WRITE's slow paths) run in the sim, and where they leave isolation follows from
 * the regions they touch; user handlers may name a reason the catalogue lacks. Seed 1 throughout.
 */
const mixOf = (weights: Record<string, number>) => ({
  name: Object.keys(weights).join('+'),
  description: 'a test mix',
  source: 'a test: these exits only',
  weights,
});
const run = (weights: Record<string, number>, workload: object = {}) =>
  simulate(testConfig({ workload: { mix: mixOf(weights), ...workload }, run: { exits: 400 } }), policies.asi);

describe('the exit catalogue', () => {
  it('names every reason once, every variant once per reason, each with its KVM path', () => {
    const names = exitCatalogue.map((spec) => spec.name);
    expect(new Set(names).size).toBe(names.length);
    for (const spec of exitCatalogue) {
      const variants = spec.variants.map((variant) => variant.name);
      expect(new Set(variants).size, spec.name).toBe(variants.length);
      for (const variant of spec.variants) expect(variant.kvmPath.length, variant.name).toBeGreaterThan(0);
    }
    for (const name of ['DR_ACCESS', 'MSR_READ', 'CR_ACCESS', 'INVLPG', 'XSETBV'])
      expect(exitReasonIndex(name), name).toBeGreaterThanOrEqual(0);
  });

  // [mix key, handled entirely in isolation under asi (share of exits, 0..1): exact or a range]
  const cases: [string, number | [number, number]][] = [
    ['DR_ACCESS:lazy-switch', 1],
    ['DR_ACCESS:host-breakpoints', 0],
    ['MSR_READ:common', 1],
    ['MSR_READ:pmu', 0],
    ['MSR_READ:userspace', 0],
    ['MSR_WRITE:common', 1],
    ['MSR_WRITE:pmu', 0],
    ['MSR_WRITE:userspace', 0],
    ['CR_ACCESS', 1],
    ['INVLPG', 1],
    ['XSETBV', 1],
    // The assumed variant weights: 10% of debug-register exits restore host breakpoints.
    ['DR_ACCESS', [0.8, 0.97]],
    ['MSR_READ', [0.82, 0.97]],
  ];
  it.each(cases)(
    '%s runs in the sim under asi (seed 1) with the isolation its regions give it',
    (key, share) => {
      const result = run({ [key]: 1 });
      expect(result.exits).toBeGreaterThanOrEqual(400);
      expect(result.deadlocked).toBe(false);
      expect(result.violationRecords).toEqual([]);
      if (typeof share === 'number') expect(result.isolatedExitShare).toBe(share);
      else {
        expect(result.isolatedExitShare).toBeGreaterThan(share[0]);
        expect(result.isolatedExitShare).toBeLessThan(share[1]);
      }
    },
  );

  it('a host-data variant faults in kvm:N and the fault names its reason', () => {
    expect(Object.keys(run({ 'MSR_WRITE:pmu': 1 }).faultsByHandler)).toEqual(['MSR_WRITE']);
    expect(Object.keys(run({ 'DR_ACCESS:host-breakpoints': 1 }).faultsByHandler)).toEqual(['DR_ACCESS']);
  });

  it('a DR_ACCESS-heavy (Windows-guest-like) mix is accepted and runs safely under asi and coschedule', () => {
    const weights = { DR_ACCESS: 10, MSR_WRITE: 40, HLT: 25, MSR_READ: 10, EPT_VIOLATION: 10, CR_ACCESS: 5 };
    for (const policy of [policies.asi, policies.coschedule]) {
      const result = simulate(testConfig({ workload: { mix: mixOf(weights) }, run: { exits: 600 } }), policy);
      expect(result.violationRecords, policy.name).toEqual([]);
      expect(result.exits).toBeGreaterThanOrEqual(600);
    }
  });

  it('the slow MSR_WRITE paths are drawn only when a mix names them (the built-in mixes stay fast path)', () => {
    const writes = exitCatalogue[exitReasonIndex('MSR_WRITE')].variants;
    expect(writes.filter((variant) => variant.weight > 0).map((variant) => variant.name)).toEqual([
      'fastpath',
    ]);
    expect(run({ MSR_WRITE: 1 }).isolatedExitShare).toBe(1);
  });

  it('KVM_HC_MAP_GPA_RANGE is a mix key for VMCALL:map-gpa-range', () => {
    const resolved = resolveMix(mixOf({ KVM_HC_MAP_GPA_RANGE: 1 }));
    const vmcall = exitReasonIndex('VMCALL');
    expect([...resolved.reasons]).toEqual([vmcall]);
    expect(exitCatalogue[vmcall].variants[resolved.variants[0]].name).toBe('map-gpa-range');
  });

  it('refuses a mix that draws the kick exit, naming the weight', () => {
    expect(() => parseUserMix(mixOf({ 'EXTERNAL_INTERRUPT:kick': 1 }), 'workload.mix')).toThrow(
      /workload\.mix\.weights\.EXTERNAL_INTERRUPT:kick: no weight: kick exits are caused by sibling kicks/,
    );
    expect(() => parseUserMix(mixOf({ HLT: 1, 'EXTERNAL_INTERRUPT:kick': 5 }))).toThrow(ConfigError);
    // A zero weight draws nothing, so it is no kick-drawing mix.
    expect(() => parseUserMix(mixOf({ HLT: 1, 'EXTERNAL_INTERRUPT:kick': 0 }))).not.toThrow();
  });
});

describe('a user handler may name a reason the catalogue lacks', () => {
  const vmfunc = {
    reason: 'VMFUNC',
    name: 'eptp-switch',
    ops: [
      { op: 'access', region: 'vcpu-struct', bytes: 256 },
      { op: 'access', region: 'keys', bytes: 64 },
    ],
  };

  it('becomes a new reason after the built-in ones, drawn by its mix key, with its faults named', () => {
    expect(
      catalogueWith([{ ...vmfunc, weight: 1, action: 'resume', kvmPath: 'x', ops: [] }]).at(-1)?.name,
    ).toBe('VMFUNC');
    for (const key of ['VMFUNC', 'VMFUNC:eptp-switch']) {
      const result = run({ [key]: 1, HLT: 1 }, { handlers: [vmfunc] });
      expect(result.faultsByHandler.VMFUNC, key).toBeGreaterThan(100);
      expect(result.violationRecords).toEqual([]);
    }
  });

  it('an unknown reason with no handler is still refused, naming it', () => {
    expect(() => testConfig({ workload: { mix: mixOf({ VMFUNC: 1 }) } })).toThrow(
      /workload\.mix\.weights\.VMFUNC: an exit reason: .*DR_ACCESS/,
    );
  });

  it('refuses a new reason that does not look like one, and more new reasons than stats have counters', () => {
    expect(() => parseRunConfig({ workload: { handlers: [{ ...vmfunc, reason: 'vm func' }] } })).toThrow(
      /workload\.handlers\[0\]\.reason: an exit reason/,
    );
    const many = Array.from({ length: newReasonsMax + 1 }, (_, i) => ({ ...vmfunc, reason: `NEW_${i}` }));
    expect(() => parseRunConfig({ workload: { handlers: many } })).toThrow(
      new RegExp(`workload\\.handlers: at most ${newReasonsMax} exit reasons`),
    );
  });
});
