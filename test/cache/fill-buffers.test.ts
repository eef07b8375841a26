import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import type { CachedLine } from '../../src/cache/core-buffer.js';
import { CoreFillBuffers } from '../../src/cache/fill-buffers.js';
import { framesMax } from '../../src/constants.js';
import {
  domainCount as domainCountFor,
  domainHost,
  domainKvm,
  domainPublic,
  isForeignTo,
  privateDomain,
  vmDomain,
} from '../../src/memory/domains.js';
import {
  fillBufferEntriesMax,
  fillBufferI32s,
  fillBufferValidLinesI32,
} from '../../src/memory/sub-layouts.js';

const vmCount = 2;
const domainCount = domainCountFor(vmCount);
/** Words before and after the section, filled with a sentinel, to catch writes outside it. */
const guardI32s = 16;
const guardValue = -0x2a2a2a2b;

interface Fixture {
  i32: Int32Array;
  baseI32Index: number;
  sizeI32s: number;
  fillBuffers: CoreFillBuffers;
}

function makeFillBuffers(entries: number): Fixture {
  const sizeI32s = fillBufferI32s(entries, domainCount);
  const i32 = new Int32Array(new SharedArrayBuffer((sizeI32s + 2 * guardI32s) * 4));
  i32.fill(guardValue);
  i32.fill(0, guardI32s, guardI32s + sizeI32s);
  return {
    i32,
    baseI32Index: guardI32s,
    sizeI32s,
    fillBuffers: new CoreFillBuffers(i32, guardI32s, entries, domainCount),
  };
}

function expectGuardsIntact({ i32, sizeI32s }: Fixture): void {
  for (let index = 0; index < guardI32s; index++) expect(i32[index]).toBe(guardValue);
  for (let index = guardI32s + sizeI32s; index < i32.length; index++) expect(i32[index]).toBe(guardValue);
}

/** The reference: a plain array, oldest first; deliberately simpler than the ring. */
class ReferenceFifo {
  lines: CachedLine[] = [];
  constructor(private readonly entries: number) {}
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const line = this.lines.find((candidate) => candidate.pfn === pfn && candidate.lineInPage === lineInPage);
    if (line) {
      line.domain = domain;
      return true;
    }
    if (this.entries === 0) return false;
    this.lines.push({ pfn, lineInPage, domain });
    if (this.lines.length > this.entries) this.lines.shift();
    return false;
  }
  flush(): number {
    const dropped = this.lines.length;
    this.lines = [];
    return dropped;
  }
}

type Command = { kind: 'access'; pfn: number; lineInPage: number; domain: number } | { kind: 'flush' };

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      kind: fc.constant('access' as const),
      pfn: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: framesMax - 2, max: framesMax })),
      lineInPage: fc.integer({ min: 0, max: 7 }),
      domain: fc.integer({ min: 0, max: domainCount - 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
);

describe('CoreFillBuffers differential against a plain FIFO', () => {
  const seed = 0xf1f0;
  it(`matches hit/miss, order and counts after every step (seed ${seed})`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2, 10, 12, fillBufferEntriesMax),
        fc.array(commandArbitrary, { minLength: 200, maxLength: 1000 }),
        (entries, commands) => {
          const fixture = makeFillBuffers(entries);
          const { fillBuffers } = fixture;
          const reference = new ReferenceFifo(entries);
          commands.forEach((command, step) => {
            const where = `step ${step}: ${command.kind === 'flush' ? 'flush' : `access(${command.pfn}, ${command.lineInPage}, ${command.domain})`}`;
            if (command.kind === 'flush') {
              expect(fillBuffers.flush(), where).toBe(reference.flush());
            } else {
              const { pfn, lineInPage, domain } = command;
              expect(fillBuffers.access(pfn, lineInPage, domain), where).toBe(
                reference.access(pfn, lineInPage, domain),
              );
            }
            expect(fillBuffers.peek(), where).toEqual(reference.lines);
            expect(fillBuffers.validLines(), where).toBe(reference.lines.length);
            for (let domain = 0; domain < domainCount; domain++) {
              const expected = reference.lines.filter((line) => line.domain === domain).length;
              expect(fillBuffers.count(domain), `${where}: count(${domain})`).toBe(expected);
            }
            for (let vmId = 0; vmId < vmCount; vmId++) {
              const foreign = reference.lines.filter((line) => isForeignTo(line.domain, vmId));
              expect(fillBuffers.foreignLines(vmId), `${where}: foreignLines(${vmId})`).toBe(foreign.length);
              expect(fillBuffers.firstForeignLine(vmId), `${where}: firstForeignLine(${vmId})`).toEqual(
                foreign[0] ?? null,
              );
            }
          });
          expectGuardsIntact(fixture);
        },
      ),
      { seed, numRuns: 60 },
    );
  });
});

