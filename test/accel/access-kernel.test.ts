import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { AcceleratedCaches } from '../../src/accel/accelerated-access.js';
import type { AccessKernel } from '../../src/accel/access-kernel.js';
import { writeCacheDescriptor } from '../../src/accel/kernel-descriptor.js';
import { allocateSimRegion, releaseSimRegion, type SimRegion } from '../../src/accel/sim-arena.js';
import { CoreCaches } from '../../src/cache/core-caches.js';
import { CoreFillBuffers } from '../../src/cache/fill-buffers.js';
import { CoreL1d } from '../../src/cache/l1d.js';
import {
  descriptorI32s,
  fillBufferI32s,
  fillBufferLayout,
  type L1dReplacement,
  l1dClockI32,
  l1dI32s,
  l1dStampMax,
} from '../../src/memory/sub-layouts.js';

/**
 * The access kernel (src/accel/access-kernel.wat) against the reference it transcribes, CoreL1d and
 * CoreFillBuffers in JavaScript: the same command streams on two copies of a core's sections, one in a
 * sim arena region through the accelerated path's caches (the kernel, and the classes for what it hands
 * back), one in a plain SharedArrayBuffer through the reference, must leave
 * every word the same and answer every access the same (fast-check prints the seed and the shrunk stream
 * of a failure).
 */

interface Geometry {
  sets: number;
  ways: number;
  replacement: L1dReplacement;
  domainCount: number;
  fillBufferEntries: number;
}

type Command =
  | { kind: 'access'; pfn: number; lineInPage: number; domain: number }
  | { kind: 'flush-l1d' }
  | { kind: 'flush-buffers' };

/** One core's L1D and fill buffers side by side, with a guard word before and after. */
interface Core {
  i32: Int32Array;
  /** The reference's caches, or the accelerated path's (in a region). */
  caches: Pick<CoreCaches, 'access'> & { flushL1d(): number; flushFillBuffers(): number };
  fillBuffers: CoreFillBuffers;
}

const guardI32s = 16;

function sectionsI32s(geometry: Geometry): { l1dI32s: number; fillBufferI32s: number; total: number } {
  const l1d = l1dI32s(geometry);
  const fillBuffers = fillBufferI32s(geometry.fillBufferEntries, geometry.domainCount);
  return { l1dI32s: l1d, fillBufferI32s: fillBuffers, total: guardI32s + l1d + fillBuffers + guardI32s };
}

/** The region holds the core's cache descriptor after the sections (compared words stop before it). */
function regionI32s(geometry: Geometry): number {
  return sectionsI32s(geometry).total + descriptorI32s;
}

function makeCore(geometry: Geometry, region: SimRegion | null): Core {
  const { l1dI32s: l1dWords, total } = sectionsI32s(geometry);
  const i32 =
    region === null
      ? new Int32Array(new SharedArrayBuffer(total * 4))
      : new Int32Array(region.buffer, region.byteOffset, total);
  const l1d = new CoreL1d(i32, guardI32s, geometry);
  const fillBuffers = new CoreFillBuffers(
    i32,
    guardI32s + l1dWords,
    geometry.fillBufferEntries,
    geometry.domainCount,
  );
  const caches = new CoreCaches(l1d, fillBuffers);
  if (region === null) {
    return {
      i32,
      fillBuffers,
      caches: {
        access: (pfn, line, domain) => caches.access(pfn, line, domain),
        flushL1d: () => l1d.flush(),
        flushFillBuffers: () => fillBuffers.flush(),
      },
    };
  }
  // The core's cache descriptor after the sections, as the accelerated path writes it for a machine.
  const memoryI32Offset = region.byteOffset / 4;
  writeCacheDescriptor(
    new Int32Array(region.buffer, region.byteOffset + total * 4, descriptorI32s),
    memoryI32Offset,
    guardI32s,
    geometry,
    guardI32s + l1dWords,
    geometry.fillBufferEntries,
  );
  return { i32, fillBuffers, caches: new AcceleratedCaches(region.kernels, memoryI32Offset + total, caches) };
}

function apply(core: Core, command: Command): boolean | number {
  switch (command.kind) {
    case 'access':
      return core.caches.access(command.pfn, command.lineInPage, command.domain);
    case 'flush-l1d':
      return core.caches.flushL1d();
    case 'flush-buffers':
      return core.caches.flushFillBuffers();
  }
}

