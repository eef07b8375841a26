/**
 * Page-table entry bits, in the hardware formats (Intel SDM Vol. 3A, 4.5 "4-level paging", tables
 * 4-14 .. 4-20; Vol. 3C, 29.3.2 "EPT translation mechanism", tables 29-1 .. 29-6). An entry is 64 bits,
 * kept as two 32-bit words: `low` holds bits 0..31, `high` bits 32..63.
 */

/** x86-64 paging, low word. */
export const X86Bit = {
  present: 1 << 0,
  rw: 1 << 1,
  us: 1 << 2,
  pwt: 1 << 3,
  pcd: 1 << 4,
  accessed: 1 << 5,
  dirty: 1 << 6,
  /** Page size: a leaf in a PDPT (1 GiB) or PD (2 MiB) entry. */
  ps: 1 << 7,
  global: 1 << 8,
} as const;
/** XD/NX is bit 63: bit 31 of the high word. */
export const x86NxHigh = 1 << 31;

/** EPT entries, low word. */
export const EptBit = {
  read: 1 << 0,
  write: 1 << 1,
  exec: 1 << 2,
  /** Memory type in bits 3..5 of a leaf; 6 = write-back. */
  memTypeWriteBack: 6 << 3,
  ignorePat: 1 << 6,
  ps: 1 << 7,
  accessed: 1 << 8,
  dirty: 1 << 9,
} as const;

/** PFN field: bits 12..51 = low bits 12..31 (20 bits) + high bits 0..19 (20 bits). */
export const pfnLowMask = 0xfffff000;
export const pfnHighMask = 0x000fffff;

export type EntryFormat = 'x86' | 'ept';
export const formatCode: Record<EntryFormat, number> = { x86: 0, ept: 1 };

/** Mapping permissions in the API, independent of the entry format. */
export const MapFlag = {
  write: 1,
  user: 2,
  exec: 4,
  global: 8,
  uncached: 16,
} as const;

/** What a walk is for. A plain read is 0. */
export const Access = {
  read: 0,
  write: 1,
  user: 2,
  exec: 4,
} as const;

/** Negative walk results: why the walk faulted. */
export const Fault = {
  notPresent: -1,
  write: -2,
  user: -3,
  exec: -4,
} as const;

export type FaultReason = 'not-present' | 'write-protect' | 'user-supervisor' | 'no-execute';

export function faultReason(code: number): FaultReason {
  switch (code) {
    case Fault.notPresent:
      return 'not-present';
    case Fault.write:
      return 'write-protect';
    case Fault.user:
      return 'user-supervisor';
    default:
      return 'no-execute';
  }
}

export function entryPfn(low: number, high: number): number {
  return (low >>> 12) + (high & pfnHighMask) * 2 ** 20;
}

export function pfnLow(pfn: number): number {
  return ((pfn & 0xfffff) << 12) >>> 0;
}

export function pfnHigh(pfn: number): number {
  return Math.floor(pfn / 2 ** 20) & pfnHighMask;
}
