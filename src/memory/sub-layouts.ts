import { assert } from '../assert.js';
import { linesPerPage, sectionAlignI32s } from '../constants.js';

/**
 * The sub-layouts of the machine buffer, declared once (issue 21 item 3): a core's L1D and fill
 * buffers, the RMP, and the accelerated path's region after a sim machine (its descriptors and the PRNG
 * area). Each region starts where the previous one ended, as layout.ts's sections do; every other
 * module (the model classes in cache/ and coco/, the access kernel in accel/, whose WebAssembly offsets
 * are generated from these words at build time) reads them from here.
 *
 * Words are Int32 words from the base index of their section or record.
 */

function alignUp(i32s: number): number {
  return Math.ceil(i32s / sectionAlignI32s) * sectionAlignI32s;
}

function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && (value & (value - 1)) === 0;
}

/** The host-side domains (free, public, kvm, host) always exist; each VM adds two. */
export const hostDomainCount = 4;

/** Domain codes are 0 free, 1 public, 2 kvm, 3 host, then two per VM: the count is 4 + 2 x vmCount. */
export function assertDomainCount(domainCount: number): void {
  assert(
    Number.isInteger(domainCount) &&
      domainCount >= hostDomainCount &&
      (domainCount - hostDomainCount) % 2 === 0,
    `domainCount must be 4 + 2 x vmCount, got ${domainCount}`,
  );
}

// ---- a core's L1D ---------------------------------------------------------------------------------------
//
//   header    lock, valid-line total, LRU clock                      l1dHeaderI32s
//   counts    valid lines per domain                                 domainCount
//   setState  per set: the tree-PLRU bits (unused under LRU)         sets
//   lines     per set, per way: pfn, lineInPage, owner, stamp        sets x ways x l1dLineI32s
//   hints     per set, way hints: way + 1 of a line seen there, or 0   sets x l1dHintSlots
//   padding   up to a multiple of 16 words (64 bytes)

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
 * word (the machine config caps l1d.ways at 32 for the same reason), and a way fits the 5 bits of an LRU
 * key (stamp x 32 + way).
 */
export const l1dWaysMax = 32;
/** Bits of a way number in an LRU key (stamp << l1dWayBits | way). */
export const l1dWayBits = 5;
/**
 * Real L1Ds have 64 sets; 4096 sets x 32 ways (8 MiB of lines) is far past any, and bounds a core's
 * section at 3 MiB (2 MiB of lines, 1 MiB of way hints).
 */
export const l1dSetsMax = 4096;
/**
 * When the clock would reach this, stamps are renumbered by rank (once per ~2^26 accesses of a core; a
 * pass over the sets). 2^26 so that an LRU key, stamp x 32 + way, fits an Int32.
 */
export const l1dStampMax = 2 ** 26 - 1;
/**
 * Way-hint slots per set (a power of two). A set holds one line of each of up to `ways` frames (64 sets:
 * a page's lines fall in different sets), and a core's two siblings bring two vCPUs' working sets: with
 * 16 slots, frames of one set shared a slot often enough that one hit in six went to the scan. 64 slots:
 * 3% less work per sim step (docs/perf-log.md), same results.
 */
export const l1dHintSlots = 64;
/** The multiplier of the frame hashes (way hints, fill-buffer filter): 2^32 / golden ratio. */
export const frameHashMultiplier = 0x9e3779b1;

assert(2 ** l1dWayBits === l1dWaysMax, 'a way number fits the LRU key');
assert((l1dStampMax << l1dWayBits) + l1dWaysMax - 1 < 2 ** 31, 'an LRU key fits an Int32');
assert(isPowerOfTwo(l1dHintSlots), 'way-hint slots are a power of two');

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
  const sizeI32s = alignUp(endI32Offset);
  assert(sizeI32s % sectionAlignI32s === 0 && sizeI32s >= endI32Offset, 'l1d section padding');
  return { countsI32Offset, setStateI32Offset, linesI32Offset, hintsI32Offset, sizeI32s };
}

/** Int32 words of one core's L1D section, a multiple of 16 (64 bytes). */
export function l1dI32s(geometry: L1dGeometry): number {
  return l1dLayout(geometry).sizeI32s;
}

/**
 * The page mask of a set index: set = ((pfn & pageMask) x 64 + lineInPage) & (sets - 1). pfn x 64 may
 * pass 2^31, so the line address is never masked: only pfn mod (sets / 64) matters (nothing when
 * sets <= 64), and pfn itself is at most framesMax = 2^31 - 1, so `pfn & pageMask` is exact.
 */
export function l1dPageMask(sets: number): number {
  return Math.max(1, sets / linesPerPage) - 1;
}

