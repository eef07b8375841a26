import { describe, expect, it } from 'vitest';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { catalogueWith, type UserHandler } from '../../src/cpu/exits.js';
import { ConfigError } from '../../src/errors.js';
import { policies } from '../../src/policy/index.js';
import { simulate, testConfig } from './helpers.js';

/**
 * User handler programs (workload.handlers): added to an exit reason's variants, named by a mix as
 * REASON:name. Whether one needs the full kernel is not declared: it follows from kvm:N's page tables.
 */
const vcpuState = [
  { op: 'access', region: 'vcpu-struct', bytes: 256 },
  { op: 'access', region: 'percpu-kvm', bytes: 64 },
];
const handlers = [
  { reason: 'CPUID', name: 'reads-keys', ops: [...vcpuState, { op: 'access', region: 'keys', bytes: 128 }] },
  { reason: 'CPUID', name: 'vm-only', ops: [...vcpuState, { op: 'compute', cycles: 300 }] },
];
const mixOf = (variant: string) => ({
  name: `cpuid-${variant}`,
  description: 'every exit is one handler',
  source: 'a test: every exit is this handler',
  weights: { [`CPUID:${variant}`]: 1 },
});

describe('user handler programs', () => {
  it('a handler that reads host keys faults in kvm:N at every exit and switches to full; one that stays in VM state never does', () => {
    const secret = simulate(testConfig({ workload: { handlers, mix: mixOf('reads-keys') } }), policies.asi);
    // Every exit's handler faults (but those of the last exits, still in flight when the run stops).
    expect(Object.keys(secret.faultsByHandler)).toEqual(['CPUID']);
    expect(secret.faultsByHandler.CPUID).toBeGreaterThanOrEqual(secret.exits - 2);
    expect(secret.switchesToFullPer1kExits).toBeGreaterThan(990);
    expect(secret.isolatedExitShare).toBe(0);
    expect(secret.violations['INV-1']).toBe(0);

    const local = simulate(testConfig({ workload: { handlers, mix: mixOf('vm-only') } }), policies.asi);
    expect(local.faultsByHandler).toEqual({});
    expect(local.switchesToFullPer1kExits).toBe(0);
    expect(local.isolatedExitShare).toBe(1);
  });

  it("violation records name a user variant's exits by its name", () => {
    const result = simulate(
      testConfig({ workload: { handlers, mix: mixOf('reads-keys') }, run: { exits: 100 } }),
      policies.none,
    );
    const events = result.violationRecords.flatMap((record) => record.recentEvents ?? []);
    expect(events.some((line) => / exit CPUID:reads-keys$/.test(line))).toBe(true);
  });

  it('a mix naming only the reason draws the user variants by weight with the built-in one', () => {
    const result = simulate(
      testConfig({
        workload: {
          handlers: [{ ...handlers[0], weight: 3 }],
          mix: { name: 'cpuid', source: 'a test', weights: { CPUID: 1 } },
        },
        run: { exits: 2000 },
      }),
      policies.asi,
    );
    // The built-in CPUID:emulate has weight 1 and stays in kvm:N; reads-keys (3) faults: ~3/4 of exits.
    expect(result.faultsByHandler.CPUID / result.exits).toBeGreaterThan(0.65);
    expect(result.faultsByHandler.CPUID / result.exits).toBeLessThan(0.85);
  });

  const bad: [string, unknown, RegExp][] = [
    [
      // A new reason (VMFUNC) is accepted (test/cpu/exit-catalogue.test.ts); one not named like a reason is not.
      'an exit reason not named like one',
      [{ ...handlers[0], reason: 'cpuid' }],
      /workload\.handlers\[0\]\.reason: an exit reason/,
    ],
    [
      'a name a built-in variant has',
      [{ ...handlers[0], name: 'emulate' }],
      /workload\.handlers\[0\]\.name: .*taken: emulate/,
    ],
    ['two handlers of one name', [handlers[0], handlers[0]], /workload\.handlers\[1\]\.name/],
    [
      'an unknown region',
      [{ ...handlers[0], ops: [{ op: 'access', region: 'registers' }] }],
      /workload\.handlers\.0\.ops\.0\.region|workload\.handlers\[0\]\.ops\[0\]\.region/,
    ],
    [
      'an access past its region',
      [{ ...handlers[0], ops: [{ op: 'access', region: 'keys', offsetBytes: 16384, bytes: 64 }] }],
      /workload\.handlers\[0\]\.ops\[0\]: an access inside region keys \(offsetBytes \+ bytes <= 16384/,
    ],
    ['no ops', [{ ...handlers[0], ops: [] }], /ops/],
    [
      'a write to kernel text',
      [{ ...handlers[0], ops: [{ op: 'access', region: 'kernel-text', write: true }] }],
      /workload\.handlers\[0\]\.ops\[0\]\.write: false: kernel-text is mapped read-only/,
    ],
  ];
  it.each(bad)('refuses %s with a ConfigError naming the field', (_title, input, message) => {
    let error: unknown = null;
    try {
      parseRunConfig({ workload: { handlers: input } });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
  });

  it('the model stops with an error naming a handler that faults in the full kernel too (no retry loop)', () => {
    // Past the config's check: a handler writing read-only kernel text, put in by hand.
    const config = testConfig({ workload: { handlers, mix: mixOf('vm-only') } });
    const writesText: UserHandler = {
      reason: 'CPUID',
      name: 'writes-text',
      weight: 1,
      ops: [{ op: 'access', region: 'kernel-text', offsetBytes: 0, bytes: 64, write: true }],
      action: 'resume',
      kvmPath: 'a test',
    };
    const catalogue = catalogueWith([writesText]);
    const broken = {
      ...config,
      workload: { ...config.workload, handlers: [writesText], catalogue, mix: mixOf('writes-text') },
    };
    expect(() => runSim(broken, policies.asi)).toThrow(
      /handler CPUID:writes-text faulted at 0x[0-9a-f]+ in full mode: it cannot run in any address space/,
    );
  });

  it('a mix naming a user variant that does not exist names the mix field', () => {
    expect(() => parseRunConfig({ workload: { handlers, mix: mixOf('nope') } })).toThrow(
      /workload\.mix\.weights\.CPUID:nope: a variant of CPUID: emulate, reads-keys, vm-only/,
    );
  });
});
