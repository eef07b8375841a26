import type { CoreFillBuffers } from './fill-buffers.js';
import type { CoreL1d } from './l1d.js';

/**
 * A core's data-cache path: a line goes to the L1D and, on a miss, to the fill buffers (DESIGN.md "Core
 * resources"). This is the reference the accelerated path's kernel transcribes (accel/access-kernel.wat;
 * test/accel/access-kernel.test.ts runs both on the same streams and compares every word).
 */
export class CoreCaches {
  readonly l1d: CoreL1d;
  readonly fillBuffers: CoreFillBuffers;

  constructor(l1d: CoreL1d, fillBuffers: CoreFillBuffers) {
    this.l1d = l1d;
    this.fillBuffers = fillBuffers;
  }

  /** One line of frame `pfn` owned by `domain`, each buffer under its core lock: true on an L1D hit. */
  access(pfn: number, lineInPage: number, domain: number): boolean {
    const hit = this.l1d.access(pfn, lineInPage, domain);
    if (!hit) this.fillBuffers.access(pfn, lineInPage, domain);
    return hit;
  }

  /** `access` where one thread drives the machine, so no lock is needed. */
  accessHeld(pfn: number, lineInPage: number, domain: number): boolean {
    const hit = this.l1d.accessHeld(pfn, lineInPage, domain);
    if (!hit) this.fillBuffers.accessHeld(pfn, lineInPage, domain);
    return hit;
  }
}