// ---- a core's fill buffers ------------------------------------------------------------------------------
//
//   header   lock, valid-line total, next slot (the oldest once the ring is full)   fillBufferHeaderI32s
//   counts   valid lines per domain                                               domainCount
//   entries  per slot: pfn, lineInPage, owner                                     entries x fillBufferEntryI32s
//   filter   per bucket: valid entries whose line hashes there                    fillBufferFilterBuckets
//   padding  up to a multiple of 16 words (64 bytes); no words at all with 0 entries

/** Header words. The lock and the valid-line total sit where the L1D's do (core-buffer.ts reads both). */
export const fillBufferLockI32 = 0;
export const fillBufferValidLinesI32 = fillBufferLockI32 + 1;
/** The slot the next miss fills: slots fill in order from 0 after a flush, so it is also the oldest line. */
export const fillBufferNextSlotI32 = fillBufferValidLinesI32 + 1;
export const fillBufferHeaderI32s = fillBufferNextSlotI32 + 1;

/** Words of one entry. */
export const fillBufferEntryPfnI32 = 0;
export const fillBufferEntryLineInPageI32 = fillBufferEntryPfnI32 + 1;
/** `domain + 1`, 0 when the entry is invalid. */
export const fillBufferEntryOwnerI32 = fillBufferEntryLineInPageI32 + 1;
export const fillBufferEntryI32s = fillBufferEntryOwnerI32 + 1;

/** Buckets of the filter: a power of two, at least twice the most entries (32), so few lines share one. */
export const fillBufferFilterBuckets = 64;
/** The machine config caps fillBufferEntries at 32 (Skylake has 10, Ice Lake 16); the scan per access is linear. */
export const fillBufferEntriesMax = 32;

assert(
  isPowerOfTwo(fillBufferFilterBuckets) && fillBufferFilterBuckets >= 2 * fillBufferEntriesMax,
  'fill-buffer filter buckets',
);
assert(
  l1dLockI32 === fillBufferLockI32 && l1dValidLinesI32 === fillBufferValidLinesI32,
  'the core buffers share their first header words',
);

/** Offsets of a core's fill-buffer regions from its base index, and the padded size (0 when disabled). */
export interface FillBufferLayout {
  countsI32Offset: number;
  entriesI32Offset: number;
  filterI32Offset: number;
  sizeI32s: number;
}

export function fillBufferLayout(entries: number, domainCount: number): FillBufferLayout {
  assert(
    Number.isInteger(entries) && entries >= 0 && entries <= fillBufferEntriesMax,
    `fill buffer entries must be 0..${fillBufferEntriesMax}, got ${entries}`,
  );
  assertDomainCount(domainCount);
  const countsI32Offset = fillBufferHeaderI32s;
  const entriesI32Offset = countsI32Offset + domainCount;
  const filterI32Offset = entriesI32Offset + entries * fillBufferEntryI32s;
  const endI32Offset = filterI32Offset + fillBufferFilterBuckets;
  const sizeI32s = entries === 0 ? 0 : alignUp(endI32Offset);
  assert(
    sizeI32s % sectionAlignI32s === 0 && (entries === 0 || sizeI32s >= endI32Offset),
    'fill buffer padding',
  );
  return { countsI32Offset, entriesI32Offset, filterI32Offset, sizeI32s };
}

/** Int32 words of one core's fill-buffer section: a multiple of 16 (64 bytes), 0 when `entries` is 0. */
export function fillBufferI32s(entries: number, domainCount: number): number {
  return fillBufferLayout(entries, domainCount).sizeI32s;
}

// ---- the RMP ----------------------------------------------------------------------------------------------

/** Int32 words per RMP entry: flags+ASID, then the guest frame number (coco/rmp.ts). */
export const rmpEntryI32s = 2;

/** Int32 words the RMP needs for `frameCount` frames (for the machine buffer layout). */
export function rmpI32s(frameCount: number): number {
  assert(Number.isSafeInteger(frameCount) && frameCount > 0, `rmpI32s: bad frameCount ${frameCount}`);
  return frameCount * rmpEntryI32s;
}

// ---- today's ASI's branch predictor (linux-asi/predictor.ts): one record per core ---------------------
//
//   entries       one word per predictor entry (predictor.ts encodes domain, trainer, threads it may steer)
//   STIBP         one word per hyperthread of the core (0 or 1)
//   return stack  one word per hyperthread: the bit mask of domains whose return addresses it holds
//
// In the buffer (not beside it) so that every view of the machine, a worker's included, sees one predictor
// per core, as siblings share one (spectre.rst).

/** Entries per core. Small on purpose: the model tracks who trained, not prediction accuracy. */
export const predictorEntriesPerCore = 16;

