import { assert, assertDebugEnabled } from '../assert.js';
import type { CoreCaches } from '../cache/core-caches.js';
import {
  type AccessPath,
  type AccessPathProvider,
  type GuestDraws,
  guestReadsLoop,
  type MachinePlace,
  type Sfc32Area,
  type ThreadAccess,
} from '../cpu/access-path.js';
import type { Machine } from '../machine.js';
import type { FrameTable } from '../memory/frames.js';
import { coreFieldIndex, type Layout } from '../memory/layout.js';
import {
  descriptorI32s,
  kernelRegionLayout,
  StretchResultWord,
  sfc32AreaDraws,
  sfc32StateI32s,
} from '../memory/sub-layouts.js';
import { Access } from '../paging/entry-format.js';
import type { Tlb } from '../paging/tlb.js';
import { lineInPageOf } from '../paging/va-layout.js';
import type {
  AccessKernel,
  AccessKernels,
  FlushFillBuffersKernel,
  FlushLinesKernel,
  GuestAccessKernel,
  GuestReadsKernel,
  LineAccessKernel,
} from './access-kernel.js';
import { writeCacheDescriptor, writeThreadDescriptor } from './kernel-descriptor.js';
import { allocateSimRegion, holdSimRegion, releaseSimRegion, type SimRegion } from './sim-arena.js';

/**
 * The accelerated access path (cpu/access-path.ts; DESIGN.md "The access path"): the access kernel
 * (access-kernel.wat) over the machine in its thread's sim arena (sim-arena.ts). The sim backend's path.
 * The kernel makes the common case of each operation (a TLB hit, the cache access, the flush loops) and
 * hands back what it does not (a TLB miss, a shootdown, a permission walk, an LRU clock to renumber); the
 * model classes make those, without their locks: the kernel takes none, so a machine on this path is
 * driven by one thread.
 *
 * It serves no machine whose hyperthreads run in several threads, nor a debug run (ASI_EMU_DEBUG=1,
 * whose asserts only the reference has), nor a machine the arena cannot hold: `place` then returns null
 * and the machine gets the reference path.
 */
export const acceleratedAccess: AccessPathProvider = {
  name: 'accelerated',
  place(layout: Layout, concurrent: boolean): MachinePlace | null {
    if (concurrent || assertDebugEnabled) return null;
    const parts = kernelRegionLayout(layout.totalI32s, layout.threadCount, layout.coreCount);
    const region = allocateSimRegion(parts.endI32 * Int32Array.BYTES_PER_ELEMENT);
    if (region === null) return null;
    return {
      buffer: region.buffer,
      byteOffset: region.byteOffset,
      bind: (machine) => new AcceleratedAccess(machine, region),
      hold: (holders) => holdSimRegion(region, holders),
      release: () => releaseSimRegion(region),
    };
  },
};

class AcceleratedAccess implements AccessPath {
  readonly name = 'accelerated';
  readonly prngArea: Sfc32Area;
  private readonly threads: AcceleratedThreadAccess[] = [];
  private readonly kernels: AccessKernels;
  /** Where index 0 of the machine's `i32` is in the kernel's memory. */
  private readonly memoryI32Offset: number;

