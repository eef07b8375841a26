import { definePolicy, Flush, type PolicyView } from './policy.js';

/**
 * What KVM does by default on an Intel server affected by L1TF and MDS, with no mitigation chosen by
 * hand: the realistic baseline (nobody runs `mitigations=off`; issue 19 item 6).
 * - L1TF: the default `l1tf=flush` keeps SMT on and flushes the L1D on VM entry conditionally
 *   (`vmentry_l1d_flush=cond`, Documentation/admin-guide/hw-vuln/l1tf.rst "Mitigation control on the
 *   kernel command line" and "KVM: vmentry_l1d_flush"): KVM's `l1tf_flush_l1d` trigger, which
 *   PolicyView.l1tfFlushL1d follows.
 * - MDS: the default `mds=full` clears the CPU buffers (VERW) on every VM entry
 *   (Documentation/admin-guide/hw-vuln/mds.rst "Mitigation points": VMENTER). Where KVM flushes the L1D
 *   the flush covers the buffers too (`vmx_vcpu_enter_exit`, arch/x86/kvm/vmx/vmx.c: "L1D Flush includes
 *   CPU buffer clear to mitigate MDS"); the model charges the buffer clear at every entry either way.
 * - Spectre v2: IBPB when a different vCPU is loaded on the CPU (`vmx_vcpu_load_vmcs`,
 *   `indirect_branch_prediction_barrier` on a VMCS switch). The model never moves a vCPU to another
 *   hyperthread, so that IBPB never happens here; it is left out, not charged.
 * Like l1d-flush-cond it does nothing about a sibling running guest code while this thread is in the
 * kernel (INV-1): l1tf.rst says so, and that is the gap ASI and core scheduling close.
 */
export const kvmDefault = definePolicy({
  name: 'kvm-default',
  description:
    'KVM defaults on an L1TF/MDS-affected Intel server: SMT on, cond L1D flush, VERW on every entry (unsafe: INV-1)',
  usesAsi: false,
  flushBeforeEntry: (view: PolicyView) => (view.l1tfFlushL1d ? Flush.l1d | Flush.buffers : Flush.buffers),
});
