import { assert } from '../assert.js';
import {
  type AccessKernel,
  CacheDescriptorWord,
  type DescriptorView,
  descriptorI32s,
} from './access-kernel.js';
import { type CoreFillBuffers, fillBufferLayout } from './fill-buffers.js';
import { type CoreL1d, l1dLayout, l1dLineI32s } from './l1d.js';

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
  /** The Int32 index of the core's cache descriptor in the kernel's memory (-1 without a kernel). */
  declare readonly descriptorI32Index: number;

  /**
   * @param kernel the access kernel over the memory that holds both sections, or null
   * @param memoryI32Offset where index 0 of the sections' view is in the kernel's memory, in Int32 words
   * @param descriptor where this core's cache descriptor goes in the kernel's memory (with a kernel):
   *   written here, read by every kernel access of the core
   */
  constructor(
    l1d: CoreL1d,
    fillBuffers: CoreFillBuffers,
    kernel: AccessKernel | null,
    memoryI32Offset: number,
    descriptor: DescriptorView | null,
  ) {
    this.l1d = l1d;
    this.fillBuffers = fillBuffers;
    this.kernel = kernel;
    this.descriptorI32Index = -1;
    if (kernel === null) return;
    assert(
      descriptor !== null && descriptor.words.length >= descriptorI32s,
      'CoreCaches: a kernel needs a cache descriptor',
    );
    this.descriptorI32Index = descriptor.i32Index;
    writeCacheDescriptor(descriptor.words, l1d, fillBuffers, memoryI32Offset);
  }

  /** One line of frame `pfn` owned by `domain`: true on an L1D hit. */
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const kernel = this.kernel;
    if (kernel !== null) {
      const hit = kernel(this.descriptorI32Index, pfn, lineInPage, domain);
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

/**
 * A core's cache descriptor (access-kernel.wat): byte addresses of its L1D's and fill buffers' parts in
 * the kernel's memory, from the same layouts their classes use, and the geometry.
 */
function writeCacheDescriptor(
  words: Int32Array,
  l1d: CoreL1d,
  fillBuffers: CoreFillBuffers,
  memoryI32Offset: number,
): void {
  const bytes = Int32Array.BYTES_PER_ELEMENT;
  const word = CacheDescriptorWord;
  const l1dAt = memoryI32Offset + l1d.baseI32Index;
  const l1dParts = l1dLayout(l1d);
  words[word.l1d] = l1dAt * bytes;
  words[word.setMask] = l1d.sets - 1;
  words[word.pageMask] = l1d.pageMask;
  words[word.setBytes] = l1d.ways * l1dLineI32s * bytes;
  words[word.lines] = (l1dAt + l1dParts.linesI32Offset) * bytes;
  words[word.hints] = (l1dAt + l1dParts.hintsI32Offset) * bytes;
  words[word.setState] = (l1dAt + l1dParts.setStateI32Offset) * bytes;
  words[word.ways] = l1d.ways;
  words[word.plru] = l1d.replacement === 'plru' ? 1 : 0;
  const fillAt = memoryI32Offset + fillBuffers.baseI32Index;
  const fillParts = fillBufferLayout(fillBuffers.entries, fillBuffers.domainCount);
  words[word.fillBuffers] = fillAt * bytes;
  words[word.fillBufferEntries] = fillBuffers.entries;
  words[word.fillBufferFirst] = (fillAt + fillParts.entriesI32Offset) * bytes;
  words[word.fillBufferFilter] = (fillAt + fillParts.filterI32Offset) * bytes;
}
