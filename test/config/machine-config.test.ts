import { afterEach, describe, expect, it } from 'vitest';
import { parseMachineConfig } from '../../src/config/machine-config.js';
import { ConfigError } from '../../src/errors.js';
import { createMachine } from '../../src/machine.js';

/** Counts SharedArrayBuffer allocations, to show a bad config fails before anything is allocated. */
const RealSharedArrayBuffer = globalThis.SharedArrayBuffer;
let allocations = 0;
function countAllocations(): void {
  allocations = 0;
  globalThis.SharedArrayBuffer = new Proxy(RealSharedArrayBuffer, {
    construct(target, args) {
      allocations++;
      return Reflect.construct(target, args);
    },
  });
}
afterEach(() => {
  globalThis.SharedArrayBuffer = RealSharedArrayBuffer;
});

const badConfigs: [string, Record<string, unknown>, string, RegExp][] = [
  ['zero cores', { cores: 0 }, 'machine.cores', /1\.\.256/],
  ['fractional cores', { cores: 1.5 }, 'machine.cores', /integer/],
  ['smt 0', { smt: 0 }, 'machine.smt', /1\.\.4/],
  ['smt 5', { smt: 5 }, 'machine.smt', /1\.\.4/],
  ['memory too small for the layout', { memoryMiB: 8 }, 'machine.memoryMiB', /at least \d+ MiB/],
  ['non-power-of-two L1D sets', { l1d: { sets: 48 } }, 'machine.l1d.sets', /power of two/],
  [
    'tree-PLRU with 12 ways',
    { l1d: { sets: 64, ways: 12, replacement: 'plru' } },
    'machine.l1d.ways',
    /power of two/,
  ],
  ['unknown L1D replacement', { l1d: { replacement: 'random' } }, 'machine.l1d.replacement', /lru|plru/],
  ['non-power-of-two TLB', { tlbEntries: 48 }, 'machine.tlbEntries', /power of two/],
  ['unknown field', { coresPerSocket: 4 }, 'machine', /coresPerSocket/],
  ['too many vCPUs', { cores: 1, smt: 2, vms: [{ vcpus: 3 }] }, 'machine.vms[0].vcpus', /at most 2 vCPUs/],
  ['pin out of range', { cores: 1, smt: 2, vms: [{ vcpus: 1, pin: [7] }] }, 'machine.vms[0].pin', /0\.\.1/],
  [
    'two vCPUs on one thread',
    {
      vms: [
        { vcpus: 1, pin: [0] },
        { vcpus: 1, pin: [0] },
      ],
    },
    'machine.vms[1].pin',
    /at most one vCPU/,
  ],
  [
    'guest memory 0',
    { vms: [{ vcpus: 1, guestMemoryMiB: 0 }] },
    'machine.vms[0].guestMemoryMiB',
    /at least 1/,
  ],
  ['cores a string', { cores: 'two' }, 'machine.cores', /number/],
];

describe('machine config', () => {
  it('fills defaults: 2 cores x 2 threads, one VM, a 64 x 12 LRU L1D', () => {
    const config = parseMachineConfig({});
    expect(config).toMatchObject({
      cores: 2,
      smt: 2,
      l1d: { sets: 64, ways: 12, replacement: 'lru' },
      pcid: true,
    });
    expect(config.vms).toHaveLength(1);
  });

  for (const [title, input, field, accepted] of badConfigs) {
    it(`rejects ${title}: names ${field}, says what is accepted, allocates nothing`, () => {
      countAllocations();
      let error: unknown;
      try {
        createMachine(input);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const configError = error as ConfigError;
      expect(configError.field).toBe(field);
      expect(configError.message).toMatch(accepted);
      expect(allocations).toBe(0);
    });
  }

  it('a page-table pool too small for the page tables is a config error naming the field and the size they take', () => {
    // Only building the tables tells their size, so this one is found after allocating (and says so).
    const error = (() => {
      try {
        createMachine({ pageTablePoolPages: 20 });
      } catch (thrown) {
        return thrown;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const { field, accepted, got } = error as ConfigError;
    expect(field).toBe('machine.pageTablePoolPages');
    const needed = Number(/at least (\d+)/.exec(accepted)?.[1]);
    expect(needed).toBeGreaterThan(20);
    expect(got).toBe(20);
    expect(() => createMachine({ pageTablePoolPages: needed })).not.toThrow();
    expect(() => createMachine({ pageTablePoolPages: needed - 1 })).toThrow(ConfigError);
  });

  it('the default VM takes a vCPU per hyperthread up to 4, without changing the default for the next parse', () => {
    expect(parseMachineConfig({ cores: 1, smt: 1 }).vms[0].vcpus).toBe(1);
    expect(parseMachineConfig({ cores: 1, smt: 2 }).vms[0].vcpus).toBe(2);
    expect(parseMachineConfig({}).vms[0].vcpus).toBe(4);
    expect(parseMachineConfig({ cores: 4, smt: 2 }).vms[0].vcpus).toBe(4);
    // A VM list given is taken as it is (and refused when it does not fit).
    expect(() => parseMachineConfig({ cores: 1, smt: 1, vms: [{ vcpus: 2 }] })).toThrow(ConfigError);
  });

  it('a good config allocates exactly one buffer', () => {
    countAllocations();
    createMachine({ cores: 1, smt: 2, memoryMiB: 48, vms: [{ vcpus: 2, guestMemoryMiB: 2 }] });
    expect(allocations).toBe(1);
  });
});
