import { assert, assertDebug } from '../assert.js';
import { framesMax, linesPerPage, sectionAlignI32s } from '../constants.js';
import { isForeignTo, privateDomain } from '../memory/domains.js';
import {
  acquireCoreLock,
  assertCoreBufferView,
  assertDomainCount,
  type CachedLine,
  type CoreBuffer,
  checkAndClearCounts,
  countValidEntries,
  domainOfOwner,
  foreignLinesFromCounts,
  ownerInvalid,
  ownerOf,
  releaseCoreLock,
} from './core-buffer.js';

/**
 * A core's L1D: `sets x ways` 64-byte lines, each tagged with its physical frame, its line in the
 * page and its frame's owner domain (DESIGN.md "Core resources"), so that INV-2 can ask in O(1) how
 * many lines foreign to a guest the core holds.
 *
 * Section layout (Int32 words from the core's base index, each region derived from the previous):
 *
 *   header    lock, valid-line total, LRU clock                      l1dHeaderI32s
 *   counts    valid lines per domain                                 domainCount
 *   setState  per set: the tree-PLRU bits (unused under LRU)         sets
 *   lines     per set, per way: pfn, lineInPage, owner, stamp        sets x ways x l1dLineI32s
 *   padding   up to a multiple of 16 words (64 bytes)
 *
 * A zero-filled section is an empty cache: owner 0 means invalid (see `ownerOf`), stamps, PLRU bits,
 * counts and the clock all start at 0. Views therefore never initialise memory, and a second view over
 * the same section sees the same cache.
 */

/** Header words. */
export const l1dLockI32 = 0;
export const l1dValidLinesI32 = l1dLockI32 + 1;
/** The last LRU stamp handed out; shared by both hyperthreads of the core so recency is core-wide. */
export const l1dClockI32 = l1dValidLinesI32 + 1;
export const l1dHeaderI32s = l1dClockI32 + 1;

/** Words of one stored line. */
export const l1dLinePfnI32 = 0;
export const l1dLineInPageI32 = l1dLinePfnI32 + 1;
/** `domain + 1`, 0 when the line is invalid. */
export const l1dLineOwnerI32 = l1dLineInPageI32 + 1;
/** LRU stamp: the clock value of the last access, 0 for an invalid line. */
export const l1dLineStampI32 = l1dLineOwnerI32 + 1;
export const l1dLineI32s = l1dLineStampI32 + 1;

/**
 * Ways are at most 32: the tree-PLRU of one set has ways - 1 nodes, kept as bits 1..ways-1 of one Int32
 * word (the machine config caps l1d.ways at 32 for the same reason).
 */
export const l1dWaysMax = 32;
/** Real L1Ds have 64 sets; 4096 sets x 32 ways (8 MiB of lines) is far past any, and bounds a core's section at 2 MiB. */
export const l1dSetsMax = 4096;
/** Stamps are Int32; when the clock would reach this, stamps are renumbered by rank (once per ~2^31 accesses). */
export const l1dStampMax = 0x7fff_ffff;

export type L1dReplacement = 'lru' | 'plru';

export interface L1dGeometry {
  sets: number;
  ways: number;
  replacement: L1dReplacement;
  domainCount: number;
}

/** Offsets of a core's L1D regions from its base index, and the padded size. */
export interface L1dLayout {
  countsI32Offset: number;
  setStateI32Offset: number;
  linesI32Offset: number;
  sizeI32s: number;
}

/** One way of a set as `peek` reports it. Invalid ways read pfn 0, lineInPage 0, domain -1. */
export interface L1dWay extends CachedLine {
  valid: boolean;
}

function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0;
}

function assertL1dGeometry(geometry: L1dGeometry): void {
  const { sets, ways, replacement, domainCount } = geometry;
  assert(
    isPowerOfTwo(sets) && sets <= l1dSetsMax,
    `l1d sets must be a power of two 1..${l1dSetsMax}, got ${sets}`,
  );
  assert(
    Number.isInteger(ways) && ways >= 1 && ways <= l1dWaysMax,
    `l1d ways must be 1..${l1dWaysMax}, got ${ways}`,
  );
  assert(
    replacement === 'lru' || replacement === 'plru',
    `l1d replacement must be lru or plru, got ${replacement}`,
  );
  assert(
    replacement !== 'plru' || isPowerOfTwo(ways),
    `tree-PLRU needs a power-of-two number of ways, got ${ways}`,
  );
  assertDomainCount(domainCount);
}

