import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createSimMachine, runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { fuzzCaseArbitrary } from '../../src/fuzz/arbitraries.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { type FuzzCase, MachineCache, runConfigOf, runFuzzCase } from '../../src/fuzz/fuzz-case.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import { drawnClassesOf, linuxAsiDrawsOf, userMixKeys } from '../../src/fuzz/linux-asi-draws.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase } from '../../src/fuzz/shrink.js';
import { policies } from '../../src/policy/index.js';
import { plantedBug } from '../../src/policy/planted.js';
import { replayFirstDrawnFailure } from '../helpers/replay-drawn.js';

/**
 * The fuzzer draws the class a case runs (issue 22 item 6, fuzz/linux-asi-draws.ts `withUserClass`):
 * kvm (vCPUs, the case as drawn) or user (every vCPU thread a host process, its mix a drawn weighting
 * over the kernel entries), for the policies that may run a user mix (the linux-asi family and `none`).
 * Every randomized test names its seed.
 */
const seed = 22;
const linuxAsi = policies['linux-asi'];
const out = mkdtempSync(join(tmpdir(), 'asi-emu-user-class-draws-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const isUser = (fuzzCase: FuzzCase) => fuzzCase.workload.mix.class === 'user';
const casesOf = (policy: typeof linuxAsi, count: number, campaignSeed = seed) =>
  Array.from({ length: count }, (_, index) =>
    generateCase(caseSeedOf(campaignSeed, index), fuzzLimits, linuxAsiDrawsOf(policy)),
  );

describe('which policies draw the class', () => {
  it('linux-asi, a planted linux-asi bug and none draw it; asi and the mitigations do not', () => {
    expect(drawnClassesOf(linuxAsi)).toEqual(['kvm', 'user']);
    expect(drawnClassesOf(plantedBug('planted-linux-asi-exit-no-kernel-data').policy)).toEqual([
      'kvm',
      'user',
    ]);
    expect(drawnClassesOf(policies.none)).toEqual(['kvm', 'user']);
    for (const name of ['asi', 'asi-stun', 'nosmt', 'kvm-default']) {
      expect(drawnClassesOf(policies[name])).toEqual(['kvm']);
      expect(linuxAsiDrawsOf(policies[name])).toBeNull();
    }
    // none: the class only (no linux-asi settings, pairs or HLTs to draw).
    expect(linuxAsiDrawsOf(policies.none)).toEqual({
      siblingProtocols: null,
      exitOn: null,
      taintPolicies: false,
      pairsAndHalts: false,
      classes: ['kvm', 'user'],
    });
  });

  it(`drawn cases (seed ${seed}): about half user for linux-asi, none for asi`, () => {
    const drawn = casesOf(linuxAsi, 60).filter(isUser).length;
    expect(drawn).toBeGreaterThan(15);
    expect(drawn).toBeLessThan(45);
    expect(casesOf(policies.asi, 60).filter(isUser)).toEqual([]);
  });

  it('none draws its base case, plus the class: a kvm case is the one drawn without draws', () => {
    let kvm = 0;
    for (let index = 0; index < 30; index++) {
      const caseSeed = caseSeedOf(seed, index);
      const drawn = generateCase(caseSeed, fuzzLimits, linuxAsiDrawsOf(policies.none));
      if (isUser(drawn)) continue;
      kvm++;
      expect(drawn).toEqual(generateCase(caseSeed));
    }
    expect(kvm).toBeGreaterThan(0);
  });
});

describe(`a user-class case is consistent (seed ${seed})`, () => {
  it('kernel entries only, no confidential VM, no generated handler, an interval in range; a valid run config', () => {
    fc.assert(
      fc.property(fuzzCaseArbitrary(fuzzLimits, linuxAsiDrawsOf(linuxAsi)), (drawn) => {
        if (!isUser(drawn)) return;
        expect(drawn.workload.mix.class).toBe('user');
        const keys = Object.keys(drawn.workload.mix.weights);
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) expect(userMixKeys).toContain(key);
        expect(drawn.workload.handlers).toBeUndefined();
        expect(drawn.machine.vms.every((vm) => vm.confidential !== true)).toBe(true);
        expect(drawn.workload.confidential?.hostileVmm ?? false).toBe(false);
        expect(drawn.workload.exitIntervalCycles).toBeGreaterThanOrEqual(
          fuzzLimits.userExitIntervalCyclesMin,
        );
        expect(drawn.workload.exitIntervalCycles).toBeLessThanOrEqual(fuzzLimits.userExitIntervalCyclesMax);
        // The run config parses (a user mix names no VM exit: cpu/mixes.ts checkKeysOfClass) and is a process.
        expect(runConfigOf(drawn).workload.mix.class).toBe('user');
        expect(JSON.parse(JSON.stringify(drawn))).toEqual(drawn);
      }),
      { seed, numRuns: 200 },
    );
  });

  it('FIO-like page-cache storms and kernel-build-like fault and futex mixes are both drawn', () => {
    const users = casesOf(linuxAsi, 300).filter(isUser);
    const share = (fuzzCase: FuzzCase, prefix: string) => {
      const weights = Object.entries(fuzzCase.workload.mix.weights);
      const total = weights.reduce((sum, [, weight]) => sum + weight, 0);
      return weights.filter(([key]) => key.startsWith(prefix)).reduce((sum, [, w]) => sum + w, 0) / total;
    };
    // fio-randread-tmpfs: preads of tmpfs and little else, every ~3,000 cycles (1,003,102/s at 3 GHz).
    const fioLike = users.filter(
      (drawn) => share(drawn, 'read:tmpfs-page-cache') >= 0.8 && drawn.workload.exitIntervalCycles <= 3000,
    );
    // kernel-build: page faults most, with blocking waits, every ~243,000 cycles (12,347/s at 3 GHz).
    const buildLike = users.filter(
      (drawn) =>
        share(drawn, 'page-fault:') >= 0.5 &&
        share(drawn, 'futex:block') > 0 &&
        drawn.workload.exitIntervalCycles >= 50_000,
    );
    expect(fioLike.length).toBeGreaterThan(0);
    expect(buildLike.length).toBeGreaterThan(0);
  });

  it('a user-class case shrinks back to the kvm class', () => {
    const draws = linuxAsiDrawsOf(linuxAsi);
    const index = casesOf(linuxAsi, 20).findIndex(isUser);
    expect(index).toBeGreaterThanOrEqual(0);
    // The same first case generateCase draws, failing whatever it is: fast-check shrinks it all the way.
    let first: FuzzCase | undefined;
    const details = fc.check(
      fc.property(fuzzCaseArbitrary(fuzzLimits, draws), (drawn) => {
        first ??= drawn;
        return false;
      }),
      { seed: caseSeedOf(seed, index), numRuns: 1, unbiased: true },
    );
    expect(first !== undefined && isUser(first)).toBe(true);
    const [shrunk] = details.counterexample as [FuzzCase];
    expect(shrunk.workload.mix.class).toBeUndefined();
    expect(shrunk.workload.mix.name).toBe('fuzz');
  });
});

describe('user-class cases under linux-asi', () => {
  it(`linux-asi (kick-and-wait, and the drawn safe settings) holds every invariant on user-class cases (seed ${seed})`, () => {
    const small = { ...fuzzLimits, exitsMax: 80 };
    const draws = linuxAsiDrawsOf(linuxAsi);
    const machines = new MachineCache();
    let users = 0;
    fc.assert(
      fc.property(fuzzCaseArbitrary(small, draws), (drawn) => {
        if (!isUser(drawn)) return;
        users++;
        const { verdict } = runFuzzCase(drawn, linuxAsi, { machines });
        expect(verdict.failure, `${verdict.error ?? verdict.violation?.detail}`).toBeNull();
      }),
      { seed, numRuns: 80 },
    );
    expect(users).toBeGreaterThan(20);
  });

  it('the safe campaign of linux-asi runs user-class cases and finds nothing', async () => {
    const campaignSeed = 11;
    const cases = 30;
    const users = casesOf(linuxAsi, cases, campaignSeed).filter(isUser).length;
    expect(users).toBeGreaterThan(5);
    const { summary } = await runCampaign({
      policy: { name: 'linux-asi' },
      seed: campaignSeed,
      cases,
      outDir: join(out, 'safe'),
      executor: inProcessExecutor(),
    });
    expect(summary.failures.map((failure) => `${failure.failure}: ${failure.detail}`)).toEqual([]);
    expect(summary.casesRun).toBe(cases);
  });

  it('a user-class case that fails replays from its file to the same trace, its class as data', async () => {
    const bug = plantedBug('planted-linux-asi-exit-no-kernel-data');
    const draws = linuxAsiDrawsOf(bug.policy);
    const found = await replayFirstDrawnFailure({
      seed,
      policy: bug.policy,
      draws,
      accept: isUser,
      outDir: out,
    });
    if (found === null)
      throw new Error(`no failing user-class case of ${bug.policy.name} in 200 (seed ${seed})`);
    expect(found.written.schemaVersion).toBe(3);
    expect(found.written.case.workload.mix.class).toBe('user');
    expect(found.replayed.reproduced).toBe(true);
    expect(found.replayed.traceHashMatches).toBe(true);
    expect(found.replayed.verdict.failure).toBe(found.verdict.failure);
  });
});

describe("a run's verdict does not depend on the case run before it on the same machine", () => {
  // Campaign seed 11, cases 1032 (kvm) and 1037 (user): one machine config. Before the fuzzer kept
  // machines apart per class, 1037 broke INV-15 after 1032 (its guest training left in the predictor)
  // and held every invariant on a fresh machine.
  const kvmCase = () => generateCase(caseSeedOf(11, 1032), fuzzLimits, linuxAsiDrawsOf(linuxAsi));
  const userCase = () => generateCase(caseSeedOf(11, 1037), fuzzLimits, linuxAsiDrawsOf(linuxAsi));

  it('a kvm case, then a user-class case on the fuzzer machine cache: the fresh machine verdict', () => {
    const before = kvmCase();
    const after = userCase();
    expect(isUser(before)).toBe(false);
    expect(isUser(after)).toBe(true);
    expect(after.machine).toEqual(before.machine);
    const machines = new MachineCache();
    runFuzzCase(before, linuxAsi, { machines });
    const cached = runFuzzCase(after, linuxAsi, { machines }).verdict;
    const fresh = runFuzzCase(after, linuxAsi).verdict;
    expect(cached.failure).toBeNull();
    expect(cached.traceHash).toBe(fresh.traceHash);
  });

  // A machine reused from a kvm run to a user run (bench --policies none,linux-asi --mix
  // sysbench-cpu,fio-randread-tmpfs) must not carry the guest's predictor training over: the reset
  // starts new predictors (cpu/linux-asi-cpu.ts), and the user run breaks no INV-15.
  it('a machine reset clears the branch predictor', () => {
    const config = (mix: string) => parseRunConfig({ workload: { mix }, run: { exits: 400, seed: 3 } });
    const machine = createSimMachine(config('sysbench-cpu').machine);
    try {
      runSim(config('sysbench-cpu'), linuxAsi, { machine });
      expect(runSim(config('fio-randread-tmpfs'), linuxAsi, { machine }).violations['INV-15']).toBe(0);
    } finally {
      machine.dispose();
    }
  });
});
