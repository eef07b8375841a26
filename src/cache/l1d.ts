import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import { linesPerPage } from '../constants.js';
import { acquireCoreLock, releaseCoreLock } from '../kick/core-lock.js';
import { isForeignTo } from '../memory/domains.js';
import {
  frameHashMultiplier,
  type L1dGeometry,
  type L1dReplacement,
  l1dClockI32,
  l1dHintSlots,
  l1dLayout,
  l1dLineI32s,
  l1dLineInPageI32,
  l1dLineOwnerI32,
  l1dLinePfnI32,
  l1dLineStampI32,
  l1dLockI32,
  l1dPageMask,
  l1dStampMax,
  l1dValidLinesI32,
  l1dWayBits,
} from '../memory/sub-layouts.js';
import {
  assertCoreBufferView,
  type CachedLine,
  type CoreBuffer,
  type CountsView,
  checkLineArguments,
  countValidEntries,
  domainOfOwner,
  ownerInvalid,
  ownerOf,
} from './core-buffer.js';
import { LineCounts } from './line-counts.js';

// The section's layout is declared with the other sub-layouts (memory/sub-layouts.ts); what a caller
// that sizes an L1D of its own needs (bench/cache.bench.ts) is re-exported here.
export { type L1dGeometry, type L1dReplacement, l1dI32s } from '../memory/sub-layouts.js';

/**
 * A core's L1D: `sets x ways` 64-byte lines, each tagged with its physical frame, its line in the
 * page and its frame's owner domain (DESIGN.md "Core resources"), so that INV-2 can ask in O(1) how
 * many lines foreign to a guest the core holds.
 *
 * Section layout: memory/sub-layouts.ts (header, per-domain counts, PLRU bits, lines, way hints).
 *
 * A zero-filled section is an empty cache: owner 0 means invalid (see `ownerOf`), stamps, PLRU bits,
 * counts, the clock and the hints all start at 0. Views therefore never initialise memory, and a second
 * view over the same section sees the same cache.
 */

// The line layout as the hot paths read it.
const pfnWord = l1dLinePfnI32;
const lineInPageWord = l1dLineInPageI32;
const ownerWord = l1dLineOwnerI32;
const stampWord = l1dLineStampI32;
const lineWords = l1dLineI32s;
const stampMax = l1dStampMax;
const hintBuckets = l1dHintSlots;
/** The shift that takes a 32-bit hash to one of the hint slots. */
const hintShift = 32 - Math.log2(hintBuckets);
const wayBits = l1dWayBits;
const wayMask = (1 << wayBits) - 1;
/** Above every key: (l1dStampMax << wayBits) | 31 < 2^31 - 1. */
const keyMax = 0x7fff_ffff;

/** One way of a set as `peek` reports it. Invalid ways read pfn 0, lineInPage 0, domain -1. */
export interface L1dWay extends CachedLine {
  valid: boolean;
}

export class CoreL1d implements CoreBuffer {
  readonly sets: number;
  readonly ways: number;
  readonly replacement: L1dReplacement;
  readonly domainCount: number;
  /** Where the section begins in `i32`. */
  readonly baseI32Index: number;
  private readonly i32: Int32Array;
  private readonly lockI32Index: number;
  private readonly clockI32Index: number;
  private readonly setStateI32Index: number;
  private readonly linesI32Index: number;
  private readonly setI32s: number;
  private readonly setMask: number;
  /** sub-layouts.ts `l1dPageMask`: the result, (pfn & pageMask) x 64 + lineInPage, is below max(sets, 64). */
  readonly pageMask: number;
  private readonly isPlru: boolean;
  /** Scratch for renumbering LRU stamps; allocated once here so the clock wrap allocates nothing. */
  private readonly rankScratch: Int32Array;
  /**
   * Way hints (the section's hints region): per set, `hintBuckets` slots indexed by a hash of the
   * frame, each holding way + 1 of the line last seen there (0: none). A hint is only a guess, checked
   * against the way before it counts as a hit; a wrong or stale one (the line was evicted or flushed)
   * falls back to the scan. So hits land without the scan, whose exit at a random way mispredicted. In
   * the buffer rather than in each view so that every view (and the accelerated path) sees the same hints.
   */
  private readonly hintsI32Index: number;
  /** The valid-line total and per-domain counts (line-counts.ts). */
  private readonly counts: LineCounts;