export function l1dLayout(geometry: L1dGeometry): L1dLayout {
  assertL1dGeometry(geometry);
  const countsI32Offset = l1dHeaderI32s;
  const setStateI32Offset = countsI32Offset + geometry.domainCount;
  const linesI32Offset = setStateI32Offset + geometry.sets;
  const endI32Offset = linesI32Offset + geometry.sets * geometry.ways * l1dLineI32s;
  const sizeI32s = Math.ceil(endI32Offset / sectionAlignI32s) * sectionAlignI32s;
  assert(sizeI32s % sectionAlignI32s === 0 && sizeI32s >= endI32Offset, 'l1d section padding');
  return { countsI32Offset, setStateI32Offset, linesI32Offset, sizeI32s };
}

/** Int32 words of one core's L1D section, a multiple of 16 (64 bytes). */
export function l1dI32s(geometry: L1dGeometry): number {
  return l1dLayout(geometry).sizeI32s;
}

export class CoreL1d implements CoreBuffer {
  readonly sets: number;
  readonly ways: number;
  readonly replacement: L1dReplacement;
  readonly domainCount: number;
  private readonly i32: Int32Array;
  private readonly lockI32Index: number;
  private readonly validLinesI32Index: number;
  private readonly clockI32Index: number;
  private readonly countsI32Index: number;
  private readonly setStateI32Index: number;
  private readonly linesI32Index: number;
  private readonly setI32s: number;
  private readonly setMask: number;
  /**
   * Set index = line address mod sets, with line address = pfn x 64 + lineInPage. pfn x 64 may pass
   * 2^31, so the line address is never masked: only pfn mod (sets / 64) matters (nothing when sets <= 64),
   * and pfn itself is at most framesMax = 2^31 - 1, so `pfn & pageMask` is exact. The result,
   * (pfn & pageMask) x 64 + lineInPage, is below max(sets, 64): safe for the 32-bit set mask.
   */
  private readonly pageMask: number;
  private readonly isPlru: boolean;
  /** Scratch for renumbering LRU stamps; allocated once here so the clock wrap allocates nothing. */
  private readonly rankScratch: Int32Array;

  /**
   * @param concurrent false when one thread drives every hyperthread (the sim backend): the core lock
   *   is then skipped. The workers backend attaches with true.
   */
  constructor(
    i32: Int32Array,
    baseI32Index: number,
    geometry: L1dGeometry,
    private readonly concurrent = true,
  ) {
    const layout = l1dLayout(geometry);
    assertCoreBufferView(i32, baseI32Index, layout.sizeI32s);
    this.sets = geometry.sets;
    this.ways = geometry.ways;
    this.replacement = geometry.replacement;
    this.domainCount = geometry.domainCount;
    this.i32 = i32;
    this.lockI32Index = baseI32Index + l1dLockI32;
    this.validLinesI32Index = baseI32Index + l1dValidLinesI32;
    this.clockI32Index = baseI32Index + l1dClockI32;
    this.countsI32Index = baseI32Index + layout.countsI32Offset;
    this.setStateI32Index = baseI32Index + layout.setStateI32Offset;
    this.linesI32Index = baseI32Index + layout.linesI32Offset;
    this.setI32s = geometry.ways * l1dLineI32s;
    this.setMask = geometry.sets - 1;
    this.pageMask = Math.max(1, geometry.sets / linesPerPage) - 1;
    this.isPlru = geometry.replacement === 'plru';
    this.rankScratch = new Int32Array(geometry.ways);
  }

  /** The set a line maps to. Non-mutating; tests use it to build conflicting streams. */
  setOf(pfn: number, lineInPage: number): number {
    return ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
  }

  access(pfn: number, lineInPage: number, domain: number): boolean {
    // Constant messages: a template literal here would allocate on every access even with debug off.
    assertDebug(
      Number.isInteger(pfn) && pfn >= 0 && pfn <= framesMax,
      'l1d access: pfn must be an integer 0..framesMax',
    );
    assertDebug(
      Number.isInteger(lineInPage) && lineInPage >= 0 && lineInPage < linesPerPage,
      'l1d access: lineInPage must be an integer 0..63',
    );
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      'l1d access: domain must be an integer 0..domainCount-1',
    );
    const i32 = this.i32;
    const set = ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
    const setI32Index = this.linesI32Index + set * this.setI32s;
    const setEndI32Index = setI32Index + this.setI32s;
    const owner = ownerOf(domain);
    if (this.concurrent) acquireCoreLock(i32, this.lockI32Index);

