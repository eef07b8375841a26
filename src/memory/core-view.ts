import type { Machine } from '../machine.js';

/** Lines in core `core`'s L1D and fill buffers foreign to VM `vmId` (INV-2's question, O(1)). */
export function foreignLinesOf(machine: Machine, core: number, vmId: number): number {
  return machine.l1d[core].foreignLines(vmId) + machine.fillBuffers[core].foreignLines(vmId);
}