  constructor(machine: Machine, region: SimRegion) {
    assert(!machine.concurrent, 'the accelerated path takes no locks: one thread drives its machine');
    const { layout, config, buffer } = machine;
    const kernels = region.kernels;
    this.kernels = kernels;
    const memoryI32Offset = region.byteOffset / Int32Array.BYTES_PER_ELEMENT;
    this.memoryI32Offset = memoryI32Offset;
    const parts = kernelRegionLayout(layout.totalI32s, layout.threadCount, layout.coreCount);
    const wordsAt = (i32Index: number, count: number): Int32Array =>
      new Int32Array(buffer, region.byteOffset + i32Index * Int32Array.BYTES_PER_ELEMENT, count);
    const geometry = {
      sets: config.l1d.sets,
      ways: config.l1d.ways,
      replacement: config.l1d.replacement,
      domainCount: machine.l1d[0].domainCount,
    };
    this.prngArea = {
      sfc32: kernels.sfc32,
      state: wordsAt(parts.prngStateI32, sfc32StateI32s),
      stateI32Index: memoryI32Offset + parts.prngStateI32,
      ahead: new Float64Array(buffer, region.byteOffset + parts.prngDrawsI32 * 4, sfc32AreaDraws),
      aheadF64Index: (memoryI32Offset + parts.prngDrawsI32) / 2,
    };
    // One stretch result for the machine: one thread drives it, one call at a time.
    const stretch: StretchResult = {
      words: wordsAt(parts.stretchResultI32, descriptorI32s),
      i32Index: memoryI32Offset + parts.stretchResultI32,
    };
    const cacheDescriptors: number[] = [];
    const caches: AcceleratedCaches[] = [];
    for (let core = 0; core < layout.coreCount; core++) {
      const at = parts.cacheDescriptorsI32 + core * descriptorI32s;
      const base = coreFieldIndex(layout, core, 0);
      writeCacheDescriptor(
        wordsAt(at, descriptorI32s),
        memoryI32Offset,
        base + layout.coreL1dOffsetI32,
        geometry,
        base + layout.coreFillBuffersOffsetI32,
        config.fillBufferEntries,
      );
      cacheDescriptors.push(memoryI32Offset + at);
      caches.push(new AcceleratedCaches(kernels, memoryI32Offset + at, machine.caches[core]));
    }
    for (let thread = 0; thread < layout.threadCount; thread++) {
      const at = parts.threadDescriptorsI32 + thread * descriptorI32s;
      const core = machine.coreOf(thread);
      writeThreadDescriptor(
        wordsAt(at, descriptorI32s),
        memoryI32Offset,
        layout,
        thread,
        { entries: config.tlbEntries, ways: config.tlbWays },
        cacheDescriptors[core],
      );
      this.threads.push(
        new AcceleratedThreadAccess(
          kernels,
          memoryI32Offset + at,
          machine.tlbs[thread],
          caches[core],
          machine.frames,
          this.prngArea,
          stretch,
        ),
      );
    }
  }

  thread(thread: number): ThreadAccess {
    return this.threads[thread];
  }

  /** The kernel's memory.fill: `fill` over a shared buffer stores a word at a time. */
  zeroWords(i32Index: number, count: number): void {
    this.kernels.zeroWords(this.memoryI32Offset + i32Index, count);
  }
}

/**
 * A core's caches on the accelerated path: the kernel's cache access and flush loops over the core's
 * cache descriptor, the model classes (without their locks) for the rest.
 */
export class AcceleratedCaches {
  private readonly accessKernel: AccessKernel;
  private readonly flushLinesKernel: FlushLinesKernel;
  private readonly flushFillBuffersKernel: FlushFillBuffersKernel;
  /** The core's cache descriptor (Int32 index in the kernel's memory). */
  readonly descriptorI32Index: number;
  private readonly caches: CoreCaches;

  constructor(kernels: AccessKernels, descriptorI32Index: number, caches: CoreCaches) {
    this.accessKernel = kernels.access;
    this.flushLinesKernel = kernels.flushLines;
    this.flushFillBuffersKernel = kernels.flushFillBuffers;
    this.descriptorI32Index = descriptorI32Index;
    this.caches = caches;
  }

  /** One line: the kernel's access, or the model's when the LRU clock must be renumbered first. */
  access(pfn: number, line: number, domain: number): boolean {
    const hit = this.accessKernel(this.descriptorI32Index, pfn, line, domain);
    if (hit >= 0) return hit === 1;
    return this.caches.accessHeld(pfn, line, domain);
  }

  flushL1d(): number {
    const dropped = this.flushLinesKernel(this.descriptorI32Index);
    // One thread drives the machine: no other thread reads the counts.
    this.caches.l1d.finishFlush(dropped, false);
    return dropped;
  }

  flushFillBuffers(): number {
    const fillBuffers = this.caches.fillBuffers;
    if (fillBuffers.entries === 0) return 0;
    return fillBuffers.finishFlush(this.flushFillBuffersKernel(this.descriptorI32Index), false);
  }
}

/** Where the kernel's `guestReads` leaves the cursor and the reads made (`StretchResultWord`). */
interface StretchResult {
  words: Int32Array;
  /** Its Int32 index in the kernel's memory. */
  i32Index: number;
}