    // One pass finds a hit and, for a miss, the victim: under LRU the smallest stamp (invalid lines have
    // stamp 0, so they go first, lowest way first); under PLRU the first invalid way, if any.
    let victimI32Index = -1;
    let victimStamp = l1dStampMax;
    for (let lineI32Index = setI32Index; lineI32Index < setEndI32Index; lineI32Index += l1dLineI32s) {
      const lineOwner = i32[lineI32Index + l1dLineOwnerI32];
      if (
        i32[lineI32Index + l1dLinePfnI32] === pfn &&
        i32[lineI32Index + l1dLineInPageI32] === lineInPage &&
        lineOwner !== ownerInvalid
      ) {
        // The frame changed owner since the line came in (freed and reallocated, converted): the line
        // now holds the new owner's data as far as INV-2 is concerned.
        if (lineOwner !== owner) this.retag(lineI32Index, lineOwner, owner);
        this.touch(set, lineI32Index);
        if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
        return true;
      }
      const stamp = i32[lineI32Index + l1dLineStampI32];
      assertDebug((stamp === 0) === (lineOwner === ownerInvalid), 'l1d: stamp 0 exactly on invalid lines');
      if (stamp < victimStamp) {
        victimStamp = stamp;
        victimI32Index = lineI32Index;
      }
    }
    if (this.isPlru && victimStamp !== 0) victimI32Index = setI32Index + this.plruVictim(set) * l1dLineI32s;
    assertDebug(
      victimI32Index >= setI32Index && victimI32Index < setEndI32Index,
      'l1d: victim outside its set',
    );
    this.fill(victimI32Index, pfn, lineInPage, owner);
    this.touch(set, victimI32Index);
    if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
    return false;
  }

  flush(): number {
    const i32 = this.i32;
    if (this.concurrent) acquireCoreLock(i32, this.lockI32Index);
    const linesEndI32Index = this.linesI32Index + this.sets * this.setI32s;
    const dropped = countValidEntries(
      i32,
      this.linesI32Index,
      linesEndI32Index,
      l1dLineI32s,
      l1dLineOwnerI32,
    );
    checkAndClearCounts(i32, this.validLinesI32Index, this.countsI32Index, this.domainCount, dropped, 'l1d');
    // Back to the zero state of a fresh cache: lines, stamps, PLRU bits and clock, so replacement after a
    // flush does not depend on what was there before.
    i32.fill(0, this.setStateI32Index, linesEndI32Index);
    i32[this.clockI32Index] = 0;
    if (this.concurrent) releaseCoreLock(i32, this.lockI32Index);
    return dropped;
  }

  count(domain: number): number {
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      'l1d count: domain out of range',
    );
    return Atomics.load(this.i32, this.countsI32Index + domain);
  }

  validLines(): number {
    return Atomics.load(this.i32, this.validLinesI32Index);
  }

  foreignLines(vmId: number): number {
    return foreignLinesFromCounts(
      this.i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      vmId,
      this.concurrent,
    );
  }

  firstForeignLine(vmId: number): CachedLine | null {
    assert(
      Number.isInteger(vmId) && vmId >= 0 && privateDomain(vmId) < this.domainCount,
      `l1d firstForeignLine: no VM ${vmId} among ${this.domainCount} domains`,
    );
    const i32 = this.i32;
    const linesEndI32Index = this.linesI32Index + this.sets * this.setI32s;
    for (
      let lineI32Index = this.linesI32Index;
      lineI32Index < linesEndI32Index;
      lineI32Index += l1dLineI32s
    ) {
      const owner = i32[lineI32Index + l1dLineOwnerI32];
      if (owner === ownerInvalid || !isForeignTo(domainOfOwner(owner), vmId)) continue;
      return {
        pfn: i32[lineI32Index + l1dLinePfnI32],
        lineInPage: i32[lineI32Index + l1dLineInPageI32],
        domain: domainOfOwner(owner),
      };
    }
    return null;
  }

  /** The ways of `set`, in way order. Non-mutating; for tests and checkers. */
  peek(set: number): L1dWay[] {
    assert(
      Number.isInteger(set) && set >= 0 && set < this.sets,
      `l1d peek: set must be 0..${this.sets - 1}, got ${set}`,
    );
    const i32 = this.i32;
    const ways: L1dWay[] = [];
    for (let way = 0; way < this.ways; way++) {
      const lineI32Index = this.linesI32Index + set * this.setI32s + way * l1dLineI32s;
      const owner = i32[lineI32Index + l1dLineOwnerI32];
      ways.push({
        pfn: i32[lineI32Index + l1dLinePfnI32],
        lineInPage: i32[lineI32Index + l1dLineInPageI32],
        domain: domainOfOwner(owner),
        valid: owner !== ownerInvalid,
      });
    }
    return ways;
  }

  private retag(lineI32Index: number, oldOwner: number, newOwner: number): void {
    const i32 = this.i32;
    i32[lineI32Index + l1dLineOwnerI32] = newOwner;
    Atomics.sub(i32, this.countsI32Index + domainOfOwner(oldOwner), 1);
    Atomics.add(i32, this.countsI32Index + domainOfOwner(newOwner), 1);
  }

  private fill(lineI32Index: number, pfn: number, lineInPage: number, owner: number): void {
    const i32 = this.i32;
    const oldOwner = i32[lineI32Index + l1dLineOwnerI32];
    if (oldOwner === ownerInvalid) {
      Atomics.add(i32, this.validLinesI32Index, 1);
    } else {
      const left = Atomics.sub(i32, this.countsI32Index + domainOfOwner(oldOwner), 1) - 1;
      assertDebug(left >= 0, 'l1d: domain count went negative on eviction');
    }
    i32[lineI32Index + l1dLinePfnI32] = pfn;
    i32[lineI32Index + l1dLineInPageI32] = lineInPage;
    i32[lineI32Index + l1dLineOwnerI32] = owner;
    Atomics.add(i32, this.countsI32Index + domainOfOwner(owner), 1);
  }

  /** Marks the line most recently used: a fresh stamp (LRU) or the tree bits pointing away from it (PLRU). */
  private touch(set: number, lineI32Index: number): void {
    const i32 = this.i32;
    if (!this.isPlru) {
      let stamp = i32[this.clockI32Index] + 1;
      // Stamps stay below l1dStampMax, so the victim scan's starting value is above every real stamp.
      if (stamp >= l1dStampMax) stamp = this.renumberStamps() + 1;
      i32[this.clockI32Index] = stamp;
      i32[lineI32Index + l1dLineStampI32] = stamp;
      return;
    }
    // Tree-PLRU: node 1 is the root, node n has children 2n and 2n + 1. Bit n set means the next victim
    // is in the right subtree; on a touch each node on the path points away from the touched way.
    // Valid lines keep a nonzero stamp (1) under PLRU too, so one scan finds invalid ways under both.
    i32[lineI32Index + l1dLineStampI32] = 1;
    const way = (lineI32Index - this.linesI32Index - set * this.setI32s) / l1dLineI32s;
    let bits = i32[this.setStateI32Index + set];
    let node = 1;
    let firstWay = 0;
    for (let span = this.ways >> 1; span >= 1; span >>= 1) {
      if (way >= firstWay + span) {
        bits &= ~(1 << node);
        firstWay += span;
        node = 2 * node + 1;
      } else {
        bits |= 1 << node;
        node = 2 * node;
      }
    }
    i32[this.setStateI32Index + set] = bits;
  }

  private plruVictim(set: number): number {
    const bits = this.i32[this.setStateI32Index + set];
    let node = 1;
    let way = 0;
    for (let span = this.ways >> 1; span >= 1; span >>= 1) {
      if ((bits & (1 << node)) !== 0) {
        way += span;
        node = 2 * node + 1;
      } else {
        node = 2 * node;
      }
    }
    return way;
  }

  /**
   * The clock reached the top of Int32: renumber each set's valid stamps 1..n in their recency order
   * (LRU only compares stamps within a set) and restart the clock above every stamp. Returns the new clock.
   */
  private renumberStamps(): number {
    const i32 = this.i32;
    const ranks = this.rankScratch;
    for (let set = 0; set < this.sets; set++) {
      const setI32Index = this.linesI32Index + set * this.setI32s;
      for (let way = 0; way < this.ways; way++) {
        const stamp = i32[setI32Index + way * l1dLineI32s + l1dLineStampI32];
        let rank = 0;
        if (stamp !== 0) {
          rank = 1;
          for (let other = 0; other < this.ways; other++) {
            const otherStamp = i32[setI32Index + other * l1dLineI32s + l1dLineStampI32];
            if (otherStamp !== 0 && otherStamp < stamp) rank++;
          }
        }
        ranks[way] = rank;
      }
      for (let way = 0; way < this.ways; way++)
        i32[setI32Index + way * l1dLineI32s + l1dLineStampI32] = ranks[way];
    }
    return this.ways;
  }
}
