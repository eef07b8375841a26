import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  concreteCase,
  fuzzConversionKeys,
  fuzzMixKeys,
  rawCaseArbitrary,
} from '../../src/fuzz/arbitraries.js';
import { caseSize, runConfigOf } from '../../src/fuzz/fuzz-case.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase } from '../../src/fuzz/shrink.js';

const seed = 20_251_123;

describe('fuzz case arbitraries', () => {
  it(`every drawn case is a valid run config within the fuzz limits (fast-check seed ${seed})`, () => {
    fc.assert(
      fc.property(rawCaseArbitrary(), (raw) => {
        const fuzzCase = concreteCase(raw);
        const config = runConfigOf(fuzzCase);
        const { machine } = fuzzCase;
        expect(machine.cores).toBeLessThanOrEqual(fuzzLimits.coresMax);
        expect(config.run.exits).toBeLessThanOrEqual(fuzzLimits.exitsMax);
        expect(config.run.stopOnViolation).toBe(true);
        expect(fuzzCase.choices.length).toBeLessThanOrEqual(fuzzLimits.choicesMax);
        // Core scheduling: no core runs vCPUs of two VMs (that alone breaks INV-3 under any policy).
        const vmOfCore = new Map<number, number>();
        machine.vms.forEach((vm, vmId) => {
          for (const thread of vm.pin) {
            const core = Math.floor(thread / machine.smt);
            expect(vmOfCore.get(core) ?? vmId).toBe(vmId);
            vmOfCore.set(core, vmId);
          }
        });
        const pinned = new Set(machine.vms.flatMap((vm) => vm.pin));
        for (const injection of fuzzCase.workload.injections) expect(pinned.has(injection.thread)).toBe(true);
        for (const choice of fuzzCase.choices) expect(choice >>> 0).toBe(choice);
        const confidential = machine.vms[0]?.confidential === true;
        const generated = (fuzzCase.workload.handlers ?? []).map(
          (handler) => `${handler.reason}:${handler.name}`,
        );
        expect(generated.length).toBeLessThanOrEqual(fuzzLimits.handlersMax);
        for (const key of Object.keys(fuzzCase.workload.mix.weights)) {
          expect(
            confidential
              ? [...fuzzMixKeys, ...fuzzConversionKeys, ...generated]
              : [...fuzzMixKeys, ...generated],
          ).toContain(key);
        }
        // Every generated handler is in the mix, and none writes read-only kernel text.
        for (const key of generated) expect(Object.keys(fuzzCase.workload.mix.weights)).toContain(key);
        for (const handler of fuzzCase.workload.handlers ?? []) {
          expect(handler.ops.length).toBeLessThanOrEqual(fuzzLimits.handlerOpsMax);
          for (const op of handler.ops) {
            if (op.op === 'access') expect(op.region === 'kernel-text' && op.write).toBe(false);
          }
        }
      }),
      { seed, numRuns: 300 },
    );
  });

  it('draws the scenario the issue lists: halts, VMM exits, accesses outside kvm:N, injections, jitter, smt 4', () => {
    const seen = new Set<string>();
    for (let index = 0; index < 200; index++) {
      const fuzzCase = generateCase(caseSeedOf(seed, index));
      const keys = Object.keys(fuzzCase.workload.mix.weights);
      if (keys.includes('HLT:halt')) seen.add('halt');
      if (keys.includes('VMCALL:send-ipi')) seen.add('wake-up');
      if (keys.some((key) => key.endsWith(':userspace'))) seen.add('vmm');
      if (keys.includes('EPT_VIOLATION:alloc')) seen.add('outside kvm:N');
      if (fuzzCase.workload.injections.some((injection) => injection.vector === 'nmi')) seen.add('nmi');
      if (fuzzCase.workload.injections.some((injection) => injection.vector === 'mc')) seen.add('mc');
      if (Object.keys(fuzzCase.costs).length > 0) seen.add('cost jitter');
      if (fuzzCase.machine.smt === 4) seen.add('smt 4');
      if (fuzzCase.machine.vms.length === 2) seen.add('two VMs');
      if (fuzzCase.choices.length > 0) seen.add('choices');
      for (const handler of fuzzCase.workload.handlers ?? []) {
        seen.add('generated handler');
        const regions = handler.ops.flatMap((op) => (op.op === 'access' ? [op.region] : []));
        if (regions.some((region) => ['keys', 'page-cache', 'other-processes', 'vmm-heap'].includes(region)))
          seen.add('generated handler reading host secrets');
        const cycles = handler.ops.reduce((sum, op) => sum + (op.op === 'compute' ? op.cycles : 0), 0);
        if (cycles >= 20_000) seen.add('long generated handler');
        if (cycles > 0 && cycles <= 500) seen.add('short generated handler');
        if (handler.action !== 'resume') seen.add(`generated ${handler.action}`);
      }
    }
    expect([...seen].sort()).toEqual(
      [
        'choices',
        'cost jitter',
        'generated halt',
        'generated handler',
        'generated handler reading host secrets',
        'generated ipi',
        'generated vmm',
        'halt',
        'long generated handler',
        'mc',
        'nmi',
        'outside kvm:N',
        'smt 4',
        'short generated handler',
        'two VMs',
        'vmm',
        'wake-up',
      ].sort(),
    );
  });

  it('a case seed always draws the same case, and neighbouring seeds other ones', () => {
    const first = generateCase(caseSeedOf(seed, 7));
    expect(generateCase(caseSeedOf(seed, 7))).toEqual(first);
    expect(generateCase(caseSeedOf(seed, 8))).not.toEqual(first);
    expect(caseSize(first).exits).toBe(first.run.exits);
  });
});
