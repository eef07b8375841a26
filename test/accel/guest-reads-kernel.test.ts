import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { GuestReadsKernel } from '../../src/accel/access-kernel.js';
import { Prng } from '../../src/backend/sim/prng.js';
import { pageBytes } from '../../src/constants.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { l1dClockI32, l1dStampMax, StretchResultWord } from '../../src/memory/sub-layouts.js';
import { guestSpace } from '../../src/paging/address-space.js';
import { MapFlag } from '../../src/paging/entry-format.js';

/**
 * A guest stretch's reads in one call (`ThreadAccess.guestReads`): the accelerated path (the kernel's
 * `guestReads` in src/accel/access-kernel.wat, drawing from the sim PRNG's batch in the kernel's memory,
 * with `AcceleratedThreadAccess` finishing in JavaScript what it stops before) against the reference path
 * (the plain loop `guestReadsLoop` over `guestRead`, drawing through `Prng.random` with no kernel area).
 * Both machines and both PRNGs get the same commands from the same seed; after each command the
 * answers (cycles, exactly), the PRNG cursors and the machines' cores and threads sections must agree,
 * and at the end the whole buffers and the PRNGs' next draws. The commands move the cursor to every place
 * of the batch (so stretches remake it in the kernel), unmap and remap a page of the working set, read
 * past guest memory (TLB misses and unmapped pages: the kernel stops and JavaScript reads), flush, move
 * owners, and bring the LRU clock to its bound (the kernel stops before `access` would hand a line back).
 * Costs that are not integers check that the cycles are summed in the loop's order.
 */

const config = (replacement: 'lru' | 'plru') => ({
  cores: 2,
  smt: 2,
  memoryMiB: 64,
  vms: [{ vcpus: 4, guestMemoryMiB: 4 }],
  tlbEntries: 16,
  l1d: { sets: 64, ways: 4, replacement },
});
/** Working sets (first guest page, pages): small ones that hit, one with the remapped page, one past guest memory (1,024 pages). */
const workingSets = [
  [0, 4],
  [0, 40],
  [2, 3],
  [1020, 8],
] as const;
const remappedPage = 3;
/** Cycles of an L1D hit and of a miss: the defaults, and fractions whose sum depends on its order. */
const costs = [
  [5, 40],
  [0.1, 0.7],
  [3.3, 41.9],
] as const;

type Command =
  | { kind: 'stretch'; thread: number; count: number; set: number; costs: number }
  | { kind: 'draw'; count: number }
  | { kind: 'unmap' }
  | { kind: 'map' }
  | { kind: 'owner'; page: number; domain: number }
  | { kind: 'flush'; core: number }
  | { kind: 'clock'; core: number };

interface Side {
  machine: Machine;
  prng: Prng;
}

function apply(side: Side, command: Command): string | number | boolean {
  const { machine, prng } = side;
  switch (command.kind) {
    case 'stretch': {
      const [firstPage, pages] = workingSets[command.set];
      const [hit, miss] = costs[command.costs];
      const cycles = machine.access
        .thread(command.thread)
        .guestReads(guestSpace(0), firstPage, pages, command.count, hit, miss, prng);
      return `${cycles}@${prng.cursor}`;
    }
    case 'draw': {
      const draws: number[] = [];
      for (let i = 0; i < command.count; i++) draws.push(prng.random());
      return draws.join(',');
    }
    case 'unmap':
      return machine.pageTables.unmap(guestSpace(0), remappedPage * pageBytes);
    case 'map':
      machine.pageTables.map(guestSpace(0), remappedPage * pageBytes, 4242, MapFlag.write);
      return true;
    case 'owner': {
      const pfn = machine.pageTables.walk(guestSpace(0), command.page * pageBytes, 0, false);
      if (pfn >= 0) machine.frames.setOwner(pfn, command.domain);
      return pfn;
    }
    case 'flush':
      return machine.caches[command.core].l1d.flush() + machine.caches[command.core].fillBuffers.flush();
    case 'clock': {
      // The LRU clock a few stamps below its bound: a stretch crosses it.
      const l1d = machine.caches[command.core].l1d;
      machine.i32[l1d.baseI32Index + l1dClockI32] = l1dStampMax - 5;
      return true;
    }
  }
}

function commandArbitrary(replacement: 'lru' | 'plru'): fc.Arbitrary<Command> {
  const core = fc.integer({ min: 0, max: 1 });
  return fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant('stretch' as const),
        thread: fc.integer({ min: 0, max: 3 }),
        count: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 40, max: 140 })),
        set: fc.integer({ min: 0, max: workingSets.length - 1 }),
        costs: fc.integer({ min: 0, max: costs.length - 1 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('draw' as const), count: fc.integer({ min: 1, max: 70 }) }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'unmap' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'map' as const }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('owner' as const),
        page: fc.constantFrom(0, 1, 2),
        domain: fc.integer({ min: 0, max: 2 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const), core }) },
    // PLRU has no clock to renumber.
    {
      weight: replacement === 'lru' ? 1 : 0,
      arbitrary: fc.record({ kind: fc.constant('clock' as const), core }),
    },
  );
}

interface Served {
  /** Reads the kernel made, and the times it stopped before one (JavaScript then made it). */
  kernelReads: number;
  stops: number;
}

/**
 * Wraps each thread's `guestReads` kernel on the accelerated machine (its private field: the test's only
 * reach inside): counts what it served, and `plant` may rewrite its arguments.
 */
