import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { largePage1GBytes, largePage2MBytes, pageBytes } from '../../src/constants.js';
import { createMachine } from '../../src/machine.js';
import { kernelSpace, kvmSpace, vmmSpace } from '../../src/paging/address-space.js';
import { Access, EptBit, MapFlag, X86Bit, x86NxHigh } from '../../src/paging/entry-format.js';
import { smallMachine } from '../helpers/machines.js';

/** An unused window of the user half for random operations: 64 MiB at 0x100000000000. */
const windowVa = 0x100000000000;
const windowPages = (64 * 1024 * 1024) / pageBytes;
const pagesPer2M = largePage2MBytes / pageBytes;

type Reference = Map<number, { pfn: number; flags: number }>;

type Operation =
  | { kind: 'map4k'; space: 0 | 1; page: number; pfn: number; flags: number }
  | { kind: 'map2m'; space: 0 | 1; chunk: number; pfnChunk: number; flags: number }
  | { kind: 'unmap'; space: 0 | 1; page: number; pages: number }
  | { kind: 'copy'; from: 0 | 1; page: number; pages: number };

const flagsArbitrary = fc.constantFrom(
  0,
  MapFlag.write,
  MapFlag.write | MapFlag.user,
  MapFlag.exec,
  MapFlag.write | MapFlag.exec,
);
const spaceArbitrary = fc.constantFrom<0 | 1>(0, 1);
/**
 * The machine under test has 8 GiB of frames (2^21), so frame numbers reach past bit 20: their entries'
 * PFN field (bits 12..51) then crosses into the upper 32-bit word of the entry.
 */
const memoryMiB = 8192;
const frameCount = (memoryMiB * 1024 * 1024) / pageBytes;
const pfnArbitrary = fc.oneof(fc.nat(8000), fc.integer({ min: frameCount - 8000, max: frameCount - 1 }));
const pfnChunkArbitrary = fc.oneof(
  fc.nat(14),
  fc.integer({ min: frameCount / pagesPer2M - 15, max: frameCount / pagesPer2M - 1 }),
);
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('map4k' as const),
      space: spaceArbitrary,
      page: fc.nat(windowPages - 1),
      pfn: pfnArbitrary,
      flags: flagsArbitrary,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('map2m' as const),
      space: spaceArbitrary,
      chunk: fc.nat(windowPages / pagesPer2M - 1),
      pfnChunk: pfnChunkArbitrary,
      flags: flagsArbitrary,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      space: spaceArbitrary,
      page: fc.nat(windowPages - 1),
      pages: fc.integer({ min: 1, max: 1500 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('copy' as const),
      from: spaceArbitrary,
      page: fc.nat(windowPages - 1),
      pages: fc.integer({ min: 1, max: 1500 }),
    }),
  },
);

/** Pages of the window as the page tables say: page -> { pfn, flags }. */
function observed(machine: ReturnType<typeof smallMachine>, space: number): Reference {
  const pages: Reference = new Map();
  for (const range of machine.pageTables.listMapped(space, windowVa, windowVa + windowPages * pageBytes)) {
    const flags =
      (range.writable ? MapFlag.write : 0) |
      (range.user ? MapFlag.user : 0) |
      (range.executable ? MapFlag.exec : 0);
    for (let i = 0; i < range.pages; i++) {
      pages.set((range.vaStart - windowVa) / pageBytes + i, { pfn: range.pfnStart + i, flags });
    }
  }
  return pages;
}

/** Up to `count` entries spread over the whole map (every k-th), for the walk checks after each operation. */
function sample(reference: Reference, count: number): [number, { pfn: number; flags: number }][] {
  const entries = [...reference];
  const stride = Math.max(1, Math.ceil(entries.length / count));
  return entries.filter((_, index) => index % stride === 0);
}