/** What a comparison found: the first command after which the copies differ (-1: none), and the kernel's answers. */
interface Comparison {
  firstDifference: number;
  /** Accesses the kernel answered (hit or miss) and those it handed to the reference (-1). */
  kernelAnswers: number;
  handedBack: number;
}

/** Runs `commands` on both copies, the kernel's wrapped by `plant` (a planted bug, or a counter). */
function compare(
  geometry: Geometry,
  commands: Command[],
  clockStart: number,
  plant: (kernel: AccessKernel) => AccessKernel = (kernel) => kernel,
): Comparison {
  const region = allocateSimRegion(regionI32s(geometry) * 4);
  expect(region).not.toBeNull();
  if (region === null) throw new Error('no sim arena region');
  const comparison = { firstDifference: -1, kernelAnswers: 0, handedBack: 0 };
  const counted: AccessKernel = (...args: Parameters<AccessKernel>) => {
    const answer = plant(region.kernels.access)(...args);
    if (answer < 0) comparison.handedBack++;
    else comparison.kernelAnswers++;
    return answer;
  };
  const kernelCore = makeCore(geometry, { ...region, kernels: { ...region.kernels, access: counted } });
  const referenceCore = makeCore(geometry, null);
  // The LRU clock set near its bound, so the kernel hands renumbering to the reference.
  kernelCore.i32[guardI32s + l1dClockI32] = clockStart;
  referenceCore.i32[guardI32s + l1dClockI32] = clockStart;
  try {
    for (let i = 0; i < commands.length; i++) {
      const kernelAnswer = apply(kernelCore, commands[i]);
      const referenceAnswer = apply(referenceCore, commands[i]);
      let same = kernelAnswer === referenceAnswer;
      for (let word = 0; same && word < kernelCore.i32.length; word++) {
        same = kernelCore.i32[word] === referenceCore.i32[word];
      }
      if (!same) {
        comparison.firstDifference = i;
        break;
      }
    }
  } finally {
    releaseSimRegion(region);
  }
  return comparison;
}

const geometryArbitrary: fc.Arbitrary<Geometry> = fc
  .record({
    sets: fc.constantFrom(1, 2, 8, 64, 128, 256, 1024),
    // Up to 32 ways: the widest LRU key (5 bits of way) and PLRU tree (node 31).
    waysLog2: fc.integer({ min: 0, max: 5 }),
    // LRU also takes 12 (Skylake's L1D) and any other count: the kernel scans four ways a turn and the
    // rest (ways % 4) one at a time, so 5, 6, 7 and 13 ways take both paths.
    lruWays: fc.constantFrom(null, 12, 5, 6, 7, 13, 30),
    replacement: fc.constantFrom<L1dReplacement>('lru', 'plru'),
    // 4 host domains and 2 per VM (memory/domains.ts), 1-3 VMs.
    domainCount: fc.constantFrom(6, 8, 10),
    fillBufferEntries: fc.constantFrom(0, 1, 4, 10, 12, 32),
  })
  .map(({ sets, waysLog2, lruWays, replacement, domainCount, fillBufferEntries }) => ({
    sets,
    // PLRU takes a power of two.
    ways: replacement === 'lru' && lruWays !== null ? lruWays : 2 ** waysLog2,
    replacement,
    domainCount,
    fillBufferEntries,
  }));

function commandArbitrary(geometry: Geometry): fc.Arbitrary<Command> {
  // Few frames (hits, conflicts, full sets) and a few far ones (high bits in the set index and hashes).
  const pfn = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 100, max: 140 }) },
    // Frame 0 at line 0 has the words of an invalid (zeroed) way: an invalid way must not match.
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 1 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 31 - 1 }) },
  );
  return fc.oneof(
    {
      weight: 30,
      arbitrary: fc.record({
        kind: fc.constant('access' as const),
        pfn,
        lineInPage: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 63 })),
        domain: fc.integer({ min: 0, max: geometry.domainCount - 1 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'flush-l1d' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'flush-buffers' as const }) },
  );
}

