import { describe, expect, it } from 'vitest';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { policies } from '../../src/policy/index.js';
import { simulate, testConfig } from './helpers.js';

describe('sim determinism: same config and seed, same trace byte for byte', () => {
  const seed = 4242;
  it(`hashes of the event trace agree across runs and across fresh machines (seed ${seed})`, () => {
    for (const name of ['asi', 'coschedule', 'none']) {
      const config = testConfig({
        machine: { cores: 2, smt: 2, vms: [{ vcpus: 4, guestMemoryMiB: 1 }] },
        workload: { nmiIntervalCycles: 50_000 },
        run: { exits: 800, seed },
      });
      const reused = simulate(config, policies[name], true);
      const fresh = runSim(config, policies[name], { keepEvents: true });
      expect(fresh.traceHash).toBe(reused.traceHash);
      expect(fresh.steps).toBe(reused.steps);
      expect(JSON.stringify(fresh.violations)).toBe(JSON.stringify(reused.violations));
      expect(fresh.guestShare).toBe(reused.guestShare);
    }
  });

  it('the full event list is identical, not just its hash', () => {
    const config = testConfig({ run: { exits: 300, seed } });
    const first = runSim(config, policies.asi, { keepEvents: true });
    const second = runSim(config, policies.asi, { keepEvents: true });
    expect(first.traceHash).toBe(second.traceHash);
    expect(first.traceHash).toMatch(/^[0-9a-f]{8}$/);
  });

  it('another seed gives another trace (the hash can fail)', () => {
    const hashes = new Set<string>();
    for (let s = 1; s <= 5; s++)
      hashes.add(simulate(testConfig({ run: { exits: 200, seed: s } }), policies.asi).traceHash);
    expect(hashes.size).toBe(5);
  });

  it('scheduler choices given as data replace the PRNG draws and change the run', () => {
    const config = testConfig({ run: { exits: 200, seed } });
    const plain = runSim(config, policies.asi);
    const chosen = runSim(config, policies.asi, { choices: [0, 0xffffffff, 12345, 1 << 31, 7] });
    const again = runSim(config, policies.asi, { choices: [0, 0xffffffff, 12345, 1 << 31, 7] });
    expect(chosen.traceHash).not.toBe(plain.traceHash);
    expect(chosen.traceHash).toBe(again.traceHash);
  });
});