describe('CoreFillBuffers', () => {
  it('evicts in FIFO order; a hit neither reorders nor evicts', () => {
    const fixture = makeFillBuffers(3);
    const { fillBuffers } = fixture;
    expect(fillBuffers.access(1, 0, domainHost)).toBe(false);
    expect(fillBuffers.access(2, 0, domainKvm)).toBe(false);
    expect(fillBuffers.access(3, 0, domainPublic)).toBe(false);
    expect(fillBuffers.access(1, 0, domainHost)).toBe(true);
    expect(fillBuffers.peek().map((line) => line.pfn)).toEqual([1, 2, 3]);
    // 1 was used again but is still the oldest arrival: it goes first.
    expect(fillBuffers.access(4, 0, domainKvm)).toBe(false);
    expect(fillBuffers.peek().map((line) => line.pfn)).toEqual([2, 3, 4]);
    expect(fillBuffers.count(domainHost)).toBe(0);
    expect(fillBuffers.access(5, 0, domainKvm)).toBe(false);
    expect(fillBuffers.access(6, 0, domainKvm)).toBe(false);
    expect(fillBuffers.peek().map((line) => line.pfn)).toEqual([4, 5, 6]);
    expect(fillBuffers.count(domainKvm)).toBe(3);
    expect(fillBuffers.validLines()).toBe(3);
    expectGuardsIntact(fixture);
  });

  it('counts per domain, reports foreign lines per VM, retags on owner change', () => {
    const { fillBuffers } = makeFillBuffers(10);
    fillBuffers.access(1, 1, domainPublic);
    fillBuffers.access(2, 2, vmDomain(0));
    fillBuffers.access(3, 3, privateDomain(1));
    fillBuffers.access(4, 4, domainHost);
    expect(fillBuffers.foreignLines(0)).toBe(2);
    expect(fillBuffers.foreignLines(1)).toBe(2);
    expect(fillBuffers.firstForeignLine(0)).toEqual({ pfn: 3, lineInPage: 3, domain: privateDomain(1) });
    expect(fillBuffers.firstForeignLine(1)).toEqual({ pfn: 2, lineInPage: 2, domain: vmDomain(0) });
    // The host frame is handed to vm 1.
    expect(fillBuffers.access(4, 4, vmDomain(1))).toBe(true);
    expect(fillBuffers.count(domainHost)).toBe(0);
    expect(fillBuffers.count(vmDomain(1))).toBe(1);
    expect(fillBuffers.foreignLines(1)).toBe(1);
    expect(fillBuffers.validLines()).toBe(4);
  });

  it('flush (VERW) empties, returns the count and restarts the ring', () => {
    const { fillBuffers } = makeFillBuffers(4);
    for (let pfn = 0; pfn < 6; pfn++) fillBuffers.access(pfn, 0, domainHost);
    expect(fillBuffers.flush()).toBe(4);
    expect(fillBuffers.validLines()).toBe(0);
    expect(fillBuffers.count(domainHost)).toBe(0);
    expect(fillBuffers.foreignLines(0)).toBe(0);
    expect(fillBuffers.firstForeignLine(0)).toBeNull();
    expect(fillBuffers.peek()).toEqual([]);
    expect(fillBuffers.flush()).toBe(0);
    expect(fillBuffers.access(5, 0, domainHost)).toBe(false);
    expect(fillBuffers.peek()).toEqual([{ pfn: 5, lineInPage: 0, domain: domainHost }]);
  });

  it('with 0 entries takes no words and everything is a no-op', () => {
    expect(fillBufferI32s(0, domainCount)).toBe(0);
    // A zero-length view at the end of a buffer is enough: nothing of it is read or written.
    const i32 = new Int32Array(new SharedArrayBuffer(16 * 4));
    const fillBuffers = new CoreFillBuffers(i32, 16, 0, domainCount);
    expect(fillBuffers.access(1, 2, domainHost)).toBe(false);
    expect(fillBuffers.access(1, 2, domainHost)).toBe(false);
    expect(fillBuffers.validLines()).toBe(0);
    expect(fillBuffers.count(domainHost)).toBe(0);
    expect(fillBuffers.foreignLines(0)).toBe(0);
    expect(fillBuffers.firstForeignLine(0)).toBeNull();
    expect(fillBuffers.flush()).toBe(0);
    expect(i32.every((word) => word === 0)).toBe(true);
  });

  it('two views over the same SharedArrayBuffer and base see the same state', () => {
    const fixture = makeFillBuffers(10);
    const other = new CoreFillBuffers(
      new Int32Array(fixture.i32.buffer),
      fixture.baseI32Index,
      10,
      domainCount,
    );
    expect(fixture.fillBuffers.access(9, 9, domainHost)).toBe(false);
    expect(other.access(9, 9, domainHost)).toBe(true);
    expect(other.foreignLines(1)).toBe(1);
    expect(other.peek()).toEqual(fixture.fillBuffers.peek());
    expect(other.flush()).toBe(1);
    expect(fixture.fillBuffers.validLines()).toBe(0);
    expect(fixture.i32[fixture.baseI32Index + fillBufferValidLinesI32]).toBe(0);
    expectGuardsIntact(fixture);
  });

  it('sizes sections in whole 64-byte blocks and asserts on bad sizes and views', () => {
    for (const entries of [1, 10, fillBufferEntriesMax]) {
      const sizeI32s = fillBufferI32s(entries, domainCount);
      expect(sizeI32s % 16).toBe(0);
      expect(sizeI32s).toBeGreaterThanOrEqual(entries * 3 + domainCount);
    }
    expect(() => fillBufferI32s(-1, domainCount)).toThrow(AssertionError);
    expect(() => fillBufferI32s(fillBufferEntriesMax + 1, domainCount)).toThrow(AssertionError);
    expect(() => fillBufferI32s(2.5, domainCount)).toThrow(AssertionError);
    expect(() => fillBufferI32s(10, 7)).toThrow(AssertionError);
    const sizeI32s = fillBufferI32s(10, domainCount);
    expect(() => new CoreFillBuffers(new Int32Array(sizeI32s), 0, 10, domainCount)).toThrow(AssertionError);
    const shared = new Int32Array(new SharedArrayBuffer(sizeI32s * 4));
    expect(() => new CoreFillBuffers(shared, 8, 10, domainCount)).toThrow(/64-byte aligned/);
    expect(() => new CoreFillBuffers(shared, 16, 10, domainCount)).toThrow(/past the view/);
    expect(() => new CoreFillBuffers(shared, 0, 10, domainCount).firstForeignLine(vmCount)).toThrow(
      AssertionError,
    );
  });
});