  constructor(i32: Int32Array, baseI32Index: number, geometry: L1dGeometry) {
    const layout = l1dLayout(geometry);
    assertCoreBufferView(i32, baseI32Index, layout.sizeI32s);
    this.sets = geometry.sets;
    this.ways = geometry.ways;
    this.replacement = geometry.replacement;
    this.domainCount = geometry.domainCount;
    this.baseI32Index = baseI32Index;
    this.i32 = i32;
    this.lockI32Index = baseI32Index + l1dLockI32;
    this.clockI32Index = baseI32Index + l1dClockI32;
    this.setStateI32Index = baseI32Index + layout.setStateI32Offset;
    this.linesI32Index = baseI32Index + layout.linesI32Offset;
    this.setI32s = geometry.ways * l1dLineI32s;
    this.setMask = geometry.sets - 1;
    this.pageMask = l1dPageMask(geometry.sets);
    this.isPlru = geometry.replacement === 'plru';
    this.rankScratch = new Int32Array(geometry.ways);
    this.hintsI32Index = baseI32Index + layout.hintsI32Offset;
    this.counts = new LineCounts(
      i32,
      baseI32Index + l1dValidLinesI32,
      baseI32Index + layout.countsI32Offset,
      geometry.domainCount,
      'l1d',
    );
  }

  /** The set a line maps to. Non-mutating; tests use it to build conflicting streams. */
  setOf(pfn: number, lineInPage: number): number {
    return ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
  }

  /** The access with the core lock held around it (the reference path of any backend). */
  access(pfn: number, lineInPage: number, domain: number): boolean {
    // The checks (ASI_EMU_DEBUG=1, a run the accelerated path never serves) are a function of their own,
    // so the hot path stays short when they are off; before the lock, which a throw would leave held.
    if (assertDebugEnabled) checkLineArguments('l1d', pfn, lineInPage, domain, this.domainCount);
    acquireCoreLock(this.i32, this.lockI32Index);
    const hit = this.accessHeld(pfn, lineInPage, domain);
    releaseCoreLock(this.i32, this.lockI32Index);
    return hit;
  }

  /**
   * `access` with the core lock held, or none needed (one thread drives the machine). Apart from
   * `access`, so that the lock's Atomics calls are not compiled into the same function as the scan: on a
   * replica of the fill-buffer access, having them there (untaken) made it ~1.8x slower.
   */
  accessHeld(pfn: number, lineInPage: number, domain: number): boolean {
    const i32 = this.i32;
    const set = ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
    const setI32Index = this.linesI32Index + set * this.setI32s;
    const setEndI32Index = setI32Index + this.setI32s;
    const owner = ownerOf(domain);
    const hintI32Index =
      this.hintsI32Index + set * hintBuckets + (Math.imul(pfn, frameHashMultiplier) >>> hintShift);
    const hintedWay = i32[hintI32Index] - 1;
    if (hintedWay >= 0) {
      const hintedI32Index = setI32Index + hintedWay * lineWords;
      if (
        i32[hintedI32Index + stampWord] !== 0 &&
        ((i32[hintedI32Index + pfnWord] ^ pfn) | (i32[hintedI32Index + lineInPageWord] ^ lineInPage)) === 0
      ) {
        return this.hit(set, hintedI32Index, owner);
      }
    }

    // Then the hit by a scan: ways in order, up to the line or the first invalid way. Lines are only ever
    // invalidated all at once (flush), and a fill takes the lowest invalid way, so each set's valid
    // lines are a prefix of its ways: an invalid way (stamp 0) ends the search, and is the victim under
    // both policies. After a flush, when most misses happen, a miss reads one or two ways. The same pass
    // keeps the LRU victim of a full set, without a data-dependent branch (where the oldest way is, is
    // random, and a plain minimum's branch mispredicted a few times per miss): the smallest key
    // stamp x 32 + way, taken with a sign mask (keys fit an Int32: stamps are below 2^26).
    let lineI32Index = setI32Index;
    let minKey = keyMax;
    let wayKey = 0;
    for (; lineI32Index < setEndI32Index; lineI32Index += lineWords) {
      const stamp = i32[lineI32Index + stampWord];
      if (stamp === 0) {
        if (assertDebugEnabled)
          assertDebug(
            i32[lineI32Index + ownerWord] === ownerInvalid,
            'l1d: stamp 0 exactly on invalid lines',
          );
        break;
      }
      // The frame number is compared first: it alone rejects almost every way.
      if (i32[lineI32Index + pfnWord] === pfn && i32[lineI32Index + lineInPageWord] === lineInPage) {
        i32[hintI32Index] = (lineI32Index - setI32Index) / lineWords + 1;
        return this.hit(set, lineI32Index, owner);
      }
      const below = ((stamp << wayBits) | wayKey) - minKey;
      minKey += below & (below >> 31);
      wayKey++;
    }
    // A miss. In a full set the victim is the least recently used way (LRU: the smallest stamp, the
    // lowest way among equals) or the one the tree points at (PLRU).
    let victimI32Index = lineI32Index;
    if (lineI32Index === setEndI32Index) {
      victimI32Index = this.isPlru
        ? setI32Index + this.plruVictim(set) * lineWords
        : setI32Index + (minKey & wayMask) * lineWords;
    }
    if (assertDebugEnabled)
      assertDebug(
        victimI32Index >= setI32Index && victimI32Index < setEndI32Index,
        'l1d: victim outside its set',
      );
    this.fill(victimI32Index, pfn, lineInPage, owner);
    this.touch(set, victimI32Index);
    i32[hintI32Index] = (victimI32Index - setI32Index) / lineWords + 1;
    return false;
  }

