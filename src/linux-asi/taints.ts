import { assert } from '../assert.js';

/**
 * Today's Linux ASI: the per-CPU taint bits and the class policies that turn them into flushes.
 *
 * Source (docs/linux-asi.md has the full list): Brendan Jackman's ASI RFC v2,
 * <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>, as carried by the `asi` branch files
 * arch/x86/include/asm/asi.h (the ASI_TAINT_* bits, struct asi_taint_policy) and arch/x86/mm/asi.c
 * (maybe_flush_control, maybe_flush_data, __asi_enter, asi_exit, asi_handle_switch_mm), with the
 * flushes themselves from patch 27/29 "mm: asi: Add some mitigations on address space transitions".
 *
 * Two dimensions (asi.h's comment): who touched the CPU (kernel, user, guest, another mm) and what may
 * remain: "data" = a victim's data may be left in a side channel, "control" = an attacker may have
 * left state in the branch predictor. There is no KERNEL_CONTROL bit as posted: "there's no point in
 * trying to protect against attacks from the kernel itself" (asi.h).
 */

/** The bits, as posted in asi.h (BIT(0)..BIT(6)). */
export const taintKernelData = 1 << 0;
export const taintUserData = 1 << 1;
export const taintGuestData = 1 << 2;
export const taintOtherMmData = 1 << 3;
export const taintUserControl = 1 << 4;
export const taintGuestControl = 1 << 5;
export const taintOtherMmControl = 1 << 6;
export const taintBitCount = 7;
export const taintsAll = (1 << taintBitCount) - 1;

/** ASI_TAINTS_CONTROL_MASK. */
export const taintsControlMask = taintUserControl | taintGuestControl | taintOtherMmControl;

/**
 * ASI_TAINTS_DATA_MASK as posted: KERNEL | USER | OTHER_MM. GUEST_DATA is not in it (asi.h), so a data
 * flush does not clear GUEST_DATA and asi_handle_switch_mm does not fold it into OTHER_MM_DATA. No
 * posted class lists GUEST_DATA in `protect_data` either ("the guest trusts its VMM"), so it never
 * decides a flush; docs/linux-asi.md notes this as a finding.
 */
export const taintsDataMask = taintKernelData | taintUserData | taintOtherMmData;

/** ASI_TAINTS_GUEST_MASK and ASI_TAINTS_USER_MASK: the per-domain bits asi_handle_switch_mm drops. */
export const taintsGuestMask = taintGuestData | taintGuestControl;
export const taintsUserMask = taintUserData | taintUserControl;

/** Each bit with its name as posted (asi.h `ASI_TAINT_*` without the prefix), in bit order. */
export const taintNames: readonly (readonly [number, string])[] = [
  [taintKernelData, 'KERNEL_DATA'],
  [taintUserData, 'USER_DATA'],
  [taintGuestData, 'GUEST_DATA'],
  [taintOtherMmData, 'OTHER_MM_DATA'],
  [taintUserControl, 'USER_CONTROL'],
  [taintGuestControl, 'GUEST_CONTROL'],
  [taintOtherMmControl, 'OTHER_MM_CONTROL'],
];

/** "KERNEL_DATA|GUEST_CONTROL", or "none": for messages and shrunk counterexamples. */
export function taintsToString(taints: number): string {
  assertTaints(taints, 'taints');
  const names = taintNames.filter(([bit]) => (taints & bit) !== 0).map(([, name]) => name);
  return names.length === 0 ? 'none' : names.join('|');
}

export function assertTaints(taints: number, what: string): void {
  assert(Number.isInteger(taints) && (taints & ~taintsAll) === 0, `${what}: not a taint set: ${taints}`);
}

/**
 * struct asi_taint_policy: how a class interacts with the CPU taints (asi.h).
 * - `preventControl`: control taints that need a flush (IBPB + RSB fill) when entering the class, to
 *   protect it from attack by prior domains ("backwards-looking", maybe_flush_control);
 * - `protectData`: data taints that need a flush (L1D flush where L1TF applies, buffer clear) when
 *   entering the class, to protect former domains from attack by this one ("forwards-looking",
 *   maybe_flush_data);
 * - `set`: the taints entering the class sets.
 */
