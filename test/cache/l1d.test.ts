import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import { CoreL1d } from '../../src/cache/l1d.js';
import { framesMax } from '../../src/constants.js';
import {
  domainCount as domainCountFor,
  domainFree,
  domainHost,
  domainKvm,
  domainPublic,
  isForeignTo,
  privateDomain,
  vmDomain,
} from '../../src/memory/domains.js';
import {
  type L1dGeometry,
  type L1dReplacement,
  l1dClockI32,
  l1dI32s,
  l1dStampMax,
  l1dValidLinesI32,
} from '../../src/memory/sub-layouts.js';

/** Three VMs: domains 0..9. */
const vmCount = 3;
const domainCount = domainCountFor(vmCount);
/** Words before and after the section, filled with a sentinel, to catch writes outside it. */
const guardI32s = 32;
const guardValue = 0x5a5a5a5a;

interface Fixture {
  i32: Int32Array;
  baseI32Index: number;
  sizeI32s: number;
  l1d: CoreL1d;
}

function makeL1d(geometry: L1dGeometry): Fixture {
  const sizeI32s = l1dI32s(geometry);
  const i32 = new Int32Array(new SharedArrayBuffer((sizeI32s + 2 * guardI32s) * 4));
  i32.fill(guardValue, 0, guardI32s);
  i32.fill(guardValue, guardI32s + sizeI32s);
  return { i32, baseI32Index: guardI32s, sizeI32s, l1d: new CoreL1d(i32, guardI32s, geometry) };
}

function expectGuardsIntact({ i32, sizeI32s }: Fixture): void {
  for (let index = 0; index < guardI32s; index++) expect(i32[index]).toBe(guardValue);
  for (let index = guardI32s + sizeI32s; index < i32.length; index++) expect(i32[index]).toBe(guardValue);
}

function geometry(sets: number, ways: number, replacement: L1dReplacement): L1dGeometry {
  return { sets, ways, replacement, domainCount };
}

// ---------------------------------------------------------------------------------------------------
// Reference models: deliberately simpler than the system (STYLE.md, fast-check). The set index uses
// BigInt arithmetic so that it is right for any pfn by construction, not by the same trick as l1d.ts.

function referenceSetOf(pfn: number, lineInPage: number, sets: number): number {
  return Number((BigInt(pfn) * 64n + BigInt(lineInPage)) % BigInt(sets));
}

interface ReferenceLine {
  pfn: number;
  lineInPage: number;
  domain: number;
}

interface ReferenceCache {
  access(pfn: number, lineInPage: number, domain: number): boolean;
  flush(): number;
  /** All valid lines. */
  lines(): ReferenceLine[];
  /** The lines of one set, in way order where the model knows ways (PLRU), else sorted. */
  setLines(set: number): ReferenceLine[];
  knowsWays: boolean;
}

/** True LRU: one Map per set in recency order (a Map iterates in insertion order; re-insert on use). */
class ReferenceLru implements ReferenceCache {
  readonly knowsWays = false;
  private readonly sets: Map<string, ReferenceLine>[];
  constructor(
    private readonly setCount: number,
    private readonly ways: number,
  ) {
    this.sets = Array.from({ length: setCount }, () => new Map());
  }
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const set = this.sets[referenceSetOf(pfn, lineInPage, this.setCount)];
    const key = `${pfn}:${lineInPage}`;
    const hit = set.has(key);
    if (hit) set.delete(key);
    else if (set.size === this.ways) set.delete(set.keys().next().value as string);
    set.set(key, { pfn, lineInPage, domain });
    return hit;
  }
  flush(): number {
    const dropped = this.lines().length;
    for (const set of this.sets) set.clear();
    return dropped;
  }
  lines(): ReferenceLine[] {
    return this.sets.flatMap((set) => [...set.values()]);
  }
  setLines(set: number): ReferenceLine[] {
    return sortLines([...this.sets[set].values()]);
  }
}