  private hit(set: number, lineI32Index: number, owner: number): true {
    const lineOwner = this.i32[lineI32Index + ownerWord];
    if (assertDebugEnabled) assertDebug(lineOwner !== ownerInvalid, 'l1d: a line with a stamp is valid');
    // The frame changed owner since the line came in (freed and reallocated, converted): the line
    // now holds the new owner's data as far as INV-2 is concerned.
    if (lineOwner !== owner) this.retag(lineI32Index, lineOwner, owner);
    this.touch(set, lineI32Index);
    return true;
  }

  /** The flush with the core lock held around it (the reference path). */
  flush(): number {
    acquireCoreLock(this.i32, this.lockI32Index);
    const dropped = this.flushLines();
    this.finishFlush(dropped);
    releaseCoreLock(this.i32, this.lockI32Index);
    return dropped;
  }

  /**
   * The rest of a flush, with the core lock held or none needed, once `dropped` valid lines were zeroed
   * (by `flushLines` or by the accelerated path's kernel, which transcribes it): the paired check of the
   * counts and their reset, and the replacement state back to zero. `shared`: whether other threads read
   * the counts (line-counts.ts `clearAfterFlush`).
   */
  finishFlush(dropped: number, shared = true): void {
    const i32 = this.i32;
    this.counts.clearAfterFlush(dropped, shared);
    if (assertDebugEnabled) {
      const linesEndI32Index = this.linesI32Index + this.sets * this.setI32s;
      const left = countValidEntries(i32, this.linesI32Index, linesEndI32Index, lineWords, ownerWord);
      assertDebug(left === 0, 'l1d flush: a valid line past the first invalid way of its set');
    }
    // The PLRU bits (LRU never sets them) and the clock back to zero too, so replacement after a flush
    // does not depend on what was there before.
    if (this.isPlru) i32.fill(0, this.setStateI32Index, this.setStateI32Index + this.sets);
    i32[this.clockI32Index] = 0;
  }

  /**
   * Zeroes every valid line; returns how many (the loop the access kernel's `flushLines` transcribes).
   * Valid lines are a prefix of each set's ways (see `accessHeld`) and an invalid line is all zeros, so
   * zeroing each set's prefix leaves the zero state of a fresh cache (lines and stamps) without reading
   * or writing the empty ways: a flush comes every few hundred steps under asi. The caller holds the
   * core lock (or needs none) and calls `finishFlush` after.
   */
  flushLines(): number {
    const i32 = this.i32;
    let dropped = 0;
    for (let set = 0; set < this.sets; set++) {
      const setI32Index = this.linesI32Index + set * this.setI32s;
      const setEndI32Index = setI32Index + this.setI32s;
      let lineI32Index = setI32Index;
      while (lineI32Index < setEndI32Index && i32[lineI32Index + stampWord] !== 0) {
        for (let word = 0; word < lineWords; word++) i32[lineI32Index + word] = 0;
        lineI32Index += lineWords;
        dropped++;
      }
    }
    return dropped;
  }

  count(domain: number): number {
    return this.counts.count(domain);
  }

  validLines(): number {
    return this.counts.validLines();
  }

  countsView(): CountsView {
    return this.counts.view();
  }

  foreignLines(vmId: number): number {
    return this.counts.foreignLines(vmId);
  }

  firstForeignLine(vmId: number): CachedLine | null {
    this.counts.assertVm(vmId);
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
    this.i32[lineI32Index + ownerWord] = newOwner;
    this.counts.retag(oldOwner, newOwner);
  }

  private fill(lineI32Index: number, pfn: number, lineInPage: number, owner: number): void {
    const i32 = this.i32;
    const oldOwner = i32[lineI32Index + ownerWord];
    i32[lineI32Index + pfnWord] = pfn;
    i32[lineI32Index + lineInPageWord] = lineInPage;
    i32[lineI32Index + ownerWord] = owner;
    this.counts.refill(oldOwner, owner);
  }

  /** Marks the line most recently used: a fresh stamp (LRU) or the tree bits pointing away from it (PLRU). */
  private touch(set: number, lineI32Index: number): void {
    const i32 = this.i32;
    if (!this.isPlru) {
      let stamp = i32[this.clockI32Index] + 1;
      // Stamps are Int32 words: renumber them before the clock would overflow.
      if (stamp >= stampMax) stamp = this.renumberStamps() + 1;
      i32[this.clockI32Index] = stamp;
      i32[lineI32Index + stampWord] = stamp;
      return;
    }
    // Tree-PLRU: node 1 is the root, node n has children 2n and 2n + 1. Bit n set means the next victim
    // is in the right subtree; on a touch each node on the path points away from the touched way.
    // Valid lines keep a nonzero stamp (1) under PLRU too, so one scan finds invalid ways under both.
    i32[lineI32Index + stampWord] = 1;
    const way = (lineI32Index - this.linesI32Index - set * this.setI32s) / lineWords;
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
