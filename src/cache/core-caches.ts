import { assert } from '../assert.js';
import type { AccessKernel } from './access-kernel.js';
import type { CoreFillBuffers } from './fill-buffers.js';
import type { KernelSeat } from './kernel-descriptor.js';
import type { CoreL1d } from './l1d.js';

/**
 * A core's data-cache path: a line goes to the L1D and, on a miss, to the fill buffers (DESIGN.md "Core
 * resources"). Through the access kernel when the machine has one (a sim machine in the arena,
 * memory/sim-arena.ts), else through `CoreL1d.access` and `CoreFillBuffers.access`, the reference the
 * kernel transcribes: the same state either way (test/cache/access-kernel.test.ts).
 */
export class CoreCaches {
  readonly l1d: CoreL1d;
  readonly fillBuffers: CoreFillBuffers;
  private readonly kernel: AccessKernel | null;
  /** The Int32 index of the core's cache descriptor in the kernel's memory (-1 without a kernel). */
  readonly descriptorI32Index: number;

  /**
   * @param seat the core's seat at the access kernel (the one its L1D and fill buffers were built with:
   *   each wrote its words of the descriptor), or null without a kernel
   */
  constructor(l1d: CoreL1d, fillBuffers: CoreFillBuffers, seat: KernelSeat | null) {
    this.l1d = l1d;
    this.fillBuffers = fillBuffers;
    this.kernel = seat === null ? null : seat.kernels.access;
    this.descriptorI32Index = seat === null ? -1 : seat.descriptor.i32Index;
    assert(
      l1d.descriptorI32Index === this.descriptorI32Index &&
        fillBuffers.descriptorI32Index === this.descriptorI32Index,
      "CoreCaches: the L1D and the fill buffers sit on the core's seat",
    );
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

  /** The path in JavaScript (out of `access`, which keeps the kernel's path short). */
  private accessReference(pfn: number, lineInPage: number, domain: number): boolean {
    const hit = this.l1d.access(pfn, lineInPage, domain);
    if (!hit) this.fillBuffers.access(pfn, lineInPage, domain);
    return hit;
  }
}
