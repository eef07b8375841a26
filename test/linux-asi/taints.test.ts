import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import {
  assertTaintPolicy,
  cpuBugsL1tfAndMds,
  enterTaints,
  exitTaints,
  kvmClassPolicy,
  kvmClassPolicyWithVmExitBarriers,
  postedClassPolicies,
  switchMmTaints,
  taintGuestControl,
  taintGuestData,
  taintKernelData,
  taintOtherMmControl,
  taintOtherMmData,
  taintsControlMask,
  taintsDataMask,
  taintsToString,
  taintUserControl,
  taintUserData,
  userClassPolicy,
} from '../../src/linux-asi/taints.js';

const noBugs = { l1tf: false, mds: false };

describe('linux-asi taint bits (asi.h as posted)', () => {
  it('has the seven posted bits in their order, and no KERNEL_CONTROL', () => {
    expect([
      taintKernelData,
      taintUserData,
      taintGuestData,
      taintOtherMmData,
      taintUserControl,
      taintGuestControl,
      taintOtherMmControl,
    ]).toEqual([1, 2, 4, 8, 16, 32, 64]);
    expect(taintsToString(127)).toBe(
      'KERNEL_DATA|USER_DATA|GUEST_DATA|OTHER_MM_DATA|USER_CONTROL|GUEST_CONTROL|OTHER_MM_CONTROL',
    );
    expect(taintsToString(0)).toBe('none');
    expect(() => taintsToString(128)).toThrow(AssertionError);
  });

  it('leaves GUEST_DATA out of the data mask, as posted', () => {
    expect(taintsDataMask).toBe(taintKernelData | taintUserData | taintOtherMmData);
    expect(taintsDataMask & taintGuestData).toBe(0);
    expect(taintsControlMask).toBe(taintUserControl | taintGuestControl | taintOtherMmControl);
  });
});

describe('linux-asi class policies as posted', () => {
  it('kvm (RFC v2 patch 21/29): protects kernel, other-mm and VMM data; prevents other-mm control; sets GUEST_CONTROL', () => {
    expect(taintsToString(kvmClassPolicy.protectData)).toBe('KERNEL_DATA|USER_DATA|OTHER_MM_DATA');
    expect(taintsToString(kvmClassPolicy.preventControl)).toBe('OTHER_MM_CONTROL');
    expect(taintsToString(kvmClassPolicy.set)).toBe('GUEST_CONTROL');
    expect(taintsToString(kvmClassPolicyWithVmExitBarriers.set)).toBe('GUEST_DATA');
  });

  it('user (RFC v2 patch 25/29): protects kernel and other-mm data; prevents guest and other-mm control; sets USER_*', () => {
    expect(taintsToString(userClassPolicy.protectData)).toBe('KERNEL_DATA|OTHER_MM_DATA');
    expect(taintsToString(userClassPolicy.preventControl)).toBe('GUEST_CONTROL|OTHER_MM_CONTROL');
    expect(taintsToString(userClassPolicy.set)).toBe('USER_DATA|USER_CONTROL');
    expect(postedClassPolicies).toEqual({ kvm: kvmClassPolicy, user: userClassPolicy });
  });

  it('refuses a policy that prevents no control taint or protects no data taint (asi_init_class WARN_ON)', () => {
    expect(() => assertTaintPolicy({ ...userClassPolicy, preventControl: taintKernelData }, 'p')).toThrow(
      /preventControl names no control taint/,
    );
    expect(() => assertTaintPolicy({ ...userClassPolicy, protectData: taintGuestData }, 'p')).toThrow(
      /protectData names no data taint/,
    );
    expect(() => assertTaintPolicy(kvmClassPolicy, 'kvm')).not.toThrow();
  });
});

