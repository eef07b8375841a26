import { definePolicy, Flush, type PolicyView } from './policy.js';

/**
 * KVM's `l1tf=flush,nosmt`: SMT off (only sibling 0 of each core runs), and the L1D flushed on VM
 * entry when the vCPU ran host code that may have touched secrets since the last entry (KVM's
 * conditional flush, `vmentry_l1d_flush=cond`, arch/x86/kvm/vmx/vmx.c). With one thread per core there
 * is no sibling to kick.
 */
export const nosmt = definePolicy({
  name: 'nosmt',
  description: 'SMT off (one thread per core), L1D flushed on entry after host code that may touch secrets',
  smt: false,
  usesAsi: false,
  // KVM's trigger, not the cache's contents: `vmx_l1d_flush` flushes when `l1tf_flush_l1d` is set
  // (PolicyView.l1tfFlushL1d says where KVM sets it). Every exit runs in the full kernel address space
  // here, so a flush "after a full switch" would be a flush at every entry.
  flushBeforeEntry: (view: PolicyView) => (view.l1tfFlushL1d ? Flush.l1d | Flush.buffers : Flush.none),
});