/** One hyperthread's path: the kernel first, the model classes (without their locks) for what it hands back. */
export class AcceleratedThreadAccess implements ThreadAccess {
  private readonly guestAccessKernel: GuestAccessKernel;
  private readonly guestReadsKernel: GuestReadsKernel;
  private readonly lineAccessKernel: LineAccessKernel;
  /** The thread's descriptor (Int32 index in the kernel's memory). */
  readonly descriptorI32Index: number;
  private readonly tlb: Tlb;
  private readonly caches: AcceleratedCaches;
  private readonly frames: FrameTable;
  /** The machine's sfc32 area: a stretch whose draws lie there is made in the kernel. */
  private readonly prngArea: Sfc32Area;
  private readonly stretch: StretchResult;

  constructor(
    kernels: AccessKernels,
    descriptorI32Index: number,
    tlb: Tlb,
    caches: AcceleratedCaches,
    frames: FrameTable,
    prngArea: Sfc32Area,
    stretch: StretchResult,
  ) {
    this.guestAccessKernel = kernels.guestAccess;
    this.guestReadsKernel = kernels.guestReads;
    this.prngArea = prngArea;
    this.stretch = stretch;
    this.lineAccessKernel = kernels.lineAccess;
    this.descriptorI32Index = descriptorI32Index;
    this.tlb = tlb;
    this.caches = caches;
    this.frames = frames;
  }

  guestRead(space: number, page: number, line: number): number {
    const done = this.guestAccessKernel(this.descriptorI32Index, space, page, line);
    if (done >= 0) return done;
    return this.guestReadRest(done, space, page, line);
  }

  /** What the kernel handed back: -1, all of it; -2 - pfn, the cache access of a page it translated. */
  private guestReadRest(done: number, space: number, page: number, line: number): number {
    const pfn = done === -1 ? this.tlb.translatePage(space, page, 0, Access.read) : -2 - done;
    if (pfn < 0) return -1;
    return this.caches.access(pfn, line, this.frames.ownerOf(pfn)) ? 1 : 0;
  }

  /**
   * The kernel's `guestReads` while the draws lie in this machine's sfc32 area (the sim's Prng), the
   * cursor handed over and taken back; a read it stops before (a TLB miss, an LRU clock to renumber) is
   * made here, drawn from the same cursor, then the kernel goes on. Other draws (a fuzzer's choices): the
   * reference loop over `guestRead`.
   */
  guestReads(
    space: number,
    firstPage: number,
    pages: number,
    count: number,
    hitCycles: number,
    missCycles: number,
    draws: GuestDraws,
  ): number {
    const area = this.prngArea;
    if (draws.area !== area)
      return guestReadsLoop(this, space, firstPage, pages, count, hitCycles, missCycles, draws);
    const words = this.stretch.words;
    let cycles = 0;
    // Each turn makes at least one read: the kernel's, or the one it stopped before.
    let left = count;
    while (left > 0) {
      cycles = this.guestReadsKernel(
        this.descriptorI32Index,
        space,
        firstPage,
        pages,
        left,
        hitCycles,
        missCycles,
        cycles,
        area.stateI32Index,
        area.aheadF64Index,
        draws.cursor,
        this.stretch.i32Index,
      );
      draws.cursor = words[StretchResultWord.cursor];
      left -= words[StretchResultWord.reads];
      if (left > 0) {
        cycles = guestReadsLoop(this, space, firstPage, pages, 1, hitCycles, missCycles, draws, cycles);
        left--;
      }
    }
    return cycles;
  }

  lineAccess(space: number, va: number, access: number): number {
    const done = this.lineAccessKernel(this.descriptorI32Index, space, va, access);
    if (done >= 0) return done;
    return this.lineAccessRest(done, space, va, access);
  }

  private lineAccessRest(done: number, space: number, va: number, access: number): number {
    const pfn = done === -1 ? this.tlb.translate(space, va, access) : -2 - done;
    if (pfn < 0) return pfn;
    return pfn * 2 + (this.caches.access(pfn, lineInPageOf(va), this.frames.ownerOf(pfn)) ? 1 : 0);
  }

  flushL1d(): number {
    return this.caches.flushL1d();
  }

  flushFillBuffers(): number {
    return this.caches.flushFillBuffers();
  }
}
