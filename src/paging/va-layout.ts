import { assert } from '../assert.js';
import { cacheLineBytes, pageBytes, vaLimit } from '../constants.js';

/**
 * Virtual addresses are kept as 48-bit numbers (the canonical sign extension dropped), because a
 * canonical kernel address such as 0xffff888000000000 does not fit a JS number exactly. `formatVa`
 * puts the sign extension back for display.
 *
 * Windows follow Linux x86-64 with 4-level paging (Documentation/arch/x86/x86_64/mm.rst).
 */
const kernelHalf = 2 ** 47;

/** 0xffff888000000000: the direct map of all physical memory (page_offset_base). */
export const directMapVa = 0x888000000000;
/** 0xffffc90000000000: vmalloc/ioremap space (struct kvm is vmalloc'ed). */
export const vmallocVa = 0xc90000000000;
/** 0xfffffe0000000000: cpu_entry_area. */
export const entryAreaVa = 0xfe0000000000;
/** 0xffffffff81000000: kernel text (__START_KERNEL). */
export const kernelTextVa = 0xffff81000000;
/** 0xffffffffa0000000: module mapping space (kvm.ko, kvm-intel.ko). */
export const modulesVa = 0xffffa0000000;
/** Where the VMM maps guest memory in its own process (a typical mmap address). */
export const vmmGuestMemoryVa = 0x7f0000000000;
/** The VMM's heap (a typical brk start for a PIE binary). */
export const vmmHeapVa = 0x555555554000;

assert(
  directMapVa >= kernelHalf && vmallocVa > directMapVa && entryAreaVa > vmallocVa,
  'kernel windows ordered',
);
assert(kernelTextVa < modulesVa && modulesVa < vaLimit, 'text below modules, inside 48 bits');
assert(vmmGuestMemoryVa < kernelHalf && vmmHeapVa < vmmGuestMemoryVa, 'user windows in the lower half');

/** Canonical hex form: 0xffff888000001000 for a kernel address, 0x7f0000000000 for a user one. */
export function formatVa(va: number): string {
  assert(Number.isInteger(va) && va >= 0 && va < vaLimit, `VA ${va} outside 48 bits`);
  if (va < kernelHalf) return `0x${va.toString(16)}`;
  return `0xffff${va.toString(16).padStart(12, '0')}`;
}

/** Parses a canonical or 48-bit hex VA. */
export function parseVa(text: string): number {
  const value = BigInt(text);
  const masked = Number(value & ((1n << 48n) - 1n));
  return masked;
}

export function isKernelVa(va: number): boolean {
  return va >= kernelHalf;
}

/**
 * `value % divisor` for an integer 0 <= value < 2^53 and a power-of-two divisor, without `%` (on a
 * number past 2^31, every kernel VA, `%` is a floating-point remainder: docs/perf-log.md). Exact: the
 * division by a power of two, the floor, the product and the difference all are.
 */
export function modPowerOfTwo(value: number, divisor: number): number {
  return value - Math.floor(value / divisor) * divisor;
}

/** The 64-byte line of its page that `va` falls in (0..63). */
export function lineInPageOf(va: number): number {
  return Math.floor(modPowerOfTwo(va, pageBytes) / cacheLineBytes);
}
