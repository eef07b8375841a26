import { Mode, modeOf } from '../cpu/modes.js';
import { ConfigError } from '../errors.js';
import { postedClassPolicies, taintOtherMmControl, userClassPolicy } from '../linux-asi/taints.js';
import { asi } from './asi.js';
import { asiStun } from './asi-stun.js';
import { linuxAsiPolicy } from './linux-asi.js';
import { definePolicy, Flush, type Policy, type PolicyView, siblingsInGuest } from './policy.js';

/**
 * Planted-bug policies: each one a subtle, realistic mistake in a mitigation, kept to prove that the
 * invariant monitor and the fuzzer catch it (DESIGN.md: "a checker that never fires proves nothing").
 * Each names the invariant(s) it is expected to break. None of them is offered as a real policy.
 */
export interface PlantedBug {
  policy: Policy;
  /** The invariant(s) a run of this policy is expected to break (any one of them suffices). */
  breaks: string[];
  /** What the mistake is, in words. */
  mistake: string;
  /** What a run needs for the bug to show (machine / workload hints for tests and the fuzzer). */
  needs: { smtMin?: number; nmi?: boolean; vmmExits?: boolean };
  /**
   * The most exits a shrunk counterexample may keep (test/fuzz/planted-bugs.test.ts; 50 unless set): a
   * bug that needs two interrupts to land within one handler (a nested NMI) keeps a longer run, since
   * the shrinker's budget runs out before it moves both arrivals early.
   */
  shrunkExitsMax?: number;
}

/** The sibling after `view` in its core (wrapping), for bugs that look at one sibling only. */
function nextSibling(view: PolicyView): number {
  return (view.sibling + 1) % view.smt;
}

const base = {
  usesAsi: asi.usesAsi,
  kickBeforeFull: asi.kickBeforeFull,
  waitForSiblingsOut: asi.waitForSiblingsOut,
  flushBeforeEntry: asi.flushBeforeEntry,
  mayEnter: asi.mayEnter,
};