export interface TaintPolicy {
  readonly preventControl: number;
  readonly protectData: number;
  readonly set: number;
}

export type AsiClass = 'kvm' | 'user';
export const asiClasses: readonly AsiClass[] = ['kvm', 'user'];

/**
 * The KVM class as posted: RFC v2 patch 21/29 "KVM: x86: asi: Restricted address space for VM
 * execution", kvm_x86_init_asi_class() in arch/x86/kvm/x86.c:
 * - protect_data = KERNEL_DATA | OTHER_MM_DATA, then `|= USER_DATA` ("data left behind by code in the
 *   userspace domain (i.e. the VMM itself ...)");
 * - prevent_control = OTHER_MM_CONTROL (protect the guest from other processes, not from its own VMM);
 * - set = GUEST_DATA, overwritten (`policy.set = ASI_TAINT_GUEST_CONTROL`, an assignment, not `|=`)
 *   unless the CPU already does IBPB and RSB filling on every VM exit. That is the usual case and the
 *   one the asi branch's KUnit test checks (test_asi_tainting expects GUEST_CONTROL after enter(kvm)),
 *   so it is this default; `kvmClassPolicyWithVmExitBarriers` is the other.
 */
export const kvmClassPolicy: TaintPolicy = Object.freeze({
  protectData: taintKernelData | taintOtherMmData | taintUserData,
  preventControl: taintOtherMmControl,
  set: taintGuestControl,
});

/** The KVM class on a CPU with X86_FEATURE_IBPB_ON_VMEXIT, retpolines and RSB_VMEXIT (patch 21/29). */
export const kvmClassPolicyWithVmExitBarriers: TaintPolicy = Object.freeze({
  ...kvmClassPolicy,
  set: taintGuestData,
});

/**
 * The userspace class as posted: RFC v2 patch 25/29 "mm: asi: Restricted execution fore bare-metal
 * processes", asi_init_userspace_class() in arch/x86/mm/asi.c (unchanged on the later asi branch):
 * - protect_data = KERNEL_DATA | OTHER_MM_DATA ("we don't check for guest data here ... the guest
 *   trusts its VMM");
 * - prevent_control = GUEST_CONTROL | OTHER_MM_CONTROL ("Don't go into userspace with control flow
 *   state controlled by other processes, or any KVM guest the process is running");
 * - set = USER_CONTROL | USER_DATA.
 */
export const userClassPolicy: TaintPolicy = Object.freeze({
  protectData: taintKernelData | taintOtherMmData,
  preventControl: taintGuestControl | taintOtherMmControl,
  set: taintUserControl | taintUserData,
});

export const postedClassPolicies: Readonly<Record<AsiClass, TaintPolicy>> = Object.freeze({
  kvm: kvmClassPolicy,
  user: userClassPolicy,
});

/**
 * asi_init_class() warns unless a policy prevents some control taint and protects some data taint
 * (`WARN_ON(!(prevent_control & ASI_TAINTS_CONTROL_MASK))`, the same for data). Here that is an assert:
 * a policy is code (a built-in or a user's `defineTaintPolicy`), and the config layer validates user
 * input before it reaches this.
 */
export function assertTaintPolicy(policy: TaintPolicy, what: string): void {
  assertTaints(policy.preventControl, `${what}.preventControl`);
  assertTaints(policy.protectData, `${what}.protectData`);
  assertTaints(policy.set, `${what}.set`);
  assert((policy.preventControl & taintsControlMask) !== 0, `${what}.preventControl names no control taint`);
  assert((policy.protectData & taintsDataMask) !== 0, `${what}.protectData names no data taint`);
}

