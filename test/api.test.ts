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
      'defineTaintPolicy',
      'linuxAsiPolicy',
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

  it('createMachine takes a run config as well as a machine config, and refuses a mix of both', async () => {
    const api = await import('asi-emu');
    const machine = { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] };
    const fromMachine = api.createMachine(machine);
    const fromInput = api.createMachine({ machine, run: { exits: 10 } });
    const fromParsed = api.createMachine(api.parseRunConfig({ machine, run: { exits: 10 } }));
    expect(fromInput.summary()).toEqual(fromMachine.summary());
    expect(fromParsed.summary()).toEqual(fromMachine.summary());
    // A run config without a machine section builds the default machine, as parseRunConfig does.
    expect(api.createMachine({ run: { exits: 10 } }).summary()).toEqual(api.createMachine({}).summary());
    expect(() => api.createMachine({ cores: 1, run: { exits: 10 } })).toThrow(api.ConfigError);
    expect(() => api.createMachine({ cores: 1, run: { exits: 10 } })).toThrow(
      /createMachine: a machine config \(cores, smt, vms, \.\.\.\) or a run config .* not both: move cores into machine/,
    );
    for (const built of [fromMachine, fromInput, fromParsed]) built.dispose();
  });

  it('runWorkers refuses an inline policy, saying why and what to pass instead', async () => {
    const api = await import('asi-emu');
    const inline = api.definePolicy({ name: 'inline', description: 'made here', mayEnter: () => true });
    const config = api.parseRunConfig({ machine: { cores: 1, smt: 2, memoryMiB: 40 }, run: { exits: 10 } });
    const refusal = api.runWorkers(config, inline);
    await expect(refusal).rejects.toThrow(api.ConfigError);
    await expect(refusal).rejects.toThrow(/\{ module: path \}.*cannot cross to a worker; runSim takes one/);
  });

  it('exports what a policy hook needs to read its core word', async () => {
    const api = await import('asi-emu');
    const word = api.stunBit(1) | (api.Mode.vmm << 4) | api.Mode.held;
    expect(api.modeNames[api.modeOf(word, 0)]).toBe('held');
    expect(api.modeNames[api.modeOf(word, 1)]).toBe('vmm');
    expect(api.isStunned(word)).toBe(true);
    expect(api.isStunned(word & ~api.stunBit(1))).toBe(false);
    expect(api.holdsSecrets(api.modeOf(word, 1))).toBe(true);
    expect(api.describeCoreWord(word, 2)).toBe('held,vmm (stunned)');
  });

  it("asi-emu/coco exports the confidential-memory model, with the machine's ConfidentialVm", async () => {
    const coco = await import('asi-emu/coco');
    const api = await import('asi-emu');
    for (const name of [
      'VmMemory',
      'GuestMemfd',
      'MemslotTable',
      'KvmError',
      'processPsc',
      'guestSetPagesState',
      'pvalidate',
      'Rmp',
      'TdxGuestMemory',
      'tdxAcceptMemory',
      'UnacceptedMemory',
      'createTracker',
      'BitmapTracker',
      'RangeListTracker',
      'IntervalTreeTracker',
      'SimpleFrameSource',
    ]) {
      expect(typeof (coco as Record<string, unknown>)[name], name).toBe('function');
    }
    expect(coco.errnoNumbers.EFAULT).toBe(14);
    expect(coco.kvmMemoryExitFlagPrivate).toBe(1n << 3n);
    expect(coco.ConfidentialVm).toBe(api.ConfidentialVm);
  });
});
