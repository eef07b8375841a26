import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import type { Layout } from './layout.js';
import type { Region } from './regions.js';
import { loadWord } from './words.js';

/**
 * The frame table: one owner domain and one region id per physical frame. Owners change at run time
 * (confidential-VM conversions, page-table pages taken from the pool), so they are read and written
 * with Atomics: a monitor in another thread reads a consistent owner.
 */
export class FrameTable {
  readonly frameCount: number;
  private readonly ownerBase: number;
  private readonly regionBase: number;

  private readonly i32: Int32Array;
  private readonly regions: readonly Region[];
  private readonly atomic: boolean;

  constructor(
    i32: Int32Array,
    layout: Layout,
    regions: readonly Region[],
    /** Machine.concurrent: owners are read atomically where other threads change them (memory/words.ts). */
    atomic = true,
  ) {
    this.i32 = i32;
    this.regions = regions;
    this.atomic = atomic;
    this.frameCount = layout.frameCount;
    this.ownerBase = layout.sections.frameOwner.offsetI32;
    this.regionBase = layout.sections.frameRegion.offsetI32;
    assert(layout.sections.frameOwner.lengthI32 === this.frameCount, 'one owner word per frame');
  }

  /** Writes owners and region ids of the plan. Called once, by createMachine. */
  initialize(): void {
    for (const region of this.regions) {
      for (let pfn = region.firstPfn; pfn < region.firstPfn + region.frames; pfn++) {
        this.i32[this.ownerBase + pfn] = region.owner;
        this.i32[this.regionBase + pfn] = region.id;
      }
    }
  }

  ownerOf(pfn: number): number {
    // A constant message: a template literal would build a string at every call, debug or not.
    if (assertDebugEnabled) assertDebug(pfn >= 0 && pfn < this.frameCount, 'ownerOf: pfn out of range');
    return loadWord(this.i32, this.ownerBase + pfn, this.atomic);
  }

  setOwner(pfn: number, domain: number): void {
    assert(
      Number.isInteger(pfn) && pfn >= 0 && pfn < this.frameCount,
      `pfn ${pfn} out of range 0..${this.frameCount - 1}`,
    );
    Atomics.store(this.i32, this.ownerBase + pfn, domain);
  }

  regionOf(pfn: number): Region {
    assert(
      Number.isInteger(pfn) && pfn >= 0 && pfn < this.frameCount,
      `pfn ${pfn} out of range 0..${this.frameCount - 1}`,
    );
    return this.regions[this.i32[this.regionBase + pfn]];
  }

  /** Frames per owner domain (for summaries and tests). */
  ownerHistogram(): Map<number, number> {
    const histogram = new Map<number, number>();
    for (let pfn = 0; pfn < this.frameCount; pfn++) {
      const owner = this.ownerOf(pfn);
      histogram.set(owner, (histogram.get(owner) ?? 0) + 1);
    }
    return histogram;
  }
}