function instrument(
  machine: Machine,
  served: Served,
  plant: (args: Parameters<GuestReadsKernel>) => Parameters<GuestReadsKernel>,
): void {
  const memory = new Int32Array(machine.buffer);
  for (let thread = 0; thread < machine.threadCount; thread++) {
    const access = machine.access.thread(thread) as unknown as { guestReadsKernel: GuestReadsKernel };
    const kernel = access.guestReadsKernel;
    access.guestReadsKernel = (...args) => {
      const planted = plant(args);
      const cycles = kernel(...planted);
      const reads = memory[planted[11] + StretchResultWord.reads];
      served.kernelReads += reads;
      if (reads < planted[4]) served.stops++;
      return cycles;
    };
  }
}

/**
 * Runs `commands` on both sides; the index of the first command whose answer or resulting cores and
 * threads sections differ, -2 when only the whole buffers or the PRNGs' next draws differ at the end,
 * -1 when all agree.
 */
function firstDifference(
  commands: Command[],
  replacement: 'lru' | 'plru',
  served: Served,
  plant: (args: Parameters<GuestReadsKernel>) => Parameters<GuestReadsKernel> = (args) => args,
  seed = 7,
): number {
  const kernelMachine = createMachine(config(replacement), { concurrent: false, access: acceleratedAccess });
  const referenceMachine = createMachine(config(replacement), { concurrent: true });
  try {
    expect(kernelMachine.access.name).toBe('accelerated');
    expect(referenceMachine.access.name).toBe('reference');
    const kernelSide: Side = { machine: kernelMachine, prng: new Prng(seed, kernelMachine.access.prngArea) };
    const referenceSide: Side = { machine: referenceMachine, prng: new Prng(seed) };
    instrument(kernelMachine, served, plant);
    const sections = (machine: Machine) =>
      [machine.layout.sections.cores, machine.layout.sections.threads].map(({ offsetI32, lengthI32 }) =>
        machine.i32.subarray(offsetI32, offsetI32 + lengthI32),
      );
    for (let i = 0; i < commands.length; i++) {
      const kernelAnswer = apply(kernelSide, commands[i]);
      const referenceAnswer = apply(referenceSide, commands[i]);
      if (kernelAnswer !== referenceAnswer) return i;
      const [kernelSections, referenceSections] = [sections(kernelMachine), sections(referenceMachine)];
      for (let s = 0; s < kernelSections.length; s++) {
        if (!kernelSections[s].every((word, at) => word === referenceSections[s][at])) return i;
      }
    }
    const next = (side: Side) => apply(side, { kind: 'draw', count: 130 });
    if (next(kernelSide) !== next(referenceSide)) return -2;
    // The whole buffers at the end: page tables (accessed bits), generations, owners, counters.
    return kernelMachine.i32.every((word, at) => word === referenceMachine.i32[at]) ? -1 : -2;
  } finally {
    kernelMachine.dispose();
  }
}

describe('access kernel: a guest stretch’s reads in one call', () => {
  test.each(['lru', 'plru'] as const)(
    'answers, draws and leaves the machine as the reference loop does (%s)',
    (replacement) => {
      const served: Served = { kernelReads: 0, stops: 0 };
      fc.assert(
        fc.property(
          fc.array(commandArbitrary(replacement), { minLength: 1, maxLength: 60, size: 'max' }),
          fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          (commands, seed) => firstDifference(commands, replacement, served, undefined, seed) === -1,
        ),
        { numRuns: 30 },
      );
      // The kernel made reads (one that stopped at once would compare the reference with itself), and it
      // stopped before reads it cannot finish (TLB misses, unmapped pages, under LRU the clock's bound).
      expect(served.kernelReads).toBeGreaterThan(5000);
      expect(served.stops).toBeGreaterThan(20);
    },
  );

  test('a stretch of 0 reads draws nothing', () => {
    const served: Served = { kernelReads: 0, stops: 0 };
    const commands: Command[] = [
      { kind: 'stretch', thread: 0, count: 0, set: 0, costs: 0 },
      { kind: 'draw', count: 1 },
    ];
    expect(firstDifference(commands, 'lru', served)).toBe(-1);
  });

  const stretches: Command[] = [
    { kind: 'stretch', thread: 0, count: 50, set: 0, costs: 1 },
    { kind: 'stretch', thread: 1, count: 50, set: 0, costs: 1 },
    { kind: 'stretch', thread: 0, count: 50, set: 1, costs: 2 },
  ];

  test('the comparison catches a planted bug: the kernel handed the cursor one draw late', () => {
    const served: Served = { kernelReads: 0, stops: 0 };
    expect(firstDifference(stretches, 'lru', served)).toBe(-1);
    expect(served.kernelReads).toBeGreaterThan(100);
    const late = (args: Parameters<GuestReadsKernel>): Parameters<GuestReadsKernel> => {
      const planted = [...args] as Parameters<GuestReadsKernel>;
      planted[10] = Math.min(64, planted[10] + 1);
      return planted;
    };
    expect(firstDifference(stretches, 'lru', served, late)).not.toBe(-1);
  });

  test('the comparison catches a planted bug: the cycles summed from 0 after a stop', () => {
    const served: Served = { kernelReads: 0, stops: 0 };
    const fromZero = (args: Parameters<GuestReadsKernel>): Parameters<GuestReadsKernel> => {
      const planted = [...args] as Parameters<GuestReadsKernel>;
      planted[7] = 0;
      return planted;
    };
    // The first stretch's TLB misses stop the kernel: after each, the sum went on from the cycles so far.
    expect(firstDifference(stretches, 'plru', served, fromZero)).toBe(0);
  });
});
