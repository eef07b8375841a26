import { assert } from './assert.js';

/**
 * Limits and architectural sizes, in one place (STYLE.md). Relationships between them are asserted
 * at load, below.
 */

/** x86-64 base page: 4 KiB. */
export const pageBytes = 4096;
export const pageShift = 12;
/** 2 MiB and 1 GiB large pages (PS bit in a PD or PDPT entry). */
export const largePage2MBytes = 2 * 1024 * 1024;
export const largePage1GBytes = 1024 * 1024 * 1024;
/** 4-level paging: 512 eight-byte entries per table page, 9 VA bits per level, 48-bit VA. */
export const pageTableEntries = 512;
export const pageTableLevels = 4;
export const vaBits = 48;
export const vaLimit = 2 ** vaBits;
/** One table entry is 8 bytes, stored as two 32-bit words (low, high) so Atomics can update A/D bits. */
export const pageTableEntryI32s = 2;
export const pageTableI32s = pageTableEntries * pageTableEntryI32s;
/** Cache lines are 64 bytes on every x86 core we model. */
export const cacheLineBytes = 64;
export const linesPerPage = pageBytes / cacheLineBytes;
/** Sections of the machine buffer start on 64-byte boundaries so cores do not false-share. */
export const sectionAlignBytes = 64;
export const sectionAlignI32s = sectionAlignBytes / 4;

/** Machine limits. smt 1..4 per DESIGN.md; 64 cores x 2 threads is a plain sim config. */
export const smtMax = 4;
export const coresMax = 256;
export const vmsMax = 64;
export const vcpusPerVmMax = 256;
/** PFNs stay below 2^31 so a frame number fits an Int32 word (8 TiB of 4 KiB frames: far beyond need). */
export const framesMax = 2 ** 31 - 1;
/**
 * Physical memory of a machine, in MiB: 512 GiB. Every 4 KiB frame takes 16 bytes of the machine buffer
 * (owner, region, two RMP words), so 512 GiB is 2 GiB of buffer, half of what a buffer may hold
 * (machineBufferBytesMax); a machine this size builds in ~5 s with ~1.1 GB resident (measured).
 */
export const memoryMiBMax = 2 ** 19;
/** Page-table pool pages: 2^18 pages is 1 GiB of tables, enough to map 512 GiB with 4 KiB pages. */
export const pageTablePoolPagesMax = 2 ** 18;
/** TLB entries per hyperthread: 4096 is above any real L1 + L2 TLB (Ice Lake STLB: 2048). */
export const tlbEntriesMax = 4096;
/**
 * The machine buffer: indices into it are 32-bit words addressed through typed arrays, and a
 * SharedArrayBuffer past 4 GiB is not allocatable on every Node build.
 */
export const machineBufferBytesMax = 2 ** 32;
/** The config is stored in the buffer as UTF-8 JSON so `attachMachine(buffer)` needs nothing else. */
export const configBytesMax = 64 * 1024;

assert(pageBytes === 1 << pageShift, 'pageBytes must be 2^pageShift');
assert(
  pageTableEntries ** pageTableLevels * pageBytes === vaLimit,
  '4 levels of 512 entries must cover 48 bits',
);
assert(largePage2MBytes === pageBytes * pageTableEntries, '2 MiB page = one PT worth of 4 KiB pages');
assert(largePage1GBytes === largePage2MBytes * pageTableEntries, '1 GiB page = one PD worth of 2 MiB pages');
assert(linesPerPage === 64, 'a 4 KiB page holds 64 cache lines');
assert(
  memoryMiBMax * ((1024 * 1024) / pageBytes) * 16 + pageTablePoolPagesMax * pageBytes < machineBufferBytesMax,
  'the largest memory and page-table pool fit one machine buffer',
);
assert(smtMax * 4 <= 16, 'core-state word packs a 4-bit mode per sibling in 16 bits');
