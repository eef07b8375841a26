import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { LinuxAsiCpu } from '../../src/cpu/linux-asi-cpu.js';
import { ConfigError } from '../../src/errors.js';
import { concreteCase, rawCaseArbitrary } from '../../src/fuzz/arbitraries.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { type FuzzCase, MachineCache, runFuzzCase } from '../../src/fuzz/fuzz-case.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import {
  haltMixKey,
  linuxAsiDrawsOf,
  linuxAsiExtrasArbitrary,
  policyForCase,
  safeSiblingProtocols,
  withLinuxAsiExtras,
} from '../../src/fuzz/linux-asi-draws.js';
import { replayCase } from '../../src/fuzz/replay.js';
import { readReplayFile } from '../../src/fuzz/replay-format.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase } from '../../src/fuzz/shrink.js';
import { parseTaintPolicy } from '../../src/linux-asi/settings-input.js';
import { asiClasses, postedClassPolicies } from '../../src/linux-asi/taints.js';
import { policies } from '../../src/policy/index.js';
import { linuxAsiPolicy } from '../../src/policy/linux-asi.js';
import { plantedBug } from '../../src/policy/planted.js';
import { loadPolicyModule } from '../../src/policy/policy-module.js';
import { replayFirstDrawnFailure } from '../helpers/replay-drawn.js';

/**
 * The fuzzer draws today's Linux ASI's choices (issue 22 item 6, fuzz/linux-asi-draws.ts): sibling
 * protocol, exitOn and class taint policies as data in the case, injection pairs that nest, HLTs that
 * context-switch. Every randomized test names its seed.
 */
const seed = 22;
const linuxAsi = policies['linux-asi'];
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const out = mkdtempSync(join(tmpdir(), 'asi-emu-linux-asi-draws-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('what each policy draws', () => {
  it('linux-asi: a safe protocol, exitOn, supersets of the posted taint policies', () => {
    // The other values only: a drawn setting differs from the policy's own (absent: its own).
    expect(linuxAsiDrawsOf(linuxAsi)).toEqual({
      siblingProtocols: ['stun'],
      exitOn: ['mm-switch'],
      taintPolicies: true,
      pairsAndHalts: true,
      classes: ['kvm', 'user'],
    });
  });

  it('an unsafe protocol and a taint policy of its own are kept as they are; no linuxAsi: nothing', () => {
    expect(linuxAsiDrawsOf(policies['linux-asi-upstream'])?.siblingProtocols).toBeNull();
    expect(linuxAsiDrawsOf(plantedBug('planted-linux-asi-user-no-guest-ibpb').policy)?.taintPolicies).toBe(
      false,
    );
    expect(linuxAsiDrawsOf(policies.asi)).toBeNull();
  });

  it("a user's module is fuzzed as given (only the workload draws: pairs, HLTs)", async () => {
    const { policy } = await loadPolicyModule(join(fixtures, 'linux-asi-plain-policy.mjs'));
    expect(linuxAsiDrawsOf(policy)).toEqual({
      siblingProtocols: null,
      exitOn: null,
      taintPolicies: false,
      pairsAndHalts: true,
      classes: ['kvm', 'user'],
    });
  });
});

