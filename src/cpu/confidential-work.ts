import type { CompiledVariant } from './handler-program.js';

/**
 * What a hyperthread asks of a confidential VM's memory model (issue 21 item 5): the CPU side names the
 * events, the VMM side (coco/confidential-vm.ts `ConfidentialVm`) implements them, and the backend wires
 * one to each hyperthread of a confidential VM. So cpu/ never imports coco/.
 *
 * Draws come from `random` (the backend's seeded generator, Environment.random), in the order each
 * method documents: the sim's trace depends on it.
 */
export interface ConfidentialWork {
  /**
   * The guest touches guest page `gfn` at `timeCycles`: a private page not validated yet is accepted
   * lazily on first touch, or found remapped (the guest terminates, or a buggy one validates again).
   */
  guestTouch(gfn: number, timeCycles: number): void;
  /** An exit that accepts memory on the #VC / #VE path resumes: one draw picks the page it touches. */
  accept(random: () => number, timeCycles: number): void;
  /**
   * The VMM handles an exit to userspace that carries `conversion`: a conversion request (three draws:
   * first page, page count, direction), a touch of a virtio buffer (one draw), and, with a hostile VMM,
   * one draw for whether it remaps a private page (and one more for which).
   */
  vmmExit(conversion: CompiledVariant['conversion'], random: () => number, timeCycles: number): void;
}
