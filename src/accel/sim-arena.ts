import { assert } from '../assert.js';
import { type AccessKernels, instantiateAccessKernel } from './access-kernel.js';

/**
 * Where the sim backend's machines live: one shared WebAssembly memory per thread, carved into regions,
 * one machine buffer each, and one access kernel over it (access-kernel.ts). One memory, so that
 * the hyperthread's call into the kernel has one target however many machines a thread makes (the bench
 * makes four, the fuzzer one per machine config): docs/perf-log.md ("Where the speed machinery lives")
 * says what a varying target costs.
 *
 * A region is a machine's whole buffer (views with a byte offset), followed by each thread's kernel
 * descriptor (memory/sub-layouts.ts `kernelRegionLayout`); nothing in the model sees where it is. Regions are whole 64 KiB pages, zeroed when handed out, and go back to a free list when their
 * machine is disposed of (`Machine.dispose`), or else garbage-collected (a FinalizationRegistry). The
 * memory grows as needed, up to `simArenaBytesMax`; a machine that does not fit gets a SharedArrayBuffer
 * of its own and the reference path (cpu/access-path.ts: the same results, slower), as do machines
 * of the workers backend, whose threads share a buffer that the kernel, which takes no locks, must not
 * touch.
 */

/** A WebAssembly page. */
const wasmPageBytes = 65536;
/**
 * 512 MiB. Node reserves a shared memory's maximum up front as address space, but pages are memory once
 * touched, and the arena's use does not count as memory pressure: machines dropped without `dispose`
 * come back only when a full garbage collection happens to run (a loop of 600 runs that each made a
 * machine and dropped it grew an unbounded arena to 2 GiB). So the bound is the most a thread may hold;
 * the backends dispose of the machines they make, and a machine that does not fit gets a buffer of its
 * own. A default sim machine takes ~4.5 MiB, one the fuzzer draws ~1 MiB.
 */
export const simArenaBytesMax = 2 ** 29;
/** The memory's maximum in pages; access-kernel.wat's memory import is generated with it (kernel-constants.ts). */
export const simArenaPagesMax = simArenaBytesMax / wasmPageBytes;
const pagesMax = simArenaPagesMax;

export interface SimRegion {
  /** The arena's buffer (as large as the arena when the region was made); the region is inside it. */
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly byteLength: number;
  /** The access kernel over the arena's memory. */
  readonly kernels: AccessKernels;
  /** Its pages in the arena. */
  readonly range: HeldRange;
}

interface FreeRange {
  firstPage: number;
  pages: number;
}

/** A region's pages, how many of its holders are alive, and whether they went back to the arena. */
interface HeldRange extends FreeRange {
  holders: number;
  released: boolean;
}

interface Arena {
  memory: WebAssembly.Memory;
  kernels: AccessKernels;
  /** Free page ranges, by first page, none adjacent to another (they merge when freed). */
  free: FreeRange[];
  registry: FinalizationRegistry<HeldRange>;
  /** Every buffer the memory has had (a new one after each grow): `isSimArenaBuffer`. */
  buffers: WeakSet<SharedArrayBuffer>;
}

/** null until the first region; false when this thread cannot make a shared WebAssembly memory. */
let arena: Arena | null | false = null;

function openArena(): Arena | false {
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: 0, maximum: pagesMax, shared: true });
  } catch {
    // No address space for the reservation (a ulimit -v, a 32-bit host): machines get their own buffers.
    return false;
  }
  const free: FreeRange[] = [];
  // A holder collected: the region goes back when the last of them is.
  const registry = new FinalizationRegistry<HeldRange>((range) => {
    range.holders--;
    if (range.holders === 0) release(opened, range);
  });
  const kernels = instantiateAccessKernel(memory);

  const opened: Arena = { memory, kernels, free, registry, buffers: new WeakSet() };
  return opened;
}

/**
 * A zeroed region of `byteLength` bytes, or null when the arena cannot hold it (see the module comment).
 * Its owner then holds it (`holdSimRegion`) until the owner is collected.
 */
