import { assert } from '../assert.js';
import type { AccessKernels } from './access-kernel.js';

/**
 * The access kernel's descriptors (access-kernel.wat reads them): a core's cache descriptor and a
 * thread's, words in the kernel's memory written once by the classes whose parts they place. A module of
 * its own, importing no cache module at run time, so that `CoreL1d`, `CoreFillBuffers` and `Tlb` can write their words
 * without importing access-kernel.ts, which imports their layouts (access-kernel.ts asserts the word
 * numbers are the kernel's and re-exports these).
 */

/**
 * The words of a core's cache descriptor, `access`'s first argument (access-kernel.wat lists them): byte
 * addresses in the kernel's memory of the core's L1D and fill-buffer parts, and the geometry the kernel
 * would otherwise derive at every access.
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
/** Int32 words of a descriptor, a thread's or a core's cache's (at most 13 used, padded to 64 bytes). */
export const descriptorI32s = 16;

/**
 * The words of a thread's descriptor, the first argument of `translate`, `guestAccess` and `lineAccess`
 * (access-kernel.wat lists them): where its TLB's entries, generations and hit counter are and the TLB's
 * geometry (written by `Tlb`), where the frame owners are, and its core's cache descriptor.
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

/** A descriptor in the kernel's memory: a view of its words, and the Int32 index the kernel is given. */
export interface DescriptorView {
  words: Int32Array;
  i32Index: number;
}

/**
 * Where a core's caches meet the access kernel, one per core: the kernels over the memory that holds the
 * caches' views, where index 0 of those views is in the memory (Int32 words), and the core's cache
 * descriptor. `CoreL1d` and `CoreFillBuffers` each write their own words of the descriptor (l1d..plru,
 * fillBuffers..fillBufferFilter), as `Tlb` writes its words of a thread's; their flush kernels and
 * `CoreCaches`' access kernel read them.
 */
export interface KernelSeat {
  kernels: AccessKernels;
  memoryI32Offset: number;
  descriptor: DescriptorView;
}

/** The words of a seat's descriptor, for a class to write (a whole descriptor: every word it may use). */
export function seatWords(seat: KernelSeat): Int32Array {
  assert(seat.descriptor.words.length >= descriptorI32s, 'a kernel seat needs a whole descriptor');
  return seat.descriptor.words;
}

/** The byte address in the kernel's memory of Int32 index `i32Index` of the seat's views. */
export function seatByteAddress(seat: KernelSeat, i32Index: number): number {
  return (seat.memoryI32Offset + i32Index) * Int32Array.BYTES_PER_ELEMENT;
}
