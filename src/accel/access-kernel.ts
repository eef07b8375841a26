import { assert } from '../assert.js';
import { accessKernelWasmBase64 } from './access-kernel-wasm.js';

/**
 * The access kernel (access-kernel.wat): one cache-line access of a core through its L1D and, on a miss,
 * its fill buffers, in WebAssembly over a shared memory that holds the machine. `CoreL1d.accessHeld` and
 * `CoreFillBuffers.accessHeld` are the reference it transcribes (test/accel/access-kernel.test.ts runs
 * both on the same streams and compares every word); it does their reads and writes, so a run gives the
 * same results and trace hash with it or without it.
 *
 * It is the sim's speed machinery, with the engine tuning (engine-tuning.ts) and the bundle
 * (scripts/build.mjs): why it exists, and why one memory and one kernel serve every sim machine of a
 * thread (sim-arena.ts), is in docs/perf-log.md ("Where the speed machinery lives").
 *
 * Arguments: the Int32 index in the memory of the core's cache descriptor (`CacheDescriptorWord`, written
 * by kernel-descriptor.ts), then the line (frame, line in the page, owner domain of the
 * frame). Returns 1 for an L1D hit, 0 for a miss (the fill buffers took the line), and -1, having
 * changed nothing, when the LRU clock must be renumbered first: the caller then takes the reference path
 * (once per ~2^26 accesses of a core).
 */
export type AccessKernel = (
  cacheDescriptorI32Index: number,
  pfn: number,
  lineInPage: number,
  domain: number,
) => number;

/**
 * The kernel's TLB hit (`translate` in access-kernel.wat; the reference is `Tlb.translatePage`). Arguments:
 * the Int32 index in the memory of the thread's descriptor (`KernelDescriptorWord`, written by
 * kernel-descriptor.ts), then the address space, the page (vpnLow, vpnHigh: page = vpnHigh x 2^30 + vpnLow) and the
 * Access bits. Returns the frame of a hit (the hit counted), or -1, having changed nothing, for anything
 * else: the caller then takes the reference path, which does it all (a walk, a shootdown, a permission
 * miss).
 */
export type TranslateKernel = (
  descriptorI32Index: number,
  space: number,
  vpnLow: number,
  vpnHigh: number,
  access: number,
) => number;

/**
 * The line loop of an L1D flush (`flushLines`; the reference is `CoreL1d.flushLines`): zeroes each set's
 * valid lines and returns how many. Argument: the Int32 index in the memory of the core's cache
 * descriptor (its L1D words place the lines and give the geometry). The caller checks and clears the
 * counts.
 */
export type FlushLinesKernel = (cacheDescriptorI32Index: number) => number;

/**
 * The entry work of a fill-buffer flush (`flushFillBuffers`; the reference is `CoreFillBuffers.flush`):
 * counts the valid entries and sums the filter's buckets, zeroes entries and filter, and restarts the ring
 * at slot 0. Argument: the Int32 index in the memory of the core's cache descriptor (its fill-buffer
 * words). Returns the valid entries when the buckets add up to them, else -1 - that count; the caller
 * checks and clears the counts.
 */
export type FlushFillBuffersKernel = (cacheDescriptorI32Index: number) => number;

/**
 * A guest's read of one line of a page through its thread's TLB and its core's caches (`guestAccess` in
 * access-kernel.wat: `translate`, the frame's owner, then `access`, in one call). Arguments: the Int32
 * index in the memory of the thread's descriptor (kernel-descriptor.ts `writeThreadDescriptor`),
 * the address space, the page (below 2^30) and the line in it. Returns 1 for an L1D hit, 0 for a miss;
 * -1, having changed nothing, when the translation is not a plain TLB hit (the caller then does it all
 * through `Tlb.translatePage` and `access`); -2 - pfn when the page translated to frame pfn
 * (the hit counted) and the access was handed back (the caller then makes it through `CoreCaches.access`).
 */
export type GuestAccessKernel = (
  descriptorI32Index: number,
  space: number,
  vpn: number,
  lineInPage: number,
) => number;