/**
 * Tree-PLRU as the textbook draws it: a binary tree over the ways; each node remembers which half to
 * evict from next; a use makes every node on its path point at the other half. Invalid ways fill first.
 */
class ReferencePlru implements ReferenceCache {
  readonly knowsWays = true;
  private readonly waysOfSet: (ReferenceLine | null)[][];
  /** evictRight[set][node] for nodes 1..ways-1 in heap order. */
  private readonly evictRight: boolean[][];
  constructor(
    private readonly setCount: number,
    private readonly ways: number,
  ) {
    this.waysOfSet = Array.from({ length: setCount }, () => new Array(ways).fill(null));
    this.evictRight = Array.from({ length: setCount }, () => new Array(ways).fill(false));
  }
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const set = referenceSetOf(pfn, lineInPage, this.setCount);
    const ways = this.waysOfSet[set];
    let way = ways.findIndex((line) => line !== null && line.pfn === pfn && line.lineInPage === lineInPage);
    const hit = way >= 0;
    if (!hit) {
      way = ways.indexOf(null);
      if (way < 0) way = this.victim(set, 1, 0, this.ways);
    }
    ways[way] = { pfn, lineInPage, domain };
    this.use(set, 1, 0, this.ways, way);
    return hit;
  }
  private victim(set: number, node: number, low: number, high: number): number {
    if (high - low === 1) return low;
    const middle = (low + high) / 2;
    return this.evictRight[set][node]
      ? this.victim(set, 2 * node + 1, middle, high)
      : this.victim(set, 2 * node, low, middle);
  }
  private use(set: number, node: number, low: number, high: number, way: number): void {
    if (high - low === 1) return;
    const middle = (low + high) / 2;
    const inRight = way >= middle;
    this.evictRight[set][node] = !inRight;
    if (inRight) this.use(set, 2 * node + 1, middle, high, way);
    else this.use(set, 2 * node, low, middle, way);
  }
  flush(): number {
    const dropped = this.lines().length;
    for (const ways of this.waysOfSet) ways.fill(null);
    for (const bits of this.evictRight) bits.fill(false);
    return dropped;
  }
  lines(): ReferenceLine[] {
    return this.waysOfSet.flatMap((ways) => ways.filter((line): line is ReferenceLine => line !== null));
  }
  setLines(set: number): ReferenceLine[] {
    return this.waysOfSet[set].map((line) => line ?? { pfn: 0, lineInPage: 0, domain: -1 });
  }
}

function sortLines(lines: ReferenceLine[]): ReferenceLine[] {
  return [...lines].sort((a, b) => a.pfn - b.pfn || a.lineInPage - b.lineInPage);
}

// ---------------------------------------------------------------------------------------------------
// Differential test.

type Command = { kind: 'access'; pfn: number; lineInPage: number; domain: number } | { kind: 'flush' };

function commandToString(command: Command): string {
  return command.kind === 'flush'
    ? 'flush'
    : `access(${command.pfn}, ${command.lineInPage}, ${command.domain})`;
}

/**
 * Mostly a small working set (so sets overflow and lines hit), sometimes frames near 2^31 (pfn x 64
 * past 32 bits), and a domain drawn independently of the frame so owners change and lines get retagged.
 */