export const plantedBugs: readonly PlantedBug[] = [
  {
    policy: definePolicy({
      ...base,
      name: 'planted-no-barrier',
      description: 'asi that re-enters the guest without waiting at the barrier',
      mayEnter: () => true,
    }),
    breaks: ['INV-1', 'INV-3'],
    mistake: 'enters the guest without waiting at the entry barrier',
    needs: {},
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-kick-after-switch',
      description: 'asi that switches to full first and kicks the siblings afterwards',
      kickBeforeFull: () => false,
      waitForSiblingsOut: () => false,
      kickAfterFull: () => true,
    }),
    breaks: ['INV-4', 'INV-1'],
    mistake: 'kicks the siblings after switching to the full address space',
    needs: {},
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-barrier-one-sibling',
      description: 'asi whose entry barrier looks at one sibling only',
      mayEnter: (word: number, view: PolicyView) => {
        const mode = modeOf(word, nextSibling(view));
        return mode !== Mode.full && mode !== Mode.vmm;
      },
    }),
    breaks: ['INV-1', 'INV-3'],
    mistake: 'waits at the barrier for only one sibling (fine with 2 threads per core, wrong with 4)',
    needs: { smtMin: 3 },
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-kick-one-sibling',
      description: 'asi that kicks (and waits for) one sibling only',
      kickTargets: (word: number, view: PolicyView) => siblingsInGuest(word, view) & (1 << nextSibling(view)),
      siblingsOut: (word: number, view: PolicyView) => modeOf(word, nextSibling(view)) !== Mode.guest,
    }),
    breaks: ['INV-4', 'INV-1'],
    mistake: 'forgets one sibling: kicks and waits for the next sibling only',
    needs: { smtMin: 3 },
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-flush-before-barrier',
      description: 'asi that flushes before waiting at the barrier, not after',
      plantedBugs: { flushPoint: 'before-barrier' },
    }),
    breaks: ['INV-2'],
    mistake: 'flushes before the sibling left the full address space (then waits, then enters unflushed)',
    needs: {},
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-no-flush-after-nmi',
      description: 'asi that flushes only after handler faults and VMM exits, not after an NMI',
      flushBeforeEntry: (view: PolicyView) =>
        view.faultedSinceEntry || view.vmmSinceEntry ? Flush.l1d | Flush.buffers : Flush.none,
    }),
    breaks: ['INV-2'],
    mistake: 'skips the flush after an NMI handled in the full address space',
    needs: { nmi: true },
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-lost-wakeup',
      description: 'asi whose kicker waits for an acknowledgement a sibling leaving on its own never sends',
      plantedBugs: { waitFor: 'ack' },
    }),
    breaks: ['INV-9'],
    mistake:
      'lost wake-up when both siblings kick at once: waits for a kick acknowledgement that never comes',
    needs: {},
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-enters-beside-vmm',
      description: 'asi whose barrier checks for full but forgets vmm',
      mayEnter: (word: number, view: PolicyView) => {
        for (let sibling = 0; sibling < view.smt; sibling++) {
          if (sibling !== view.sibling && modeOf(word, sibling) === Mode.full) return false;
        }
        return true;
      },
    }),
    breaks: ['INV-1', 'INV-3'],
    mistake: 're-enters the guest while a sibling is in the VMM (userspace holds secrets too)',
    needs: { vmmExits: true },
  },
  {
    policy: definePolicy({
      ...base,
      name: 'planted-stun-race',
      description: 'asi-stun that checks the stun flag, then enters in a separate step',
      stun: true,
      mayEnter: asiStun.mayEnter,
      plantedBugs: { atomicEntry: false },
    }),
    breaks: ['INV-1', 'INV-3'],
    mistake: 'races the stun flag: checks it, then enters without re-checking',
    needs: {},
  },
  // Today's Linux ASI (issue 22): the three bugs the issue names, each in linux-asi (kick-and-wait,
  // STIBP), whose sibling protocol leaves the taints alone to decide the flushes.
  {
    policy: linuxAsiPolicy({
      name: 'planted-linux-asi-user-no-guest-ibpb',
      description: 'linux-asi whose user class policy does not prevent GUEST_CONTROL: no IBPB guest-to-VMM',
      classPolicies: {
        ...postedClassPolicies,
        user: { ...userClassPolicy, preventControl: taintOtherMmControl },
      },
    }),
    breaks: ['INV-15'],
    mistake:
      'a taint policy that skips the IBPB for a guest-to-user switch: the VMM runs with predictor state its guest trained',
    needs: { vmmExits: true },
  },
  {
    policy: linuxAsiPolicy({
      name: 'planted-linux-asi-exit-no-kernel-data',
      description:
        'linux-asi whose asi_exit does not set KERNEL_DATA: no L1D flush after unrestricted kernel code',
      plantedFaults: ['exit-skips-kernel-data-taint'],
    }),
    breaks: ['INV-14'],
    mistake:
      'asi_exit forgets the KERNEL_DATA taint: the guest re-enters with sensitive kernel data in the L1D',
    needs: {},
  },
  {
    policy: linuxAsiPolicy({
      name: 'planted-linux-asi-nested-nmi-no-flush',
      description: 'linux-asi whose re-entry after a nested NMI skips the data flush',
      plantedFaults: ['nested-nmi-reentry-skips-data-flush'],
    }),
    breaks: ['INV-14'],
    mistake:
      'the outermost interrupt return after a nested NMI re-enters the restricted space without the L1D flush its taints require',
    needs: { nmi: true },
    shrunkExitsMax: 100,
  },
];

export function plantedBug(name: string): PlantedBug {
  const found = plantedBugs.find((bug) => bug.policy.name === name);
  if (!found)
    throw new ConfigError(
      'policy',
      `a planted bug: ${plantedBugs.map((bug) => bug.policy.name).join(', ')}`,
      name,
    );
  return found;
}