export function allocateSimRegion(byteLength: number): SimRegion | null {
  assert(Number.isSafeInteger(byteLength) && byteLength > 0, `region size ${byteLength}`);
  if (arena === null) arena = openArena();
  if (arena === false) return null;
  const pages = Math.ceil(byteLength / wasmPageBytes);
  const firstPage = take(arena, pages);
  if (firstPage < 0) return null;
  const buffer = arena.memory.buffer;
  arena.buffers.add(buffer);
  const byteOffset = firstPage * wasmPageBytes;
  new Uint8Array(buffer, byteOffset, pages * wasmPageBytes).fill(0);
  return {
    buffer,
    byteOffset,
    byteLength,
    kernels: arena.kernels,
    range: { firstPage, pages, holders: 0, released: false },
  };
}

/**
 * The region goes back to the arena once every one of `holders` is garbage-collected, if not before:
 * its machine and the machine's views, which its parts (TLBs, caches, page tables) keep without the
 * machine, so that a part kept alone keeps its words.
 */
export function holdSimRegion(region: SimRegion, holders: readonly object[]): void {
  assert(arena !== null && arena !== false, 'a region comes from the arena');
  assert(region.range.holders === 0 && holders.length > 0, 'a region is held once, by at least one holder');
  region.range.holders = holders.length;
  for (const holder of holders) arena.registry.register(holder, region.range, region.range);
}

/**
 * The region goes back to the arena now (its machine is disposed of): nothing may use its views after.
 * A second release of the same region does nothing.
 */
export function releaseSimRegion(region: SimRegion): void {
  assert(arena !== null && arena !== false, 'a region comes from the arena');
  arena.registry.unregister(region.range);
  release(arena, region.range);
}

/** Whether `buffer` is a sim arena's (a machine in it is not alone in it: `attachMachine` refuses it). */
export function isSimArenaBuffer(buffer: SharedArrayBuffer): boolean {
  return arena !== null && arena !== false && arena.buffers.has(buffer);
}

/** First fit from the free list, else the memory grows; -1 when it cannot. */
function take(from: Arena, pages: number): number {
  for (let i = 0; i < from.free.length; i++) {
    const range = from.free[i];
    if (range.pages < pages) continue;
    const firstPage = range.firstPage;
    range.firstPage += pages;
    range.pages -= pages;
    if (range.pages === 0) from.free.splice(i, 1);
    return firstPage;
  }
  // Grow by what is missing past a free range at the end, at least doubling (few grows, few buffers).
  const sizePages = from.memory.buffer.byteLength / wasmPageBytes;
  const last = from.free.at(-1);
  const tailFree = last !== undefined && last.firstPage + last.pages === sizePages ? last.pages : 0;
  const missing = pages - tailFree;
  const growPages = Math.min(Math.max(missing, sizePages), pagesMax - sizePages);
  if (growPages < missing) return -1;
  try {
    from.memory.grow(growPages);
  } catch {
    // No memory for it now (RangeError): the machine gets a buffer of its own.
    return -1;
  }
  if (tailFree > 0) from.free.pop();
  const firstPage = sizePages - tailFree;
  if (growPages > missing) from.free.push({ firstPage: firstPage + pages, pages: growPages - missing });
  return firstPage;
}

function release(to: Arena, range: HeldRange): void {
  if (range.released) return;
  range.released = true;
  const free = to.free;
  let at = 0;
  while (at < free.length && free[at].firstPage < range.firstPage) at++;
  assert(
    (at === 0 || free[at - 1].firstPage + free[at - 1].pages <= range.firstPage) &&
      (at === free.length || range.firstPage + range.pages <= free[at].firstPage),
    'a freed region overlaps a free one',
  );
  free.splice(at, 0, { firstPage: range.firstPage, pages: range.pages });
  // Merge with the next, then with the previous.
  if (at + 1 < free.length && free[at].firstPage + free[at].pages === free[at + 1].firstPage) {
    free[at].pages += free[at + 1].pages;
    free.splice(at + 1, 1);
  }
  if (at > 0 && free[at - 1].firstPage + free[at - 1].pages === free[at].firstPage) {
    free[at - 1].pages += free[at].pages;
    free.splice(at, 1);
  }
}

/** The kernels over this thread's arena (every sim machine's of the thread), or null without one (for tests). */
export function simArenaKernels(): AccessKernels | null {
  if (arena === null) arena = openArena();
  return arena === false ? null : arena.kernels;
}

/** The arena's pages in use and in all (for tests). */
export function simArenaPages(): { used: number; total: number } {
  if (arena === null || arena === false) return { used: 0, total: 0 };
  const total = arena.memory.buffer.byteLength / wasmPageBytes;
  const free = arena.free.reduce((sum, range) => sum + range.pages, 0);
  return { used: total - free, total };
}