describe(`drawn cases (seed ${seed})`, () => {
  it('a policy without linuxAsi draws the cases it drew before; linux-asi the same case plus its draws', () => {
    const draws = linuxAsiDrawsOf(linuxAsi);
    let withSettings = 0;
    for (let index = 0; index < 30; index++) {
      const caseSeed = caseSeedOf(seed, index);
      const plain = generateCase(caseSeed);
      expect(plain.linuxAsi).toBeUndefined();
      const drawn = generateCase(caseSeed, fuzzLimits, draws);
      // A user-class case has no confidential VM (linux-asi-draws.ts withUserClass); the rest is as drawn.
      const machine =
        drawn.workload.mix.class === 'user'
          ? { ...plain.machine, vms: plain.machine.vms.map((vm) => ({ ...vm, confidential: false })) }
          : plain.machine;
      expect(drawn.machine).toEqual(machine);
      expect(drawn.run).toEqual(plain.run);
      expect(drawn.choices).toEqual(plain.choices);
      for (const injection of plain.workload.injections)
        expect(drawn.workload.injections).toContainEqual(injection);
      if (drawn.linuxAsi !== undefined) withSettings++;
    }
    expect(withSettings).toBeGreaterThan(0);
  });

  it('drawn settings: safe protocols only, taint policies that flush at least as often as the posted ones', () => {
    const draws = linuxAsiDrawsOf(linuxAsi);
    expect(draws).not.toBeNull();
    fc.assert(
      fc.property(rawCaseArbitrary(), linuxAsiExtrasArbitrary(draws!, fuzzLimits), (raw, extras) => {
        const drawn = withLinuxAsiExtras(concreteCase(raw), extras);
        const settings = drawn.linuxAsi ?? {};
        if (settings.siblingProtocol !== undefined)
          expect(safeSiblingProtocols).toContain(settings.siblingProtocol);
        for (const asiClass of asiClasses) {
          const written = settings.classPolicies?.[asiClass];
          if (written === undefined) continue;
          const policy = parseTaintPolicy(written, asiClass);
          const posted = postedClassPolicies[asiClass];
          for (const key of ['preventControl', 'protectData', 'set'] as const) {
            expect(policy[key] & posted[key], `${asiClass}.${key}`).toBe(posted[key]);
          }
        }
        expect(drawn.workload.injections.length).toBeLessThanOrEqual(
          fuzzLimits.injectionsMax + 2 * fuzzLimits.nestedInjectionPairsMax,
        );
        // As data only: the case survives a JSON round trip unchanged.
        expect(JSON.parse(JSON.stringify(drawn))).toEqual(drawn);
      }),
      { seed, numRuns: 200 },
    );
  });

  it('drawn safe taint policies, protocols and exitOn hold every invariant on small cases', () => {
    const small = { ...fuzzLimits, exitsMax: 80 };
    const draws = linuxAsiDrawsOf(linuxAsi);
    const machines = new MachineCache();
    fc.assert(
      fc.property(rawCaseArbitrary(small), linuxAsiExtrasArbitrary(draws!, small), (raw, extras) => {
        const drawn = withLinuxAsiExtras(concreteCase(raw, small), extras);
        const { verdict } = runFuzzCase(drawn, linuxAsi, { machines });
        expect(
          verdict.failure,
          `${verdict.error ?? verdict.violation?.detail} ${JSON.stringify(drawn.linuxAsi)}`,
        ).toBeNull();
      }),
      { seed, numRuns: 60 },
    );
  });

  it('an NMI arriving inside an IRQ handler in the critical section is reachable from injections alone', () => {
    // Interrupt clocks off: only the case's exact injections arrive, and pairs are what nest them.
    const nestings = new Map<string, number>();
    const stacks = new WeakMap<LinuxAsiCpu, string[]>();
    const raise = LinuxAsiCpu.prototype.raise;
    LinuxAsiCpu.prototype.raise = function (this: LinuxAsiCpu, event) {
      const stack = stacks.get(this) ?? [];
      stacks.set(this, stack);
      if (event.kind === 'interrupt') {
        const outer = stack.at(-1);
        if (outer !== undefined && this.tense) {
          const key = `${event.source}-in-${outer}`;
          nestings.set(key, (nestings.get(key) ?? 0) + 1);
        }
        stack.push(event.source);
      }
      if (event.kind === 'interrupt-return') stack.pop();
      return raise.call(this, event);
    };
    try {
      const draws = linuxAsiDrawsOf(linuxAsi);
      const machines = new MachineCache();
      for (let index = 0; index < 120 && !nestings.has('nmi-in-irq'); index++) {
        const drawn = generateCase(caseSeedOf(seed, index), fuzzLimits, draws);
        const workload = {
          ...drawn.workload,
          nmiIntervalCycles: 0,
          irqIntervalCycles: 0,
          machineCheckIntervalCycles: 0,
        };
        runFuzzCase({ ...drawn, workload }, linuxAsi, { machines });
      }
    } finally {
      LinuxAsiCpu.prototype.raise = raise;
    }
    expect(nestings.get('nmi-in-irq') ?? 0, JSON.stringify([...nestings])).toBeGreaterThan(0);
  });

  it('context switches are in many drawn mixes: HLTs for a vCPU, a blocking futex for a process', () => {
    const draws = linuxAsiDrawsOf(linuxAsi);
    const halting = Array.from({ length: 40 }, (_, index) =>
      generateCase(caseSeedOf(seed, index), fuzzLimits, draws),
    ).filter((drawn) => {
      const key = drawn.workload.mix.class === 'user' ? 'futex:block' : haltMixKey;
      return (drawn.workload.mix.weights[key] ?? 0) > 0;
    }).length;
    expect(halting).toBeGreaterThan(10);
  });
});