/** Which CPU bugs the flushes are for (patch 27/29 flushes L1D only where X86_BUG_L1TF). */
export interface CpuBugs {
  /** L1TF: a data flush is an L1D flush (l1tf_flush(), "On CPUs with L1TF, flush L1D"). */
  readonly l1tf: boolean;
  /**
   * MDS-class buffers: a data flush also clears the CPU buffers (VERW). The posted patch relies on
   * "L1D Flush includes CPU buffer clear to mitigate MDS" (the vmx_vcpu_enter_exit comment); issue 22
   * names the buffer clear as its own action, so it is reported as one.
   */
  readonly mds: boolean;
}

export const cpuBugsL1tfAndMds: CpuBugs = Object.freeze({ l1tf: true, mds: true });

/** What one transition does to the taints, and the flushes that costs. */
export interface TaintTransition {
  readonly ibpb: boolean;
  readonly rsbFill: boolean;
  readonly l1dFlush: boolean;
  readonly bufferClear: boolean;
  readonly taints: number;
}

/**
 * __asi_enter's taint steps, in its order: maybe_flush_control(target) before the CR3 write,
 * maybe_flush_data(target) after it, then `asi_taints |= policy->set`.
 * - A control taint in `preventControl` costs IBPB (`wrmsr(MSR_IA32_PRED_CMD, PRED_CMD_IBPB)`) and an
 *   RSB fill (fill_return_buffer(), RSB_CLEAR_LOOPS = 32 calls), and clears every control taint.
 * - A data taint in `protectData` costs an L1D flush where L1TF applies (and a buffer clear where MDS
 *   applies), and clears every data taint in ASI_TAINTS_DATA_MASK, also on a CPU that needed no flush:
 *   as posted, the taint says "a flush would be needed on an affected CPU".
 */
export function enterTaints(taints: number, policy: TaintPolicy, bugs: CpuBugs): TaintTransition {
  assertTaints(taints, 'taints');
  const control = (taints & policy.preventControl) !== 0;
  let next = control ? taints & ~taintsControlMask : taints;
  const data = (next & policy.protectData) !== 0;
  if (data) next &= ~taintsDataMask;
  next |= policy.set;
  return {
    ibpb: control,
    rsbFill: control,
    l1dFlush: data && bugs.l1tf,
    bufferClear: data && bugs.mds,
    taints: next,
  };
}

/**
 * asi_exit's taint steps: maybe_flush_control(NULL) ("Going to the unrestricted address space, this
 * has an implicit policy of flushing all taints": any control taint costs IBPB + RSB fill and clears
 * them all), then `asi_taints |= ASI_TAINT_KERNEL_DATA` before the CR3 write ("Tainting first makes
 * reentrancy easier to reason about"). No data flush: the unrestricted kernel may see everything.
 */
export function exitTaints(taints: number): TaintTransition {
  assertTaints(taints, 'taints');
  const control = (taints & taintsControlMask) !== 0;
  const next = (control ? taints & ~taintsControlMask : taints) | taintKernelData;
  return { ibpb: control, rsbFill: control, l1dFlush: false, bufferClear: false, taints: next };
}

/**
 * asi_handle_switch_mm: on an mm switch the per-domain taints fold into OTHER_MM ("Other processes
 * don't care if their peers are attacking them from a guest or from bare metal"): any control taint
 * sets OTHER_MM_CONTROL, any taint of ASI_TAINTS_DATA_MASK sets OTHER_MM_DATA, then the GUEST and USER
 * bits are dropped. KERNEL_DATA stays (it is or-ed, never overwritten).
 */
export function switchMmTaints(taints: number): number {
  assertTaints(taints, 'taints');
  let folded = 0;
  if ((taints & taintsControlMask) !== 0) folded |= taintOtherMmControl;
  if ((taints & taintsDataMask) !== 0) folded |= taintOtherMmData;
  const next = (taints | folded) & ~(taintsGuestMask | taintsUserMask);
  assert((next & (taintsGuestMask | taintsUserMask)) === 0, 'switchMmTaints left a per-domain taint');
  return next;
}
