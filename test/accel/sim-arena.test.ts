import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import {
  allocateSimRegion,
  releaseSimRegion,
  simArenaBytesMax,
  simArenaPages,
} from '../../src/accel/sim-arena.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { attachMachine, createMachine, simRegionBytes } from '../../src/machine.js';
import { policies } from '../../src/policy/index.js';

/**
 * The sim arena (src/accel/sim-arena.ts): sim machines live in one shared WebAssembly memory per
 * thread, whose access kernel their caches use. A run must not tell where its machine lives.
 */
describe('sim arena', () => {
  test('regions are whole pages apart, zeroed, and each machine views only its own', () => {
    const first = allocateSimRegion(100_000)!;
    const second = allocateSimRegion(3)!;
    expect(first.byteOffset % 65536).toBe(0);
    expect(second.byteOffset % 65536).toBe(0);
    const [low, high] = first.byteOffset < second.byteOffset ? [first, second] : [second, first];
    expect(high.byteOffset).toBeGreaterThanOrEqual(
      low.byteOffset + Math.ceil(low.byteLength / 65536) * 65536,
    );
    expect(new Uint8Array(second.buffer, second.byteOffset, 3)).toEqual(new Uint8Array(3));

    const machine = createMachine({}, { concurrent: false, access: acceleratedAccess });
    expect(machine.byteOffset % 65536).toBe(0);
    expect(machine.i32.byteOffset).toBe(machine.byteOffset);
    expect(machine.i32.length * 4).toBe(machine.layout.totalBytes);
  });

  test('a disposed machine gives its pages back at once; the next machine reuses them, zeroed', () => {
    const config = parseRunConfig({ workload: { mix: 'sysbench-cpu' }, run: { exits: 50, seed: 1 } });
    const machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    runSim(config, policies.asi, { machine });
    expect(machine.l1d[0].validLines()).toBeGreaterThan(0);
    const pages = Math.ceil(simRegionBytes(machine.layout) / 65536);
    const before = simArenaPages();
    machine.dispose();
    machine.dispose(); // a second dispose does nothing
    expect(simArenaPages().used).toBe(before.used - pages);
    const next = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    expect(simArenaPages()).toEqual(before);
    // Whatever pages it got, the dynamic state is a fresh machine's: every core and thread word zero.
    const { cores, threads } = next.layout.sections;
    for (const section of [cores, threads]) {
      const words = next.i32.subarray(section.offsetI32, section.offsetI32 + section.lengthI32);
      expect(words.every((word) => word === 0)).toBe(true);
    }
    next.dispose();
  });

  test("a reset zeroes a run's sections (cores, threads, statistics, RMP) through the kernel and keeps the rest", () => {
    const config = parseRunConfig({ workload: { mix: 'sysbench-cpu' }, run: { exits: 200, seed: 3 } });
    const machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    const first = runSim(config, policies.asi, { machine });
    const before = machine.i32.slice();
    const { cores, threads, threadStats, rmp } = machine.layout.sections;
    const dynamic = [cores, threads, threadStats, rmp];
    expect(
      dynamic.some((s) => before.subarray(s.offsetI32, s.offsetI32 + s.lengthI32).some((w) => w !== 0)),
    ).toBe(true);
    machine.resetDynamicState();
    const inDynamic = (index: number) =>
      dynamic.some((s) => index >= s.offsetI32 && index < s.offsetI32 + s.lengthI32);
    let wrong = -1;
    for (let index = 0; index < before.length && wrong < 0; index++) {
      if (machine.i32[index] !== (inDynamic(index) ? 0 : before[index])) wrong = index;
    }
    expect(wrong).toBe(-1);
    // And the machine runs as a fresh one.
    expect(runSim(config, policies.asi, { machine }).traceHash).toBe(first.traceHash);
    machine.dispose();
  });

  test('freed neighbours merge: three released regions serve one of their combined size', () => {
    const [a, b, c] = [allocateSimRegion(65536)!, allocateSimRegion(65536)!, allocateSimRegion(65536)!];
    expect(b.byteOffset).toBe(a.byteOffset + 65536);
    expect(c.byteOffset).toBe(b.byteOffset + 65536);
    const used = simArenaPages().used;
    releaseSimRegion(a);
    releaseSimRegion(c);
    releaseSimRegion(b); // merges with both
    releaseSimRegion(b); // a second release does nothing
    expect(simArenaPages().used).toBe(used - 3);
    const combined = allocateSimRegion(3 * 65536)!;
    expect(combined.byteOffset).toBeLessThanOrEqual(a.byteOffset);
    releaseSimRegion(combined);
  });

  test('attachMachine refuses a sim arena buffer (its offset 0 is not this machine)', () => {
    const machine = createMachine({}, { concurrent: false, access: acceleratedAccess });
    expect(() => attachMachine(machine.buffer)).toThrow(/concurrent: true/);
    machine.dispose();
  });

  test('a region larger than the arena can hold is refused (the machine then gets its own buffer)', () => {
    expect(allocateSimRegion(simArenaBytesMax + 1)).toBeNull();
  });

  test.each([
    ['asi', 'sysbench-cpu', 'lru', false],
    ['coschedule', 'idle-tracing', 'plru', false],
    ['none', 'light-load', 'lru', true],
  ] as const)(
    '%s on %s (%s, confidential %s): same results in the arena (kernel) and in a buffer of its own (reference)',
    (policy, mix, replacement, confidential) => {
      const config = parseRunConfig({
        machine: {
          cores: 2,
          smt: 2,
          memoryMiB: 48,
          l1d: { sets: 64, ways: replacement === 'plru' ? 8 : 12, replacement },
          vms: [{ vcpus: 4, guestMemoryMiB: 2, ...(confidential ? { confidential: true } : {}) }],
        },
        workload: { mix, guestAccessesPerQuantum: 3 },
        run: { exits: 600, seed: 3 },
      });
      const inArena = runSim(config, policies[policy]);
      // A machine made for threads is a SharedArrayBuffer of its own, with no kernel: the reference path.
      const ownBuffer = runSim(config, policies[policy], {
        machine: createMachine(config.machine, { concurrent: true }),
      });
      const { wallSeconds: _a, ...arenaResult } = inArena;
      const { wallSeconds: _b, ...referenceResult } = ownBuffer;
      expect(arenaResult).toEqual(referenceResult);
    },
  );

  test('machines collected by the garbage collector give their regions back', () => {
    // In a child process with --expose-gc: 60 machines made one after another, the garbage collector
    // run every 10. Without reuse the arena would hold all 60.
    const script = `
      const { createMachine } = await import('./dist/src/index.js');
      const { acceleratedAccess, simArenaPages, simRegionBytes } = await import('./dist/src/internal.js');
      let pagesPerMachine = 0;
      for (let i = 0; i < 60; i++) {
        const machine = createMachine({}, { concurrent: false, access: acceleratedAccess });
        pagesPerMachine = Math.ceil(simRegionBytes(machine.layout) / 65536);
        if (i % 10 === 9) {
          globalThis.gc();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      console.log(JSON.stringify({ pagesPerMachine, ...simArenaPages() }));
    `;
    const output = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const { pagesPerMachine, total, used } = JSON.parse(output.trim().split('\n').at(-1) ?? '{}');
    expect(pagesPerMachine).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(total);
    expect(total).toBeLessThan(30 * pagesPerMachine);
  });
});
