import { describe, expect, it } from 'vitest';

/**
 * The package as a user imports it (`asi-emu`, `asi-emu/vitest`): resolved through package.json's
 * exports to the built dist/ (npm test builds first), not to src/.
 */
describe("the public API: import { ... } from 'asi-emu'", () => {
  it('exports the machine, both backends, policies, mixes and definePolicy with working values', async () => {
    const api = await import('asi-emu');
    for (const name of [
      'createMachine',
      'attachMachine',
      'runSim',
      'runWorkers',
      'definePolicy',
      'parseRunConfig',
      'compareOnSim',
      'runCampaign',
    ]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe('function');
    }
    expect(Object.keys(api.policies)).toContain('asi');
    expect(api.mixes.map((mix) => mix.name)).toContain('sysbench-cpu');
    const machine = api.createMachine({
      cores: 1,
      smt: 2,
      memoryMiB: 40,
      vms: [{ vcpus: 2, guestMemoryMiB: 1 }],
    });
    expect(machine.summary().threads).toBe(2);
    const mine = api.definePolicy({
      name: 'mine',
      description: 'asi without the flush',
      kickBeforeFull: () => true,
      waitForSiblingsOut: () => true,
      mayEnter: api.noSiblingHoldsSecrets,
    });
    const result = api.runSim(
      api.parseRunConfig({
        machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
        run: { exits: 500 },
      }),
      mine,
    );
    expect(result.policy).toBe('mine');
    expect(result.violations['INV-2']).toBeGreaterThan(0); // no flush: host lines stay in the L1D
  });

  it('asi-emu/vitest adds toHoldInvariants and toBreakInvariant', async () => {
    await import('asi-emu/vitest');
    const api = await import('asi-emu');
    const config = api.parseRunConfig({
      machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
      run: { exits: 400 },
    });
    expect(api.runSim(config, api.policies.asi)).toHoldInvariants();
    expect(api.runSim(config, api.policies.none)).toBreakInvariant('INV-1');
    expect(() => expect(api.runSim(config, api.policies.none)).toHoldInvariants()).toThrow(/INV-1/);
  });
});
