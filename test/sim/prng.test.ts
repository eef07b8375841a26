import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Prng } from '../../src/backend/sim/prng.js';
import { createSimMachine } from '../../src/backend/sim/run-sim.js';
import type { Sfc32Area } from '../../src/cpu/access-path.js';
import { sfc32AreaDraws } from '../../src/memory/sub-layouts.js';

/**
 * The sim's generator made in the access kernel (`sfc32` in access-kernel.wat, a sim machine's PRNG area)
 * against the JavaScript loop it transcribes: the same seed gives the same stream, draw by draw, across
 * batch boundaries. A run's trace hash depends on it (test/sim/determinism.test.ts pins the hashes).
 */

/** A sim machine's PRNG area (the test fails if the machine has none: it must be in a sim arena). */
function areaOfSimMachine(): Sfc32Area {
  const machine = createSimMachine({
    cores: 1,
    smt: 2,
    memoryMiB: 16,
    vms: [{ vcpus: 2, guestMemoryMiB: 2 }],
  });
  const area = machine.access.prngArea;
  expect(area).not.toBeNull();
  if (area === null) throw new Error('no PRNG area');
  return area;
}

/** Draws of each kind a run makes (0 random, 1 int, 2 nextU32), in the order `kinds` gives. */
function draws(prng: Prng, kinds: number[]): number[] {
  return kinds.map((kind) => (kind === 0 ? prng.random() : kind === 1 ? prng.int(17) : prng.nextU32()));
}

describe('sim PRNG', () => {
  test('the kernel makes the same stream as the JavaScript loop, for any seed and mix of draws', () => {
    const area = areaOfSimMachine();
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 * sfc32AreaDraws }),
        (seed, kinds) => {
          expect(draws(new Prng(seed, area), kinds)).toEqual(draws(new Prng(seed), kinds));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a pinned stream: the first draws of seed 1 (sfc32 seeded by splitmix32, 12 dropped)', () => {
    const expected = draws(new Prng(1), Array(5).fill(2));
    // Pinned (the generator's output before the kernel made it) so that a change to both paths shows.
    expect(expected).toEqual([1828152527, 3394835397, 2967886022, 2251045104, 4148684523]);
    expect(draws(new Prng(1, areaOfSimMachine()), Array(5).fill(2))).toEqual(expected);
  });

  test('the comparison catches a planted kernel bug: one output in a batch off by one', () => {
    const area = areaOfSimMachine();
    const planted: Sfc32Area = {
      ...area,
      sfc32: (state: number, out: number, count: number) => {
        area.sfc32(state, out, count);
        area.ahead[7] += 2 ** -32;
      },
    };
    const kinds = Array(2 * sfc32AreaDraws).fill(2);
    expect(draws(new Prng(5, planted), kinds)).not.toEqual(draws(new Prng(5), kinds));
  });
});
