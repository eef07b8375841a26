import type { CoreCaches } from '../cache/core-caches.js';
import { linesPerPage } from '../constants.js';
import type { Machine } from '../machine.js';
import type { FrameTable } from '../memory/frames.js';
import type { Layout } from '../memory/layout.js';
import { Access } from '../paging/entry-format.js';
import type { Tlb } from '../paging/tlb.js';
import { lineInPageOf } from '../paging/va-layout.js';
import { guestLineOf } from './guest-workload.js';

/**
 * The hot memory path of a machine, behind one interface (DESIGN.md "The access path"): a guest's read, a
 * handler's line access (each a TLB translation, the frame's owner, then the core's L1D and, on a miss,
 * its fill buffers), the core flushes, and the place of the sim PRNG's batches. A backend picks one
 * implementation and hands it to `createMachine` (docs/backends.md):
 *
 * - `referenceAccess` (below): the model classes in plain TypeScript (`Tlb`, `CoreL1d`,
 *   `CoreFillBuffers`), each core buffer under its core lock. The workers backend's path, and the
 *   reference the other is tested against.
 * - `acceleratedAccess` (accel/): a WebAssembly kernel over the same words, for a machine one thread
 *   drives (the sim's). It takes no locks.
 *
 * Both make the same reads and writes, so a run's results and trace hash do not depend on the path
 * (the differential tests in test/accel/ compare every word).
 */
export interface ThreadAccess {
  /**
   * A guest's read of line `line` of guest page `page` (below 2^30) in address space `space`: 1 for an
   * L1D hit, 0 for a miss, -1 when the page is not mapped (nothing was accessed).
   */
  guestRead(space: number, page: number, line: number): number;
  /**
   * A guest stretch's `count` reads of its working set (`pages` guest pages from `firstPage`), each line
   * drawn from `draws` (guest-workload.ts `guestLineOf`) and read as `guestRead` reads it. Returns the
   * cycles they took, summed in order: `hitCycles` for an L1D hit, `missCycles` for a miss, nothing for
   * an unmapped page. The reference is the plain loop, `guestReadsLoop`.
   */
  guestReads(
    space: number,
    firstPage: number,
    pages: number,
    count: number,
    hitCycles: number,
    missCycles: number,
    draws: GuestDraws,
  ): number;
  /**
   * A handler's access to the line at `va` (48 bits) in `space` for `access` (Access bits): pfn x 2 + 1
   * for an L1D hit, pfn x 2 for a miss, or the walk's Fault code (< 0) when the address faults (nothing
   * was accessed).
   */
  lineAccess(space: number, va: number, access: number): number;
  /** An L1D flush of the thread's core: the lines dropped. */
  flushL1d(): number;
  /** A fill-buffer clear (VERW) of the thread's core: the lines dropped. */
  flushFillBuffers(): number;
}

/**
 * Where the sim PRNG can have its batches made (backend/sim/prng.ts): its 4 state words and a batch of
 * doubles, as views and as the indices `sfc32` takes.
 */
export interface Sfc32Area {
  sfc32: (stateI32Index: number, outF64Index: number, count: number) => void;
  state: Int32Array;
  stateI32Index: number;
  ahead: Float64Array;
  aheadF64Index: number;
}

/**
 * Where a guest stretch's draws come from: `random()`, one a read, in order (the backend's seeded
 * generator). Where they lie in an sfc32 area (the sim's Prng over the accelerated path's area,
 * backend/sim/prng.ts), `area` is that area and `cursor` the index in `area.ahead` of the next draw (at
 * the batch's end: the batch is remade before that draw), so that the accelerated path can make the
 * draws in its kernel and move the cursor. Otherwise `area` is null, and every draw is `random()`.
 */
export interface GuestDraws {
  random(): number;
  readonly area: Sfc32Area | null;
  cursor: number;
}

/**
 * `ThreadAccess.guestReads` as a plain loop over `access.guestRead` (the reference path's, and what the
 * accelerated path does for draws it cannot make itself): each read draws its line, then reads it; the
 * cycles are added to `cycles` in order.
 */