describe('page tables: differential test against a plain Map', () => {
  // The two address spaces under test are `vmm:0` and `vmm:1`, both x86 format with tables of their own
  // in the user half. One machine serves every run: each run starts by unmapping the window in both.
  // (1 GiB leaves do not fit the 64 MiB window: the hardware-format tests below map and walk them.)
  const seed = 20261123;
  const runs = 60;
  const operationsMax = 200;
  it(`random map/unmap/copy sequences agree with the reference (seed ${seed}, ${runs} runs x 50..${operationsMax} operations)`, () => {
    const machine = createMachine({
      cores: 1,
      smt: 2,
      memoryMiB,
      vms: [
        { vcpus: 1, guestMemoryMiB: 1 },
        { vcpus: 1, guestMemoryMiB: 1 },
      ],
      pageTablePoolPages: 512,
    });
    expect(machine.layout.frameCount).toBe(frameCount);
    let operationsRun = 0;
    fc.assert(
      fc.property(
        fc.array(operationArbitrary, { minLength: 50, maxLength: operationsMax, size: 'max' }),
        (operations) => {
          const spaces = [vmmSpace(0), vmmSpace(1)];
          const references: Reference[] = [new Map(), new Map()];
          const tables = machine.pageTables;
          for (const space of spaces) {
            tables.unmap(space, windowVa, windowPages * pageBytes);
            expect(tables.listMapped(space, windowVa, windowVa + windowPages * pageBytes)).toEqual([]);
          }
          for (const operation of operations) {
            operationsRun++;
            switch (operation.kind) {
              case 'map4k': {
                tables.map(
                  spaces[operation.space],
                  windowVa + operation.page * pageBytes,
                  operation.pfn,
                  operation.flags,
                );
                references[operation.space].set(operation.page, {
                  pfn: operation.pfn,
                  flags: operation.flags,
                });
                break;
              }
              case 'map2m': {
                const firstPage = operation.chunk * pagesPer2M;
                const firstPfn = operation.pfnChunk * pagesPer2M;
                tables.map(
                  spaces[operation.space],
                  windowVa + firstPage * pageBytes,
                  firstPfn,
                  operation.flags,
                  largePage2MBytes,
                );
                for (let i = 0; i < pagesPer2M; i++)
                  references[operation.space].set(firstPage + i, {
                    pfn: firstPfn + i,
                    flags: operation.flags,
                  });
                break;
              }
              case 'unmap': {
                const pages = Math.min(operation.pages, windowPages - operation.page);
                const expected = [...Array(pages).keys()].filter((i) =>
                  references[operation.space].has(operation.page + i),
                ).length;
                const cleared = tables.unmap(
                  spaces[operation.space],
                  windowVa + operation.page * pageBytes,
                  pages * pageBytes,
                );
                expect(cleared).toBe(expected);
                for (let i = 0; i < pages; i++) references[operation.space].delete(operation.page + i);
                break;
              }
              case 'copy': {
                const pages = Math.min(operation.pages, windowPages - operation.page);
                const to = 1 - operation.from;
                tables.copyRange(
                  spaces[to],
                  spaces[operation.from],
                  windowVa + operation.page * pageBytes,
                  pages * pageBytes,
                );
                for (let i = 0; i < pages; i++) {
                  const entry = references[operation.from].get(operation.page + i);
                  if (entry) references[to].set(operation.page + i, { ...entry });
                }
                break;
              }
            }
            // Spot check: pages spread over both spaces walk to the reference's frame.
            for (const side of [0, 1]) {
              for (const [page, entry] of sample(references[side], 20)) {
                expect(tables.walk(spaces[side], windowVa + page * pageBytes, Access.read, false)).toBe(
                  entry.pfn,
                );
              }
            }
          }
          for (const side of [0, 1]) {
            expect(observed(machine, spaces[side])).toEqual(references[side]);
          }
          // Tables emptied by unmaps went back to the pool: no page-table page is left without entries.
          for (const space of spaces) {
            expect(tables.tablePageCount(space)).toBe(tables.tablePagesOf(space).length);
          }
        },
      ),
      { seed, numRuns: runs },
    );
    // The sequences are as long as the title says (fast-check's default size would cap them near 10).
    expect(operationsRun).toBeGreaterThanOrEqual(runs * 50);
  });
});

describe('page tables: hardware entry format', () => {
  it('puts P, RW, US, A, D, PS, G at bits 0, 1, 2, 5, 6, 7, 8, NX at bit 63 and the PFN at bits 12..51', () => {
    const machine = smallMachine();
    const tables = machine.pageTables;
    const va = 0x100000000000;
    tables.map(vmmSpace(0), va, 0x1234, MapFlag.write | MapFlag.user);
    const lows: number[] = [];
    const highs: number[] = [];
    tables.forEachLeaf(vmmSpace(0), va, va + pageBytes, (_va, level, low, high) => {
      expect(level).toBe(1);
      lows.push(low);
      highs.push(high);
    });
    expect(lows).toHaveLength(1);
    expect(lows[0] & 0x1ff).toBe(X86Bit.present | X86Bit.rw | X86Bit.us);
    expect(lows[0] >>> 12).toBe(0x1234);
    expect((highs[0] & x86NxHigh) !== 0).toBe(true); // not executable -> NX set
    // A walk for a write sets A and D, as the hardware walker does.
    expect(tables.accessedDirty(vmmSpace(0), va)).toEqual({ accessed: false, dirty: false });
    expect(tables.walk(vmmSpace(0), va, Access.write | Access.user, true)).toBe(0x1234);
    expect(tables.accessedDirty(vmmSpace(0), va)).toEqual({ accessed: true, dirty: true });
    // A functional walk changes nothing.
    tables.map(vmmSpace(0), va + pageBytes, 0x99, MapFlag.write);
    tables.walk(vmmSpace(0), va + pageBytes, Access.read, false);
    expect(tables.accessedDirty(vmmSpace(0), va + pageBytes)).toEqual({ accessed: false, dirty: false });
    tables.walk(vmmSpace(0), va + pageBytes, Access.read, true);
    expect(tables.accessedDirty(vmmSpace(0), va + pageBytes)).toEqual({ accessed: true, dirty: false });
  });

  it('checks RW, US and NX over every level', () => {
    const tables = smallMachine().pageTables;
    const va = 0x100000200000;
    tables.map(vmmSpace(0), va, 7, 0); // read-only, supervisor, NX
    expect(tables.translate(vmmSpace(0), va, Access.read)).toMatchObject({ ok: true, pfn: 7 });
    expect(tables.translate(vmmSpace(0), va, Access.write)).toMatchObject({
      ok: false,
      reason: 'write-protect',
    });
    expect(tables.translate(vmmSpace(0), va, Access.user)).toMatchObject({
      ok: false,
      reason: 'user-supervisor',
    });
    expect(tables.translate(vmmSpace(0), va, Access.exec)).toMatchObject({ ok: false, reason: 'no-execute' });
    expect(tables.translate(vmmSpace(0), va + pageBytes, Access.read)).toMatchObject({
      ok: false,
      reason: 'not-present',
      level: 1,
    });
  });

  it('EPT entries use R/W/X in bits 0..2 and A/D in bits 8/9', () => {
    const machine = smallMachine();
    const tables = machine.pageTables;
    const guest = 2; // guest:0
    const lows: number[] = [];
    tables.forEachLeaf(guest, 0, pageBytes, (_va, _level, low) => lows.push(low));
    expect(lows[0] & 7).toBe(EptBit.read | EptBit.write | EptBit.exec);
    tables.walk(guest, 0, Access.write, true);
    const after: number[] = [];
    tables.forEachLeaf(guest, 0, pageBytes, (_va, _level, low) => after.push(low));
    expect(after[0] & (EptBit.accessed | EptBit.dirty)).toBe(EptBit.accessed | EptBit.dirty);
  });
});