describe('access kernel', () => {
  test('leaves the same L1D and fill buffers as the reference, answer by answer', () => {
    fc.assert(
      fc.property(
        geometryArbitrary.chain((geometry) =>
          fc.record({
            geometry: fc.constant(geometry),
            commands: fc.array(commandArbitrary(geometry), { minLength: 1, maxLength: 400, size: 'max' }),
            clockStart: fc.oneof(fc.constant(0), fc.integer({ min: l1dStampMax - 40, max: l1dStampMax - 1 })),
          }),
        ),
        ({ geometry, commands, clockStart }) => {
          const { firstDifference, kernelAnswers, handedBack } = compare(geometry, commands, clockStart);
          // The kernel answers every access but those at the clock's bound (the reference renumbers).
          const accesses = commands.filter((command) => command.kind === 'access').length;
          return (
            firstDifference === -1 &&
            kernelAnswers + handedBack === accesses &&
            (clockStart === 0 ? handedBack === 0 : handedBack <= 1)
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a long stream of a busy core (Skylake L1D, 12 fill buffers) stays identical', () => {
    const geometry: Geometry = {
      sets: 64,
      ways: 12,
      replacement: 'lru',
      domainCount: 6,
      fillBufferEntries: 12,
    };
    // A fixed LCG stream over 24 frames (twice the cache), one flush every 2,000 accesses.
    let state = 7;
    const next = () => {
      state = (Math.imul(state, 1103515245) + 12345) | 0;
      return (state >>> 8) / 16777216;
    };
    const commands: Command[] = [];
    for (let i = 0; i < 20_000; i++) {
      if (i % 2000 === 1999) commands.push({ kind: i % 4000 === 3999 ? 'flush-buffers' : 'flush-l1d' });
      else
        commands.push({
          kind: 'access',
          pfn: 1000 + Math.floor(next() * 24),
          lineInPage: Math.floor(next() * 64),
          domain: next() < 0.9 ? 4 : Math.floor(next() * 6),
        });
    }
    expect(compare(geometry, commands, 0)).toEqual({
      firstDifference: -1,
      kernelAnswers: commands.filter((command) => command.kind === 'access').length,
      handedBack: 0,
    });
  });

  test('the comparison catches a planted kernel bug: lines tagged with the wrong owner', () => {
    const geometry: Geometry = {
      sets: 64,
      ways: 8,
      replacement: 'lru',
      domainCount: 6,
      fillBufferEntries: 4,
    };
    const commands: Command[] = [
      { kind: 'access', pfn: 5, lineInPage: 3, domain: 0 },
      { kind: 'access', pfn: 6, lineInPage: 3, domain: 4 },
    ];
    expect(compare(geometry, commands, 0).firstDifference).toBe(-1);
    // Every line tagged as domain 0: the second access's owner (and INV-2's counts) differ.
    const wrongOwner =
      (kernel: AccessKernel): AccessKernel =>
      (descriptor, pfn, line) =>
        kernel(descriptor, pfn, line, 0);
    expect(compare(geometry, commands, 0, wrongOwner).firstDifference).toBe(1);
  });

  test('a fill-buffer flush finds a filter that disagrees with the entries, through the kernel as through the reference', () => {
    const geometry: Geometry = {
      sets: 64,
      ways: 8,
      replacement: 'lru',
      domainCount: 6,
      fillBufferEntries: 10,
    };
    const region = allocateSimRegion(regionI32s(geometry) * 4);
    if (region === null) throw new Error('no sim arena region');
    try {
      for (const core of [makeCore(geometry, region), makeCore(geometry, null)]) {
        const filterI32Index =
          guardI32s + l1dI32s(geometry) + fillBufferLayout(10, geometry.domainCount).filterI32Offset;
        for (let pfn = 0; pfn < 3; pfn++) core.caches.access(100 + pfn, 7, 4);
        expect(core.caches.flushFillBuffers()).toBe(3);
        for (let pfn = 0; pfn < 3; pfn++) core.caches.access(200 + pfn, 9, 4);
        // A bucket counting one entry too many: the flush still empties the buffers, and says so.
        core.i32[filterI32Index + 5]++;
        expect(() => core.caches.flushFillBuffers()).toThrow(/filter buckets and valid entries disagree/);
        expect(core.fillBuffers.peek()).toEqual([]);
        expect(core.i32[filterI32Index + 5]).toBe(0);
      }
    } finally {
      releaseSimRegion(region);
    }
  });
});