describe('a case runs the policy with its drawn settings', () => {
  const base = (): FuzzCase => generateCase(caseSeedOf(seed, 0));

  it('a drawn protocol brings its hooks and stun; drawn taint policies replace the class policy', () => {
    const variant = policyForCase(linuxAsi, {
      ...base(),
      linuxAsi: {
        siblingProtocol: 'stun',
        exitOn: 'mm-switch',
        classPolicies: {
          user: {
            preventControl: ['USER_CONTROL', 'GUEST_CONTROL', 'OTHER_MM_CONTROL'],
            protectData: ['KERNEL_DATA', 'OTHER_MM_DATA'],
            set: ['USER_CONTROL', 'USER_DATA'],
          },
        },
      },
    });
    expect(variant.name).toBe('linux-asi');
    expect(variant.stun).toBe(true);
    expect(variant.mayEnter).toBe(linuxAsiPolicy({ siblingProtocol: 'stun' }).mayEnter);
    expect(variant.mayEnter).not.toBe(linuxAsi.mayEnter);
    expect(variant.linuxAsi).toMatchObject({ siblingProtocol: 'stun', exitOn: 'mm-switch', stibp: true });
    expect(variant.linuxAsi?.classPolicies.kvm).toEqual(postedClassPolicies.kvm);
    expect(variant.linuxAsi?.classPolicies.user.preventControl).toBe(0b111_0000);
    expect(policyForCase(linuxAsi, base())).toBe(linuxAsi);
  });

  it('refuses settings for a policy without linuxAsi, a bad field, and a protocol for a module', async () => {
    expect(() => policyForCase(policies.asi, { ...base(), linuxAsi: { exitOn: 'mm-switch' } })).toThrow(
      /^case\.linuxAsi: absent: policy asi is not today's Linux ASI/,
    );
    expect(() => policyForCase(linuxAsi, { ...base(), linuxAsi: { exitOn: 'never' as never } })).toThrow(
      /^case\.linuxAsi\.exitOn: one of "every-switch", "mm-switch"/,
    );
    const { policy } = await loadPolicyModule(join(fixtures, 'linux-asi-plain-policy.mjs'));
    expect(() => policyForCase(policy, { ...base(), linuxAsi: { siblingProtocol: 'stun' } })).toThrow(
      ConfigError,
    );
  });
});

describe(`replay of a drawn linux-asi case (seed ${seed})`, () => {
  it('the replay file carries the drawn settings as data and replays to the same trace', async () => {
    const bug = plantedBug('planted-linux-asi-exit-no-kernel-data');
    const draws = linuxAsiDrawsOf(bug.policy);
    const found = await replayFirstDrawnFailure({
      seed,
      policy: bug.policy,
      draws,
      accept: (drawn) => drawn.linuxAsi?.siblingProtocol === 'stun' || drawn.linuxAsi?.exitOn === 'mm-switch',
      outDir: out,
    });
    if (found === null)
      throw new Error(`no failing case with a drawn protocol or exitOn in 200 (seed ${seed})`);
    expect(found.written.schemaVersion).toBe(3);
    expect(found.written.case.linuxAsi).toEqual(found.drawn.linuxAsi);
    expect(found.replayed.reproduced).toBe(true);
    expect(found.replayed.traceHashMatches).toBe(true);
  });

  it('the drawn settings are what runs: a case drawn with exitOn mm-switch leaves ASI at no halt', () => {
    // The only context switches are a halt to the idle task and back (one mm): mm-switch exits at none.
    const draws = linuxAsiDrawsOf(linuxAsi);
    const machines = new MachineCache();
    let differs = 0;
    for (let index = 0; index < 60; index++) {
      const drawn = generateCase(caseSeedOf(seed, index), fuzzLimits, draws);
      if (drawn.linuxAsi?.exitOn !== 'mm-switch') continue;
      const { linuxAsi: _drawn, ...withoutSettings } = drawn;
      const mmSwitch = runFuzzCase(drawn, linuxAsi, { machines }).result;
      const everySwitch = runFuzzCase(withoutSettings, linuxAsi, { machines }).result;
      expect(mmSwitch?.asiExits.contextSwitch).toBe(0);
      if ((everySwitch?.asiExits.contextSwitch ?? 0) > 0) differs++;
    }
    expect(differs).toBeGreaterThan(0);
  });
});

describe('a fuzz run of a module with a user taint policy', () => {
  it('a user taint policy without GUEST_CONTROL: INV-15 found, shrunk, replayed with the module', async () => {
    const module = join(fixtures, 'linux-asi-plain-policy.mjs');
    const policy = { name: 'user-linux-asi-no-guest-ibpb', module };
    const { summary } = await runCampaign({
      policy,
      seed: 1,
      cases: 100,
      outDir: join(out, 'user-module'),
      executor: inProcessExecutor(),
      casesPerTask: 1,
      maxFailures: 1,
    });
    expect(summary.violations).toBe(1);
    const [failure] = summary.failures;
    expect(failure.failure).toBe('INV-15');
    expect(failure.shrunk).toBe(true);
    const document = readReplayFile(join(out, 'user-module', failure.replay));
    // Fuzzed as given: no settings drawn over the module's.
    expect(document.case.linuxAsi).toBeUndefined();
    const replayed = await replayCase(document, { policyModule: module });
    expect(replayed.reproduced).toBe(true);
    expect(replayed.traceHashMatches).toBe(true);
  });

  it('a safe user taint policy (a superset, stun, mm-switch) holds every invariant', async () => {
    const { summary } = await runCampaign({
      policy: { name: 'user-linux-asi-taints', module: join(fixtures, 'linux-asi-user-taint-policy.mjs') },
      seed: 5,
      cases: 30,
      outDir: join(out, 'user-safe'),
      executor: inProcessExecutor(),
    });
    expect(summary.failures.map((failure) => `${failure.failure}: ${failure.detail}`)).toEqual([]);
    expect(summary.casesRun).toBe(30);
  });
});