/** Words of one core's predictor record: its entries, then STIBP and return-stack words per hyperthread. */
export function predictorI32s(entryCount: number, threadsPerCore: number): number {
  return entryCount + 2 * threadsPerCore;
}

/** Words between two cores' predictor records (padded to 64 bytes so cores do not false-share). */
export function predictorStrideI32s(threadsPerCore: number): number {
  return alignUp(predictorI32s(predictorEntriesPerCore, threadsPerCore));
}

// ---- the accelerated path's region (accel/): after a sim machine in its arena -----------------------------
//
//   machine            the machine buffer (layout.ts)                        layout.totalI32s
//   thread descriptors per hyperthread: KernelDescriptorWord                   threads x descriptorI32s
//   cache descriptors  per core: CacheDescriptorWord                          cores x descriptorI32s
//   PRNG state         the sim PRNG's 4 sfc32 words, padded                   descriptorI32s
//   PRNG draws         sfc32AreaDraws doubles                                 sfc32AreaDraws x 2
//   stretch results    where the kernel's guestReads stopped: StretchResultWord descriptorI32s

/**
 * The words of a core's cache descriptor (the kernel's `access` and flushes take it): byte addresses in
 * the kernel's memory of the core's L1D and fill-buffer parts, and the geometry the kernel would
 * otherwise derive at every access.
 */
export const CacheDescriptorWord = {
  l1d: 0,
  setMask: 1,
  pageMask: 2,
  setBytes: 3,
  lines: 4,
  hints: 5,
  setState: 6,
  ways: 7,
  plru: 8,
  fillBuffers: 9,
  fillBufferEntries: 10,
  fillBufferFirst: 11,
  fillBufferFilter: 12,
} as const;

/**
 * The words of a thread's descriptor (the kernel's `translate`, `guestAccess` and `lineAccess` take it):
 * where its TLB's entries, generations and hit counter are and the TLB's geometry, where the frame owners
 * are, and its core's cache descriptor. Indices are Int32 indices in the kernel's memory.
 */
export const KernelDescriptorWord = {
  tlbEntries: 0,
  tlbSetMask: 1,
  tlbWays: 2,
  seenGenerations: 3,
  generation0: 4,
  generationStride: 5,
  tlbHits: 6,
  frameOwners: 7,
  cacheDescriptor: 8,
} as const;

/** Int32 words of a descriptor, a thread's or a core's cache's (at most 13 used, padded to 64 bytes). */
export const descriptorI32s = sectionAlignI32s;
assert(
  Object.keys(CacheDescriptorWord).length <= descriptorI32s &&
    Object.keys(KernelDescriptorWord).length <= descriptorI32s,
  'a descriptor holds its words',
);

/** The draws an sfc32 area holds: the sim PRNG's batch (backend/sim/prng.ts), four a turn of the kernel. */
export const sfc32AreaDraws = 64;
/** sfc32's state words: a, b, c, d. */
export const sfc32StateI32s = 4;
assert(sfc32AreaDraws % 4 === 0, 'sfc32 makes four draws a turn');

/**
 * The words the kernel's `guestReads` (a guest stretch's accesses in one call) leaves beside the cycles it
 * returns: the PRNG batch's cursor where its draws stopped, and how many accesses it made.
 */
export const StretchResultWord = {
  cursor: 0,
  reads: 1,
} as const;

/** Where the accelerated path's parts begin, in Int32 words from the region's start (each 64-byte aligned). */
export interface KernelRegionLayout {
  threadDescriptorsI32: number;
  cacheDescriptorsI32: number;
  prngStateI32: number;
  prngDrawsI32: number;
  stretchResultI32: number;
  endI32: number;
}

/** The region of a sim machine of `machineI32s` words, `threads` hyperthreads and `cores` cores. */
export function kernelRegionLayout(machineI32s: number, threads: number, cores: number): KernelRegionLayout {
  assert(machineI32s % sectionAlignI32s === 0, 'the machine ends 64-byte aligned');
  const threadDescriptorsI32 = machineI32s;
  const cacheDescriptorsI32 = threadDescriptorsI32 + threads * descriptorI32s;
  const prngStateI32 = cacheDescriptorsI32 + cores * descriptorI32s;
  const prngDrawsI32 = prngStateI32 + descriptorI32s;
  const stretchResultI32 = prngDrawsI32 + sfc32AreaDraws * 2;
  const endI32 = stretchResultI32 + descriptorI32s;
  assert(prngDrawsI32 % 2 === 0, 'the PRNG draws are 8-byte aligned');
  return { threadDescriptorsI32, cacheDescriptorsI32, prngStateI32, prngDrawsI32, stretchResultI32, endI32 };
}