describe('page tables: large pages', () => {
  it('maps 2 MiB and 1 GiB leaves and walks to the right 4 KiB frame inside them', () => {
    const machine = createMachine({
      cores: 1,
      smt: 1,
      memoryMiB: 64,
      vms: [{ vcpus: 1, guestMemoryMiB: 1 }],
    });
    const tables = machine.pageTables;
    const space = vmmSpace(0);
    const va2m = 0x200000000000;
    tables.map(space, va2m, 512, MapFlag.write, largePage2MBytes);
    expect(tables.translate(space, va2m + 5 * pageBytes + 17)).toMatchObject({
      ok: true,
      pfn: 517,
      leafBytes: largePage2MBytes,
      physicalAddress: 517 * pageBytes + 17,
    });
    const va1g = 0x300000000000;
    tables.map(space, va1g, 0, MapFlag.write, largePage1GBytes);
    expect(tables.translate(space, va1g + 3000 * pageBytes)).toMatchObject({
      ok: true,
      pfn: 3000,
      leafBytes: largePage1GBytes,
    });
    expect(tables.listMapped(space, va1g, va1g + largePage1GBytes)).toEqual([
      expect.objectContaining({
        vaStart: va1g,
        pfnStart: 0,
        pages: largePage1GBytes / pageBytes,
        leafBytes: largePage1GBytes,
      }),
    ]);
  });

  it('unmapping part of a 2 MiB page splits it and keeps the rest', () => {
    const tables = smallMachine().pageTables;
    const space = vmmSpace(0);
    const va = 0x200000000000;
    tables.map(space, va, 1024, MapFlag.write, largePage2MBytes);
    expect(tables.unmap(space, va + 10 * pageBytes, 2 * pageBytes)).toBe(2);
    expect(tables.translate(space, va + 9 * pageBytes)).toMatchObject({
      ok: true,
      pfn: 1033,
      leafBytes: pageBytes,
    });
    expect(tables.translate(space, va + 10 * pageBytes)).toMatchObject({ ok: false, reason: 'not-present' });
    expect(tables.translate(space, va + 12 * pageBytes)).toMatchObject({ ok: true, pfn: 1036 });
    expect(tables.splitToBasePages(space, va + 100 * pageBytes)).toBe(false);
  });

  it('rejects misaligned large pages and leaf sizes that do not exist', () => {
    const tables = smallMachine().pageTables;
    expect(() => tables.map(vmmSpace(0), 0x200000001000, 512, 0, largePage2MBytes)).toThrow(/aligned/);
    expect(() => tables.map(vmmSpace(0), 0x200000000000, 513, 0, largePage2MBytes)).toThrow(/aligned/);
    expect(() => tables.map(vmmSpace(0), 0x200000000000, 0, 0, 8192)).toThrow(/4 KiB, 2 MiB or 1 GiB/);
  });
});

describe('page tables: kernel sharing and ownership (INV-6 at the source)', () => {
  it('vmm:N shares the kernel half and cannot write kernel tables through it', () => {
    const machine = smallMachine();
    const tables = machine.pageTables;
    const pageCache = machine.region('page-cache');
    const va = machine.regionVa(pageCache);
    expect(tables.translate(vmmSpace(0), va)).toMatchObject({ ok: true, pfn: pageCache.firstPfn });
    expect(() => tables.map(vmmSpace(0), va, 1, MapFlag.write)).toThrow(/INV-6/);
    expect(() => tables.unmap(vmmSpace(0), va)).toThrow(/INV-6/);
    expect(() => tables.map(kvmSpace(0), 0x100000000000, 1, 0)).not.toThrow();
    expect(tables.translate(kernelSpace, 0x100000000000)).toMatchObject({ ok: false });
  });
});