describe('enterTaints (__asi_enter)', () => {
  it('a matching control taint costs IBPB and an RSB fill and clears every control taint', () => {
    const before = taintGuestControl | taintUserControl;
    const t = enterTaints(before, userClassPolicy, cpuBugsL1tfAndMds);
    expect([t.ibpb, t.rsbFill, t.l1dFlush, t.bufferClear]).toEqual([true, true, false, false]);
    expect(taintsToString(t.taints)).toBe('USER_DATA|USER_CONTROL');
  });

  it('a control taint the class does not prevent costs nothing and stays', () => {
    // The guest is not protected from its own VMM: USER_CONTROL does not matter to kvm.
    const t = enterTaints(taintUserControl, kvmClassPolicy, cpuBugsL1tfAndMds);
    expect([t.ibpb, t.rsbFill]).toEqual([false, false]);
    expect(taintsToString(t.taints)).toBe('USER_CONTROL|GUEST_CONTROL');
  });

  it('a matching data taint costs an L1D flush and a buffer clear and clears the data mask, not GUEST_DATA', () => {
    const before = taintKernelData | taintUserData | taintGuestData;
    const t = enterTaints(before, kvmClassPolicy, cpuBugsL1tfAndMds);
    expect([t.ibpb, t.rsbFill, t.l1dFlush, t.bufferClear]).toEqual([false, false, true, true]);
    expect(taintsToString(t.taints)).toBe('GUEST_DATA|GUEST_CONTROL');
  });

  it('the user class does not flush for the VMM-visible guest data (the guest trusts its VMM)', () => {
    const t = enterTaints(taintGuestData, userClassPolicy, cpuBugsL1tfAndMds);
    expect(t.l1dFlush).toBe(false);
    expect(t.taints & taintGuestData).toBe(taintGuestData);
  });

  it('on a CPU without L1TF or MDS the data taints clear with no flush, as posted', () => {
    const t = enterTaints(taintKernelData, userClassPolicy, noBugs);
    expect([t.l1dFlush, t.bufferClear]).toEqual([false, false]);
    expect(t.taints & taintKernelData).toBe(0);
  });

  it('L1TF alone flushes L1D without a buffer clear; MDS alone clears buffers only', () => {
    expect(enterTaints(taintKernelData, userClassPolicy, { l1tf: true, mds: false })).toMatchObject({
      l1dFlush: true,
      bufferClear: false,
    });
    expect(enterTaints(taintKernelData, userClassPolicy, { l1tf: false, mds: true })).toMatchObject({
      l1dFlush: false,
      bufferClear: true,
    });
  });
});

describe('exitTaints (asi_exit)', () => {
  it('sets KERNEL_DATA and, when a control taint is set, flushes (IBPB + RSB fill) and clears all of them', () => {
    const t = exitTaints(taintGuestControl | taintUserData);
    expect([t.ibpb, t.rsbFill, t.l1dFlush, t.bufferClear]).toEqual([true, true, false, false]);
    expect(taintsToString(t.taints)).toBe('KERNEL_DATA|USER_DATA');
  });

  it('costs nothing without a control taint', () => {
    const t = exitTaints(taintUserData);
    expect([t.ibpb, t.rsbFill]).toEqual([false, false]);
    expect(taintsToString(t.taints)).toBe('KERNEL_DATA|USER_DATA');
  });
});

describe('switchMmTaints (asi_handle_switch_mm)', () => {
  it('folds any control taint into OTHER_MM_CONTROL and any data-mask taint into OTHER_MM_DATA, keeping KERNEL_DATA', () => {
    expect(taintsToString(switchMmTaints(taintUserControl | taintUserData))).toBe(
      'OTHER_MM_DATA|OTHER_MM_CONTROL',
    );
    expect(taintsToString(switchMmTaints(taintKernelData))).toBe('KERNEL_DATA|OTHER_MM_DATA');
    expect(taintsToString(switchMmTaints(taintGuestControl))).toBe('OTHER_MM_CONTROL');
  });

  it('drops GUEST_DATA without folding it (it is not in the data mask)', () => {
    expect(switchMmTaints(taintGuestData)).toBe(0);
  });
});
