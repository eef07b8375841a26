import { definePolicy, Flush, type PolicyView } from './policy.js';

/**
 * Flush the L1D on every VM entry (`vmentry_l1d_flush=always`), or only after host code that may have
 * touched secrets (`cond`), with SMT on and no kicks. Protects the thread's own next guest run; does
 * nothing about a sibling running guest code while this thread is in the full kernel (INV-1), which is
 * why KVM pairs it with nosmt or core scheduling.
 */
export const l1dFlush = definePolicy({
  name: 'l1d-flush',
  description: 'flush L1D on every entry, SMT on, no kicks (unsafe against a sibling: INV-1)',
  usesAsi: false,
  flushBeforeEntry: () => Flush.l1d | Flush.buffers,
});

export const l1dFlushCond = definePolicy({
  name: 'l1d-flush-cond',
  description: 'flush L1D on entry only after a full switch or VMM exit, SMT on, no kicks (unsafe: INV-1)',
  usesAsi: false,
  // KVM's own trigger (`vmx_l1d_flush`, `vmentry_l1d_flush=cond`): PolicyView.l1tfFlushL1d says where
  // KVM sets it. Every exit runs in the full kernel here, so "after a full switch" would flush always.
  flushBeforeEntry: (view: PolicyView) => (view.l1tfFlushL1d ? Flush.l1d | Flush.buffers : Flush.none),
});
