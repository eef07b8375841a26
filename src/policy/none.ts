import { definePolicy } from './policy.js';

/** The unsafe baseline: no kicks, no flushes, no barrier. Overheads are measured against it. */
export const none = definePolicy({
  name: 'none',
  description: 'unsafe baseline: no kicks, no flushes, no entry barrier',
  // KVM without ASI: every exit handled in the full kernel address space (DESIGN.md "Cost model").
  usesAsi: false,
});
