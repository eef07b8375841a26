import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import { linesPerPage, sectionAlignI32s } from '../constants.js';
import { acquireCoreLock, releaseCoreLock } from '../kick/core-lock.js';
import { isForeignTo, privateDomain } from '../memory/domains.js';
import { addWord } from '../memory/words.js';
import type { FlushLinesKernel } from './access-kernel.js';
import {
  assertCoreBufferView,
  assertDomainCount,
  type CachedLine,
  type CoreBuffer,
  type CountsView,
  checkAndClearCounts,
  checkLineArguments,
  countValidEntries,
  domainOfOwner,
  foreignLinesFromCounts,
  ownerInvalid,
  ownerOf,
} from './core-buffer.js';
import { CacheDescriptorWord, type KernelSeat, seatByteAddress, seatWords } from './kernel-descriptor.js';

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
 *   hints     per set, way hints: way + 1 of a line seen there, or 0   sets x l1dHintSlots
 *   padding   up to a multiple of 16 words (64 bytes)
 *
 * A zero-filled section is an empty cache: owner 0 means invalid (see `ownerOf`), stamps, PLRU bits,
 * counts, the clock and the hints all start at 0. Views therefore never initialise memory, and a second
 * view over the same section sees the same cache.
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
/**
 * Real L1Ds have 64 sets; 4096 sets x 32 ways (8 MiB of lines) is far past any, and bounds a core's
 * section at 3 MiB (2 MiB of lines, 1 MiB of way hints).
 */
export const l1dSetsMax = 4096;
/**
 * When the clock would reach this, stamps are renumbered by rank (once per ~2^26 accesses of a core; a
 * pass over the sets). 2^26 so that an LRU key, stamp x 32 + way, fits an Int32 (`accessHeld`).
 */
export const l1dStampMax = 2 ** 26 - 1;

// The line layout as the hot paths read it.
const pfnWord = l1dLinePfnI32;
const lineInPageWord = l1dLineInPageI32;
const ownerWord = l1dLineOwnerI32;
const stampWord = l1dLineStampI32;
const lineWords = l1dLineI32s;
const stampMax = l1dStampMax;
/**
 * Way-hint slots per set (a power of two; access-kernel.wat has the same number) and the shift that takes
 * a 32-bit hash to one of them. A set holds one line of each of up to `ways` frames (64 sets: a page's
 * lines fall in different sets), and a core's two siblings bring two vCPUs' working sets: with 16 slots,
 * frames of one set shared a slot often enough that one hit in six went to the scan. 64 slots: 3% less
 * work per sim step (docs/perf-log.md), same results.
 */
