import type { AccessKernel } from './access-kernel.js';
import type { CoreFillBuffers } from './fill-buffers.js';
import type { CoreL1d } from './l1d.js';

/**
 * A core's data-cache path: a line goes to the L1D and, on a miss, to the fill buffers (DESIGN.md "Core
 * resources"). Through the access kernel when the machine has one (a sim machine in the arena,
 * memory/sim-arena.ts), else through `CoreL1d.access` and `CoreFillBuffers.access`, the reference the
 * kernel transcribes: the same state either way (test/cache/access-kernel.test.ts).
 */
export class CoreCaches {
  // Fields set in the constructor are `declare`d: memory/words.ts says why (V8 field representations).
  declare readonly l1d: CoreL1d;
  declare readonly fillBuffers: CoreFillBuffers;
  declare private readonly kernel: AccessKernel | null;
  /** The kernel's arguments: section indices in the kernel's memory, and the geometry. */
  declare private readonly l1dI32Index: number;
  declare private readonly sets: number;
  declare private readonly ways: number;
  declare private readonly domainCount: number;
  declare private readonly plru: number;
  declare private readonly fillBuffersI32Index: number;
  declare private readonly fillBufferEntries: number;

  /**
   * @param kernel the access kernel over the memory that holds both sections, or null
   * @param memoryI32Offset where index 0 of the sections' view is in the kernel's memory, in Int32 words
   */
  constructor(
    l1d: CoreL1d,
    fillBuffers: CoreFillBuffers,
    kernel: AccessKernel | null,
    memoryI32Offset: number,
  ) {
    this.l1d = l1d;
    this.fillBuffers = fillBuffers;
    this.kernel = kernel;
    this.l1dI32Index = memoryI32Offset + l1d.baseI32Index;
    this.sets = l1d.sets;
    this.ways = l1d.ways;
    this.domainCount = l1d.domainCount;
    this.plru = l1d.replacement === 'plru' ? 1 : 0;
    this.fillBuffersI32Index = memoryI32Offset + fillBuffers.baseI32Index;
    this.fillBufferEntries = fillBuffers.entries;
  }

  /** Words 8-14 of a thread's kernel descriptor (access-kernel.wat) at `words[at]`: `access`'s arguments. */
  writeKernelDescriptor(words: Int32Array, at: number): void {
    words[at] = this.l1dI32Index;
    words[at + 1] = this.sets;
    words[at + 2] = this.ways;
    words[at + 3] = this.domainCount;
    words[at + 4] = this.plru;
    words[at + 5] = this.fillBuffersI32Index;
    words[at + 6] = this.fillBufferEntries;
  }

  /** One line of frame `pfn` owned by `domain`: true on an L1D hit. */
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const kernel = this.kernel;
    if (kernel !== null) {
      const hit = kernel(
        this.l1dI32Index,
        this.sets,
        this.ways,
        this.domainCount,
        this.plru,
        this.fillBuffersI32Index,
        this.fillBufferEntries,
        pfn,
        lineInPage,
        domain,
      );
      if (hit >= 0) return hit === 1;
    }
    return this.accessReference(pfn, lineInPage, domain);
  }

  /** The path in JavaScript (out of `access` to keep that one small for V8's inliner). */
  private accessReference(pfn: number, lineInPage: number, domain: number): boolean {
    const hit = this.l1d.access(pfn, lineInPage, domain);
    if (!hit) this.fillBuffers.access(pfn, lineInPage, domain);
    return hit;
  }
}