export function guestReadsLoop(
  access: ThreadAccess,
  space: number,
  firstPage: number,
  pages: number,
  count: number,
  hitCycles: number,
  missCycles: number,
  draws: GuestDraws,
  cycles = 0,
): number {
  let sum = cycles;
  for (let i = 0; i < count; i++) {
    const guestLine = guestLineOf(draws.random(), firstPage, pages);
    const page = Math.floor(guestLine / linesPerPage);
    const done = access.guestRead(space, page, guestLine - page * linesPerPage);
    // An unmapped GPA (-1) would be an EPT violation; the mix draws those.
    if (done >= 0) sum += done === 1 ? hitCycles : missCycles;
  }
  return sum;
}

/** A machine's access path: one `ThreadAccess` per hyperthread, and what the machine itself needs. */
export interface AccessPath {
  readonly name: AccessPathName;
  thread(thread: number): ThreadAccess;
  /** Zeroes `count` words of the machine from `i32Index` (`Machine.resetDynamicState`). */
  zeroWords(i32Index: number, count: number): void;
  /** Where the sim PRNG's batches are made, or null: it makes them itself. */
  readonly prngArea: Sfc32Area | null;
}

export type AccessPathName = 'reference' | 'accelerated';

/** Where a machine's words live: a buffer, and where in it the machine begins. */
export interface MachinePlace {
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  /** The machine's access path, once its parts are built. */
  bind(machine: Machine): AccessPath;
  /** The place's holders (the machine and its views) until it goes back; `release` gives it back now. */
  hold(holders: readonly object[]): void;
  release(): void;
}

/** What a backend hands `createMachine`: where a machine goes and which path serves it. */
export interface AccessPathProvider {
  readonly name: AccessPathName;
  /**
   * A zeroed place for a machine of `layout`, or null when this path cannot serve it (the machine then
   * gets the reference path and a buffer of its own). `concurrent`: the machine's hyperthreads run in
   * several threads.
   */
  place(layout: Layout, concurrent: boolean): MachinePlace | null;
}

/** The reference path: every machine, a SharedArrayBuffer of its own. */
export const referenceAccess: AccessPathProvider = {
  name: 'reference',
  place(layout: Layout): MachinePlace {
    return referencePlace(new SharedArrayBuffer(layout.totalBytes));
  },
};

/** The reference path over a machine that is the whole of `buffer` (made here, or attached to). */
export function referencePlace(buffer: SharedArrayBuffer): MachinePlace {
  return {
    buffer,
    byteOffset: 0,
    bind: (machine) => new ReferenceAccess(machine),
    hold: () => {},
    release: () => {},
  };
}

class ReferenceAccess implements AccessPath {
  readonly name = 'reference';
  readonly prngArea = null;
  private readonly machine: Machine;

  constructor(machine: Machine) {
    this.machine = machine;
  }

  thread(thread: number): ThreadAccess {
    const machine = this.machine;
    return new ReferenceThreadAccess(
      machine.tlbs[thread],
      machine.caches[machine.coreOf(thread)],
      machine.frames,
    );
  }

  zeroWords(i32Index: number, count: number): void {
    this.machine.i32.fill(0, i32Index, i32Index + count);
  }
}

class ReferenceThreadAccess implements ThreadAccess {
  private readonly tlb: Tlb;
  private readonly caches: CoreCaches;
  private readonly frames: FrameTable;

  constructor(tlb: Tlb, caches: CoreCaches, frames: FrameTable) {
    this.tlb = tlb;
    this.caches = caches;
    this.frames = frames;
  }

  guestRead(space: number, page: number, line: number): number {
    // The page number itself: guest-physical pages are far below 2^30 (tlb.ts `translatePage`).
    const pfn = this.tlb.translatePage(space, page, 0, Access.read);
    if (pfn < 0) return -1;
    return this.caches.access(pfn, line, this.frames.ownerOf(pfn)) ? 1 : 0;
  }

  guestReads(
    space: number,
    firstPage: number,
    pages: number,
    count: number,
    hitCycles: number,
    missCycles: number,
    draws: GuestDraws,
  ): number {
    return guestReadsLoop(this, space, firstPage, pages, count, hitCycles, missCycles, draws);
  }

  lineAccess(space: number, va: number, access: number): number {
    const pfn = this.tlb.translate(space, va, access);
    if (pfn < 0) return pfn;
    return pfn * 2 + (this.caches.access(pfn, lineInPageOf(va), this.frames.ownerOf(pfn)) ? 1 : 0);
  }

  flushL1d(): number {
    return this.caches.l1d.flush();
  }

  flushFillBuffers(): number {
    return this.caches.fillBuffers.flush();
  }
}