/**
 * A guest stretch's reads in one call (`guestReads` in access-kernel.wat; the reference is
 * cpu/access-path.ts `guestReadsLoop`): up to `count` reads, each drawing its page and line from the sim
 * PRNG's batch (`Prng.random`: the batch at Float64 index `drawsF64Index` from `cursor`, remade by `sfc32`
 * from the state at Int32 index `stateI32Index` when used up) and reading it as `GuestAccessKernel`
 * does. Arguments: the thread's descriptor, the address space, the working set (`firstPage`, `pages`),
 * `count`, the cycles of an L1D hit and of a miss, the cycles so far (the sum goes on in the loop's
 * order), the PRNG's state and batch, the cursor, and the Int32 index of the stretch result
 * (`StretchResultWord`). Returns the cycles; leaves there the cursor and the reads made, fewer than
 * `count` when it stopped before a read it cannot finish (not a plain TLB hit, or an LRU clock to
 * renumber), drawing nothing for it.
 */
export type GuestReadsKernel = (
  descriptorI32Index: number,
  space: number,
  firstPage: number,
  pages: number,
  count: number,
  hitCycles: number,
  missCycles: number,
  cycles: number,
  stateI32Index: number,
  drawsF64Index: number,
  cursor: number,
  resultI32Index: number,
) => number;

/**
 * A handler's access to the line at `va` through its thread's TLB and its core's caches (`lineAccess` in
 * access-kernel.wat: `translate` of the address, the frame's owner, then `access`). Arguments: the
 * thread's descriptor (as `GuestAccessKernel`'s), the address space, the address (48 bits, a double) and
 * the Access bits. Returns pfn x 2 + 1 for an L1D hit, pfn x 2 for a miss; -1, having changed nothing,
 * when the translation is not a plain TLB hit (the caller then does it all through `Tlb.translate` and
 * `access`); -2 - pfn as `GuestAccessKernel` does.
 */
export type LineAccessKernel = (
  descriptorI32Index: number,
  space: number,
  va: number,
  access: number,
) => number;

/**
 * `count` outputs of the sfc32 generator whose state (a, b, c, d) is at Int32 index `stateI32Index`, as
 * doubles u32 x 2^-32 from Float64 index `outF64Index`, the state written back (`sfc32` in
 * access-kernel.wat; the reference is backend/sim/prng.ts's JavaScript loop, the same stream). `count` is
 * a multiple of 4 (the kernel makes four a turn).
 */
export type Sfc32Kernel = (stateI32Index: number, outF64Index: number, count: number) => void;

/** Zeroes `count` Int32 words of the memory from Int32 index `i32Index` (`zeroWords` in access-kernel.wat). */
export type ZeroWordsKernel = (i32Index: number, count: number) => void;

/** The kernel's exports over one memory. */
export interface AccessKernels {
  access: AccessKernel;
  translate: TranslateKernel;
  guestAccess: GuestAccessKernel;
  guestReads: GuestReadsKernel;
  lineAccess: LineAccessKernel;
  flushLines: FlushLinesKernel;
  flushFillBuffers: FlushFillBuffersKernel;
  sfc32: Sfc32Kernel;
  zeroWords: ZeroWordsKernel;
}

/** The kernel's WebAssembly bytes (access-kernel-wasm.ts holds them as base64, generated from the .wat). */
export function accessKernelBytes(): Uint8Array {
  return Uint8Array.from(Buffer.from(accessKernelWasmBase64, 'base64'));
}

/** The kernel's exports, each checked to be a function. */
const kernelExports = [
  'access',
  'translate',
  'guestAccess',
  'guestReads',
  'lineAccess',
  'flushLines',
  'flushFillBuffers',
  'sfc32',
  'zeroWords',
] as const satisfies readonly (keyof AccessKernels)[];

/** An instance of the access kernel over `memory` (a thread's own instance; the memory may be shared). */
export function instantiateAccessKernel(memory: WebAssembly.Memory): AccessKernels {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(accessKernelBytes()), { env: { memory } });
  const exports = instance.exports;
  for (const name of kernelExports)
    assert(typeof exports[name] === 'function', `the access kernel exports ${name}`);
  return Object.fromEntries(kernelExports.map((name) => [name, exports[name]])) as unknown as AccessKernels;
}