export const l1dHintSlots = 64;
const hintBuckets = l1dHintSlots;
const hintShift = 32 - Math.log2(hintBuckets);
/** Bits of a way number in an LRU key (stamp << wayBits | way): ways are at most 32. */
const wayBits = 5;
const wayMask = (1 << wayBits) - 1;
/** Above every key: (l1dStampMax << wayBits) | 31 < 2^31 - 1. */
const keyMax = 0x7fff_ffff;

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
  hintsI32Offset: number;
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
  const hintsI32Offset = linesI32Offset + geometry.sets * geometry.ways * l1dLineI32s;
  const endI32Offset = hintsI32Offset + geometry.sets * l1dHintSlots;
  const sizeI32s = Math.ceil(endI32Offset / sectionAlignI32s) * sectionAlignI32s;
  assert(sizeI32s % sectionAlignI32s === 0 && sizeI32s >= endI32Offset, 'l1d section padding');
  return { countsI32Offset, setStateI32Offset, linesI32Offset, hintsI32Offset, sizeI32s };
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
  /** Where the section begins in `i32` (the access kernel derives the regions from it, as l1dLayout does). */
  readonly baseI32Index: number;
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
  readonly pageMask: number;
  private readonly isPlru: boolean;
  /** Scratch for renumbering LRU stamps; allocated once here so the clock wrap allocates nothing. */
  private readonly rankScratch: Int32Array;
  /**
   * Way hints (the section's hints region): per set, `hintBuckets` slots indexed by a hash of the
   * frame, each holding way + 1 of the line last seen there (0: none). A hint is only a guess, checked
   * against the way before it counts as a hit; a wrong or stale one (the line was evicted or flushed)
   * falls back to the scan. So hits land without the scan, whose exit at a random way mispredicted. In
   * the buffer rather than in each view so the access kernel (access-kernel.wat) sees the same hints.
   */
  private readonly hintsI32Index: number;

  private readonly concurrent: boolean;
  /** The access kernel's flush loop over the memory that holds `i32` (a sim machine), or null. */
  private readonly flushKernel: FlushLinesKernel | null;
  /** The Int32 index of the core's cache descriptor in the kernel's memory (-1 without a kernel). */
  readonly descriptorI32Index: number;

  /**
   * @param concurrent false when one thread drives every hyperthread (the sim backend): the core lock
   *   is then skipped. The workers backend attaches with true.
   * @param seat the access kernel over the memory that holds `i32` (its `flushLines` flushes) and the
   *   core's cache descriptor, whose L1D words are written here; null without a kernel
   */
  constructor(
    i32: Int32Array,
    baseI32Index: number,
    geometry: L1dGeometry,
    concurrent = true,
    seat: KernelSeat | null = null,
  ) {
    this.concurrent = concurrent;
    const layout = l1dLayout(geometry);
    assertCoreBufferView(i32, baseI32Index, layout.sizeI32s);
    this.sets = geometry.sets;
    this.ways = geometry.ways;
    this.replacement = geometry.replacement;
    this.domainCount = geometry.domainCount;
    this.baseI32Index = baseI32Index;
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
    this.hintsI32Index = baseI32Index + layout.hintsI32Offset;
    this.flushKernel = seat === null ? null : seat.kernels.flushLines;
    this.descriptorI32Index = seat === null ? -1 : seat.descriptor.i32Index;
    if (seat !== null) {
      // Byte addresses in the kernel's memory of the section's parts, and the geometry.
      const words = seatWords(seat);
      const word = CacheDescriptorWord;
      words[word.l1d] = seatByteAddress(seat, baseI32Index);
      words[word.setMask] = this.setMask;
      words[word.pageMask] = this.pageMask;
      words[word.setBytes] = this.setI32s * Int32Array.BYTES_PER_ELEMENT;
      words[word.lines] = seatByteAddress(seat, this.linesI32Index);
      words[word.hints] = seatByteAddress(seat, this.hintsI32Index);
      words[word.setState] = seatByteAddress(seat, this.setStateI32Index);
      words[word.ways] = this.ways;
      words[word.plru] = this.isPlru ? 1 : 0;
    }
  }

  /** The set a line maps to. Non-mutating; tests use it to build conflicting streams. */
  setOf(pfn: number, lineInPage: number): number {
    return ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
  }

  access(pfn: number, lineInPage: number, domain: number): boolean {
    // The checks are a function of their own, so the hot path stays short when they are off.
    if (assertDebugEnabled) checkLineArguments('l1d', pfn, lineInPage, domain, this.domainCount);
    if (!this.concurrent) return this.accessHeld(pfn, lineInPage, domain);
    acquireCoreLock(this.i32, this.lockI32Index);
    const hit = this.accessHeld(pfn, lineInPage, domain);
    releaseCoreLock(this.i32, this.lockI32Index);
    return hit;
  }

  /**
   * `access` with the core lock held (or no lock needed: the sim). Apart from `access`, so that the
   * lock's Atomics calls are not compiled into the same function as the scan: on a replica of the
   * fill-buffer access, having them there (untaken) made it ~1.8x slower.
   */
  private accessHeld(pfn: number, lineInPage: number, domain: number): boolean {
    const i32 = this.i32;
    const set = ((pfn & this.pageMask) * linesPerPage + lineInPage) & this.setMask;
    const setI32Index = this.linesI32Index + set * this.setI32s;
    const setEndI32Index = setI32Index + this.setI32s;
    const owner = ownerOf(domain);
    const hintI32Index = this.hintsI32Index + set * hintBuckets + (Math.imul(pfn, 0x9e3779b1) >>> hintShift);
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

  flush(): number {
    if (!this.concurrent) return this.flushHeld();
    acquireCoreLock(this.i32, this.lockI32Index);
    const dropped = this.flushHeld();
    releaseCoreLock(this.i32, this.lockI32Index);
    return dropped;
  }

  /** `flush` with the core lock held, or none needed (apart from the lock's Atomics: see `accessHeld`). */
  private flushHeld(): number {
    const i32 = this.i32;
    const dropped = this.flushKernel !== null ? this.flushKernel(this.descriptorI32Index) : this.flushLines();
    checkAndClearCounts(
      i32,
      this.validLinesI32Index,
      this.countsI32Index,
      this.domainCount,
      dropped,
      'l1d',
      this.concurrent,
    );
    if (assertDebugEnabled) {
      const linesEndI32Index = this.linesI32Index + this.sets * this.setI32s;
      const left = countValidEntries(i32, this.linesI32Index, linesEndI32Index, lineWords, ownerWord);
      assertDebug(left === 0, 'l1d flush: a valid line past the first invalid way of its set');
    }
    // The PLRU bits (LRU never sets them) and the clock back to zero too, so replacement after a flush
    // does not depend on what was there before.
    if (this.isPlru) i32.fill(0, this.setStateI32Index, this.setStateI32Index + this.sets);
    i32[this.clockI32Index] = 0;
    return dropped;
  }

  /**
   * Zeroes every valid line; returns how many (the loop the access kernel's `flushLines` transcribes).
   * Valid lines are a prefix of each set's ways (see `accessHeld`) and an invalid line is all zeros, so
   * zeroing each set's prefix leaves the zero state of a fresh cache (lines and stamps) without reading
   * or writing the empty ways: a flush comes every few hundred steps under asi.
   */
  private flushLines(): number {
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
    assertDebug(
      Number.isInteger(domain) && domain >= 0 && domain < this.domainCount,
      'l1d count: domain out of range',
    );
    return Atomics.load(this.i32, this.countsI32Index + domain);
  }

  validLines(): number {
    return Atomics.load(this.i32, this.validLinesI32Index);
  }

  countsView(): CountsView {
    return {
      i32: this.i32,
      validLinesI32Index: this.validLinesI32Index,
      countsI32Index: this.countsI32Index,
      domainCount: this.domainCount,
    };
  }

  foreignLines(vmId: number): number {
    return foreignLinesFromCounts(this.i32, this.countsI32Index, this.domainCount, vmId);
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
    this.i32[lineI32Index + ownerWord] = newOwner;
    addWord(this.i32, this.countsI32Index + domainOfOwner(oldOwner), -1, this.concurrent);
    addWord(this.i32, this.countsI32Index + domainOfOwner(newOwner), 1, this.concurrent);
  }

  private fill(lineI32Index: number, pfn: number, lineInPage: number, owner: number): void {
    const i32 = this.i32;
    const oldOwner = i32[lineI32Index + ownerWord];
    if (oldOwner === ownerInvalid) {
      addWord(i32, this.validLinesI32Index, 1, this.concurrent);
    } else {
      const left = addWord(i32, this.countsI32Index + domainOfOwner(oldOwner), -1, this.concurrent) - 1;
      if (assertDebugEnabled) assertDebug(left >= 0, 'l1d: domain count went negative on eviction');
    }
    i32[lineI32Index + pfnWord] = pfn;
    i32[lineI32Index + lineInPageWord] = lineInPage;
    i32[lineI32Index + ownerWord] = owner;
    addWord(i32, this.countsI32Index + domainOfOwner(owner), 1, this.concurrent);
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