const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 60,
    arbitrary: fc.record({
      kind: fc.constant('access' as const),
      pfn: fc.integer({ min: 0, max: 12 }),
      lineInPage: fc.integer({ min: 0, max: 63 }),
      domain: fc.integer({ min: 0, max: domainCount - 1 }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('access' as const),
      pfn: fc.integer({ min: framesMax - 8, max: framesMax }),
      lineInPage: fc.integer({ min: 0, max: 63 }),
      domain: fc.integer({ min: 0, max: domainCount - 1 }),
    }),
  },
  {
    weight: 30,
    // A few lines only: most of these hit, exercising recency updates and retags.
    arbitrary: fc.record({
      kind: fc.constant('access' as const),
      pfn: fc.integer({ min: 0, max: 2 }),
      lineInPage: fc.integer({ min: 0, max: 3 }),
      domain: fc.integer({ min: 0, max: domainCount - 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
);

const lruGeometryArbitrary = fc.record({
  sets: fc.constantFrom(1, 2, 4, 64, 128, 256),
  ways: fc.constantFrom(1, 2, 3, 8, 12),
  replacement: fc.constant('lru' as const),
  domainCount: fc.constant(domainCount),
});

const plruGeometryArbitrary = fc.record({
  sets: fc.constantFrom(1, 2, 4, 64, 128, 256),
  ways: fc.constantFrom(1, 2, 4, 8, 16, 32),
  replacement: fc.constant('plru' as const),
  domainCount: fc.constant(domainCount),
});

function referenceFor(geometry: L1dGeometry): ReferenceCache {
  return geometry.replacement === 'lru'
    ? new ReferenceLru(geometry.sets, geometry.ways)
    : new ReferencePlru(geometry.sets, geometry.ways);
}

/**
 * Runs commands on both, comparing every result and every count after every step. With `viewOf`, each
 * command goes to one of two views over the same section (the workers backend's two siblings), as
 * `viewOf[step]` says: each view keeps its own way hints, which the other view's accesses make stale.
 */
function runDifferential(
  geometry: L1dGeometry,
  commands: Command[],
  clockStart = 0,
  viewOf: readonly boolean[] = [],
): Fixture {
  const fixture = makeL1d(geometry);
  const { i32, baseI32Index } = fixture;
  const views = [fixture.l1d, new CoreL1d(i32, baseI32Index, geometry)];
  i32[baseI32Index + l1dClockI32] = clockStart;
  const reference = referenceFor(geometry);
  commands.forEach((command, step) => {
    const l1d = views[viewOf[step] ? 1 : 0];
    const where = `step ${step}: ${commandToString(command)}`;
    if (command.kind === 'flush') {
      expect(l1d.flush(), where).toBe(reference.flush());
    } else {
      const { pfn, lineInPage, domain } = command;
      expect(l1d.access(pfn, lineInPage, domain), where).toBe(reference.access(pfn, lineInPage, domain));
      const set = referenceSetOf(pfn, lineInPage, geometry.sets);
      expect(l1d.setOf(pfn, lineInPage), where).toBe(set);
      const ways = l1d.peek(set);
      const actual = reference.knowsWays
        ? ways.map(({ pfn, lineInPage, domain }) => ({ pfn, lineInPage, domain }))
        : sortLines(
            ways
              .filter((way) => way.valid)
              .map(({ pfn, lineInPage, domain }) => ({ pfn, lineInPage, domain })),
          );
      expect(actual, where).toEqual(reference.setLines(set));
    }
    const lines = reference.lines();
    expect(l1d.validLines(), where).toBe(lines.length);
    for (let domain = 0; domain < domainCount; domain++) {
      expect(l1d.count(domain), `${where}: count(${domain})`).toBe(
        lines.filter((line) => line.domain === domain).length,
      );
    }
    for (let vmId = 0; vmId < vmCount; vmId++) {
      const foreign = lines.filter((line) => isForeignTo(line.domain, vmId)).length;
      expect(l1d.foreignLines(vmId), `${where}: foreignLines(${vmId})`).toBe(foreign);
      expect(l1d.firstForeignLine(vmId) === null, `${where}: firstForeignLine(${vmId})`).toBe(foreign === 0);
    }
  });
  expectGuardsIntact(fixture);
  return fixture;
}

const commandsArbitrary = fc.array(commandArbitrary, { minLength: 300, maxLength: 1500 });

describe('CoreL1d differential against reference models', () => {
  const lruSeed = 0x11d1;
  it(`true LRU matches an array-of-Maps model (seed ${lruSeed})`, () => {
    fc.assert(
      fc.property(lruGeometryArbitrary, commandsArbitrary, (geometry, commands) => {
        runDifferential(geometry, commands);
      }),
      { seed: lruSeed, numRuns: 40 },
    );
  });

  const twoViewSeed = 0x2e1d;
  it(`two views taking turns at random match the models: a stale way hint never makes a hit (seed ${twoViewSeed})`, () => {
    fc.assert(
      fc.property(
        fc.oneof(lruGeometryArbitrary, plruGeometryArbitrary),
        commandsArbitrary,
        fc.array(fc.boolean(), { minLength: 1500, maxLength: 1500 }),
        (geometry, commands, viewOf) => {
          runDifferential(geometry, commands, 0, viewOf);
        },
      ),
      { seed: twoViewSeed, numRuns: 20 },
    );
  });

  const plruSeed = 0x91a5;
  it(`tree-PLRU matches a recursive tree model (seed ${plruSeed})`, () => {
    fc.assert(
      fc.property(plruGeometryArbitrary, commandsArbitrary, (geometry, commands) => {
        runDifferential(geometry, commands);
      }),
      { seed: plruSeed, numRuns: 40 },
    );
  });

  const wrapSeed = 0x3a9;
  it(`LRU stays exact across the stamp clock wrap (seed ${wrapSeed})`, () => {
    // No flushes here: a flush restarts the clock at 0, and this run must reach the top of Int32.
    const accesses = commandsArbitrary.map((commands) =>
      commands.filter((command) => command.kind === 'access'),
    );
    fc.assert(
      fc.property(
        lruGeometryArbitrary,
        accesses,
        fc.integer({ min: 1, max: 250 }),
        (geometry, commands, left) => {
          const clockStart = l1dStampMax - left;
          const { i32, baseI32Index } = runDifferential(geometry, commands, clockStart);
          expect(i32[baseI32Index + l1dClockI32], 'the clock wrapped and was renumbered').toBeLessThan(
            clockStart,
          );
        },
      ),
      { seed: wrapSeed, numRuns: 20 },
    );
  });
});

describe('CoreL1d with ASI_EMU_DEBUG=1', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  async function importDebug() {
    vi.stubEnv('ASI_EMU_DEBUG', '1');
    vi.resetModules();
    const l1dModule = await import('../../src/cache/l1d.js');
    const assertModule = await import('../../src/assert.js');
    return { CoreL1dDebug: l1dModule.CoreL1d, AssertionErrorDebug: assertModule.AssertionError };
  }

  const debugSeed = 0xdeb6;
  it(`runs the differential with every hot-path assert on (seed ${debugSeed})`, async () => {
    const { CoreL1dDebug } = await importDebug();
    fc.assert(
      fc.property(
        fc.constantFrom<L1dReplacement>('lru', 'plru'),
        commandsArbitrary,
        (replacement, commands) => {
          const shape = geometry(4, 4, replacement);
          const i32 = new Int32Array(new SharedArrayBuffer(l1dI32s(shape) * 4));
          const l1d = new CoreL1dDebug(i32, 0, shape);
          const reference = referenceFor(shape);
          for (const command of commands) {
            if (command.kind === 'flush') expect(l1d.flush()).toBe(reference.flush());
            else {
              const { pfn, lineInPage, domain } = command;
              expect(l1d.access(pfn, lineInPage, domain)).toBe(reference.access(pfn, lineInPage, domain));
            }
          }
        },
      ),
      { seed: debugSeed, numRuns: 10 },
    );
  });

  it('rejects bad pfn, lineInPage and domain at the edge', async () => {
    const { CoreL1dDebug, AssertionErrorDebug } = await importDebug();
    const shape = geometry(64, 8, 'lru');
    const l1d = new CoreL1dDebug(new Int32Array(new SharedArrayBuffer(l1dI32s(shape) * 4)), 0, shape);
    expect(() => l1d.access(-1, 0, domainHost)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(1.5, 0, domainHost)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(framesMax + 1, 0, domainHost)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(0, 64, domainHost)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(0, -1, domainHost)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(0, 0, domainCount)).toThrow(AssertionErrorDebug);
    expect(() => l1d.access(0, 0, -1)).toThrow(AssertionErrorDebug);
    expect(() => l1d.count(domainCount)).toThrow(AssertionErrorDebug);
    expect(() => l1d.foreignLines(vmCount)).toThrow(AssertionErrorDebug);
    // Nothing was half-done: the lock is free and the cache still works.
    expect(l1d.access(0, 0, domainHost)).toBe(false);
    expect(l1d.validLines()).toBe(1);
  });
});

describe('CoreL1d counts, flush and foreign lines', () => {
  it('keeps per-domain counts and the total exact, and flush empties and returns the count', () => {
    const fixture = makeL1d(geometry(64, 8, 'lru'));
    const { l1d } = fixture;
    // Page 0 for host, page 1 for vm:0, page 2 for private:1, page 3 public: 64 lines each, no conflicts
    // beyond 8 ways (4 pages x 64 lines = 256 lines over 64 sets = 4 per set).
    const owners = [domainHost, vmDomain(0), privateDomain(1), domainPublic];
    owners.forEach((domain, pfn) => {
      for (let line = 0; line < 64; line++) expect(l1d.access(pfn, line, domain)).toBe(false);
    });
    for (const domain of owners) expect(l1d.count(domain)).toBe(64);
    expect(l1d.count(domainKvm)).toBe(0);
    expect(l1d.validLines()).toBe(256);
    // Second pass: everything hits.
    owners.forEach((domain, pfn) => {
      for (let line = 0; line < 64; line++) expect(l1d.access(pfn, line, domain)).toBe(true);
    });
    expect(l1d.validLines()).toBe(256);
    // vm 0 sees host and private:1 as foreign; vm 1 sees host and vm:0; vm 2 all three.
    expect(l1d.foreignLines(0)).toBe(128);
    expect(l1d.foreignLines(1)).toBe(128);
    expect(l1d.foreignLines(2)).toBe(192);
    expect(l1d.flush()).toBe(256);
    expect(l1d.validLines()).toBe(0);
    for (let domain = 0; domain < domainCount; domain++) expect(l1d.count(domain)).toBe(0);
    expect(l1d.foreignLines(2)).toBe(0);
    expect(l1d.firstForeignLine(2)).toBeNull();
    expect(l1d.flush()).toBe(0);
    // After a flush everything misses again.
    expect(l1d.access(0, 0, domainHost)).toBe(false);
    expectGuardsIntact(fixture);
  });

  it('evicts the least recently used way, preferring invalid ways', () => {
    const { l1d } = makeL1d(geometry(1, 4, 'lru'));
    for (let pfn = 0; pfn < 4; pfn++) l1d.access(pfn, 0, domainKvm);
    expect(l1d.peek(0).map((way) => way.pfn)).toEqual([0, 1, 2, 3]);
    l1d.access(0, 0, domainKvm); // 1 is now the least recently used
    expect(l1d.access(4, 0, domainKvm)).toBe(false);
    expect(l1d.peek(0).map((way) => way.pfn)).toEqual([0, 4, 2, 3]);
    expect(l1d.access(1, 0, domainKvm)).toBe(false); // evicted; replaces 2
    expect(l1d.peek(0).map((way) => way.pfn)).toEqual([0, 4, 1, 3]);
    expect(l1d.validLines()).toBe(4);
    expect(l1d.count(domainKvm)).toBe(4);
  });

  it('tree-PLRU with 4 ways evicts the way the tree points at', () => {
    const { l1d } = makeL1d(geometry(1, 4, 'plru'));
    for (let pfn = 0; pfn < 4; pfn++) l1d.access(pfn, 0, domainKvm);
    // After using 0,1,2,3 the root points left (3 was last), the left node points at 0.
    expect(l1d.access(9, 0, domainKvm)).toBe(false);
    expect(l1d.peek(0).map((way) => way.pfn)).toEqual([9, 1, 2, 3]);
    // Now root points right, the right node at 2 (3 was used after 2).
    expect(l1d.access(10, 0, domainKvm)).toBe(false);
    expect(l1d.peek(0).map((way) => way.pfn)).toEqual([9, 1, 10, 3]);
  });

  it('finds the first foreign line and reports nothing foreign to its own VM', () => {
    const { l1d } = makeL1d(geometry(64, 8, 'plru'));
    l1d.access(7, 3, domainPublic);
    l1d.access(8, 4, domainKvm);
    l1d.access(9, 5, vmDomain(1));
    l1d.access(10, 6, domainFree);
    expect(l1d.firstForeignLine(1)).toBeNull();
    expect(l1d.foreignLines(1)).toBe(0);
    expect(l1d.firstForeignLine(0)).toEqual({ pfn: 9, lineInPage: 5, domain: vmDomain(1) });
    expect(l1d.foreignLines(0)).toBe(1);
    l1d.access(11, 1, domainHost);
    // Set 1 comes before set 5: the scan reports in set order.
    expect(l1d.firstForeignLine(1)).toEqual({ pfn: 11, lineInPage: 1, domain: domainHost });
    // Non-mutating: asking again changes nothing.
    expect(l1d.firstForeignLine(1)).toEqual({ pfn: 11, lineInPage: 1, domain: domainHost });
    expect(l1d.validLines()).toBe(5);
  });

  it('retags a line whose frame changed owner, on a hit', () => {
    const { l1d } = makeL1d(geometry(64, 8, 'lru'));
    expect(l1d.access(5, 10, domainHost)).toBe(false);
    expect(l1d.foreignLines(0)).toBe(1);
    // The frame was freed and given to vm 0: the same line now hits and belongs to vm:0.
    expect(l1d.access(5, 10, vmDomain(0))).toBe(true);
    expect(l1d.count(domainHost)).toBe(0);
    expect(l1d.count(vmDomain(0))).toBe(1);
    expect(l1d.validLines()).toBe(1);
    expect(l1d.foreignLines(0)).toBe(0);
    expect(l1d.foreignLines(1)).toBe(1);
    expect(l1d.peek(l1d.setOf(5, 10)).find((way) => way.valid)).toEqual({
      pfn: 5,
      lineInPage: 10,
      domain: vmDomain(0),
      valid: true,
    });
  });

  it('maps lines of frames past 2^25 (pfn x 64 past 2^31) to the right set', () => {
    const { l1d } = makeL1d(geometry(256, 2, 'lru'));
    const pfn = framesMax; // 2^31 - 1: pfn x 64 + 63 = 2^37 - 1
    expect(l1d.setOf(pfn, 63)).toBe(referenceSetOf(pfn, 63, 256));
    expect(l1d.setOf(2 ** 26 + 3, 5)).toBe(referenceSetOf(2 ** 26 + 3, 5, 256));
    expect(l1d.access(pfn, 63, domainHost)).toBe(false);
    expect(l1d.access(pfn, 63, domainHost)).toBe(true);
    expect(l1d.peek(l1d.setOf(pfn, 63))[0]).toEqual({ pfn, lineInPage: 63, domain: domainHost, valid: true });
  });
});

describe('CoreL1d in the shared buffer', () => {
  it('two views over the same SharedArrayBuffer and base see the same state', () => {
    const shape = geometry(64, 8, 'plru');
    const fixture = makeL1d(shape);
    const other = new CoreL1d(new Int32Array(fixture.i32.buffer), fixture.baseI32Index, shape);
    expect(fixture.l1d.access(3, 9, domainHost)).toBe(false);
    expect(other.access(3, 9, domainHost)).toBe(true);
    expect(other.count(domainHost)).toBe(1);
    other.access(4, 9, vmDomain(2));
    expect(fixture.l1d.foreignLines(0)).toBe(2);
    expect(fixture.l1d.firstForeignLine(2)).toEqual({ pfn: 3, lineInPage: 9, domain: domainHost });
    expect(fixture.l1d.peek(9)).toEqual(other.peek(9));
    expect(other.flush()).toBe(2);
    expect(fixture.l1d.validLines()).toBe(0);
    expect(fixture.i32[fixture.baseI32Index + l1dValidLinesI32]).toBe(0);
    expectGuardsIntact(fixture);
  });

  it('two cores side by side do not disturb each other', () => {
    const shape = geometry(4, 2, 'lru');
    const sizeI32s = l1dI32s(shape);
    const i32 = new Int32Array(new SharedArrayBuffer(2 * sizeI32s * 4));
    const core0 = new CoreL1d(i32, 0, shape);
    const core1 = new CoreL1d(i32, sizeI32s, shape);
    for (let line = 0; line < 8; line++) core0.access(1, line, domainHost);
    expect(core0.validLines()).toBe(8);
    expect(core1.validLines()).toBe(0);
    expect(core1.access(1, 0, domainHost)).toBe(false);
    expect(core1.flush()).toBe(1);
    expect(core0.validLines()).toBe(8);
  });
});

describe('CoreL1d geometry and layout', () => {
  it('sizes sections in whole 64-byte blocks', () => {
    for (const shape of [geometry(64, 12, 'lru'), geometry(64, 8, 'plru'), geometry(1, 1, 'lru')]) {
      const sizeI32s = l1dI32s(shape);
      expect(sizeI32s % 16).toBe(0);
      expect(sizeI32s).toBeGreaterThanOrEqual(shape.sets * shape.ways * 4 + shape.domainCount);
    }
  });

  it('asserts on bad geometry', () => {
    expect(() => l1dI32s(geometry(3, 8, 'lru'))).toThrow(AssertionError);
    expect(() => l1dI32s(geometry(0, 8, 'lru'))).toThrow(AssertionError);
    expect(() => l1dI32s(geometry(64, 0, 'lru'))).toThrow(AssertionError);
    expect(() => l1dI32s(geometry(64, 33, 'lru'))).toThrow(AssertionError);
    expect(() => l1dI32s(geometry(64, 12, 'plru'))).toThrow(/power-of-two number of ways/);
    expect(() => l1dI32s({ ...geometry(64, 8, 'lru'), replacement: 'fifo' as L1dReplacement })).toThrow(
      AssertionError,
    );
    expect(() => l1dI32s({ ...geometry(64, 8, 'lru'), domainCount: 5 })).toThrow(AssertionError);
    expect(() => l1dI32s({ ...geometry(64, 8, 'lru'), domainCount: 2 })).toThrow(AssertionError);
  });

  it('asserts on a bad view: not shared, misaligned, or too short', () => {
    const shape = geometry(64, 8, 'lru');
    const sizeI32s = l1dI32s(shape);
    expect(() => new CoreL1d(new Int32Array(sizeI32s), 0, shape)).toThrow(AssertionError);
    const shared = new Int32Array(new SharedArrayBuffer((sizeI32s + 16) * 4));
    expect(() => new CoreL1d(shared, 4, shape)).toThrow(/64-byte aligned/);
    expect(() => new CoreL1d(shared, 32, shape)).toThrow(/past the view/);
    expect(() => new CoreL1d(shared, -16, shape)).toThrow(AssertionError);
    expect(new CoreL1d(shared, 16, shape).validLines()).toBe(0);
  });

  it('asserts firstForeignLine and peek arguments', () => {
    const { l1d } = makeL1d(geometry(64, 8, 'lru'));
    expect(() => l1d.firstForeignLine(vmCount)).toThrow(AssertionError);
    expect(() => l1d.peek(64)).toThrow(AssertionError);
  });
});
