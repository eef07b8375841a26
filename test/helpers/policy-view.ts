import type { PolicyView } from '../../src/policy/policy.js';

/**
 * A policy's view of thread `sibling` of a core of `smt`, as the state machine builds it (the "since
 * entry" flags false, no foreign lines), with `overrides` on top: for asking a policy's hooks directly.
 */
export function policyView(sibling: number, smt: number, overrides: Partial<PolicyView> = {}): PolicyView {
  return {
    thread: sibling,
    sibling,
    smt,
    vmId: 0,
    exitReasonName: 'MSR_WRITE',
    coreWord: () => 0,
    foreignLines: () => 0,
    switchedToFullSinceEntry: false,
    vmmSinceEntry: false,
    nmiSinceEntry: false,
    interruptSinceEntry: false,
    faultedSinceEntry: false,
    l1tfFlushL1d: false,
    ...overrides,
  };
}
