import { assert } from '../assert.js';
import { ConfigError } from '../errors.js';
import { asi } from './asi.js';
import { asiIpiOnly } from './asi-ipi-only.js';
import { asiStun } from './asi-stun.js';
import { coschedule } from './coschedule.js';
import { kvmDefault } from './kvm-default.js';
import { l1dFlush, l1dFlushCond } from './l1d-flush.js';
import {
  linuxAsi,
  linuxAsiEphmap,
  linuxAsiFastAgain,
  linuxAsiRfcV2Spr,
  linuxAsiUpstream,
} from './linux-asi.js';
import { none } from './none.js';
import { nosmt } from './nosmt.js';
import type { Policy } from './policy.js';

export type { PlantedBugSwitches, Policy, PolicyDefinition, PolicyView } from './policy.js';
export { definePolicy, Flush, flushIfForeign, noSiblingHoldsSecrets, siblingsInGuest } from './policy.js';

/** The built-in policies, by name (DESIGN.md "Policies"). `safe` is what the tests hold them to. */
export const policies: Record<string, Policy> = {
  none,
  'kvm-default': kvmDefault,
  nosmt,
  'l1d-flush': l1dFlush,
  'l1d-flush-cond': l1dFlushCond,
  coschedule: coschedule(),
  'coschedule-nohlt': coschedule({ holdOnHlt: false }),
  asi,
  'asi-ipi-only': asiIpiOnly,
  'asi-stun': asiStun,
  'linux-asi': linuxAsi,
  'linux-asi-upstream': linuxAsiUpstream,
  'linux-asi-ephmap': linuxAsiEphmap,
  'linux-asi-fast-again': linuxAsiFastAgain,
  'linux-asi-rfc-v2-spr': linuxAsiRfcV2Spr,
};

/**
 * What each built-in policy models and what it leaves out (`asi-emu policies --long`), so a reader
 * knows which real mitigation a figure stands for. Keys are the names in `policies`.
 */
export const policyScopes: Readonly<Record<string, { models: string; leavesOut: string }>> = {
  none: {
    models: 'KVM with SMT on and no L1TF/MDS mitigation: the cost baseline',
    leavesOut: 'nothing to leave out; it protects nothing',
  },
  'kvm-default': {
    models:
      'KVM as shipped on an L1TF/MDS-affected Intel server: l1tf=flush (cond L1D flush, SMT on), mds=full (VERW on every entry)',
    leavesOut:
      'the IBPB on loading another vCPU (vCPUs never move here); other host mitigations; any sibling protection (INV-1 breaks by design)',
  },
  nosmt: {
    models: "KVM's l1tf=flush,nosmt: one thread per core, conditional L1D flush on entry",
    leavesOut: 'the host scheduler giving the offline siblings to other work; other host mitigations',
  },
  'l1d-flush': {
    models: 'vmentry_l1d_flush=always with SMT on',
    leavesOut: 'any sibling protection (it has none: INV-1 breaks by design)',
  },
  'l1d-flush-cond': {
    models: 'vmentry_l1d_flush=cond with SMT on',
    leavesOut:
      "KVM's exact l1tf_flush_l1d call sites (modelled: first run and VMM returns, interrupts, handlers that touch data kvm:N does not map)",
  },
  coschedule: {
    models: 'core-wide kernel protection on every VM exit (Fernandes, core scheduling v8 series, 2020)',
    leavesOut:
      'Linux core scheduling proper: a host scheduler with several tasks per hyperthread (a later issue); syscalls and host IRQs outside VM exits',
  },
  'coschedule-nohlt': {
    models: 'coschedule, but a HLT exit does not hold the sibling (Setje-Eilers, RFC thread 2019)',
    leavesOut:
      'as coschedule; the idea assumed ASI (a HLT handled in isolation): without it the HLT path runs in the full kernel beside a guest sibling, so INV-1 breaks',
  },
  asi: {
    models: 'the 2019 KVM ASI RFC: kick and wait before switching to the full kernel, entry barrier',
    leavesOut: "today's ASI denylist and taint-based flushes (linux-asi); the host scheduler",
  },
  'asi-ipi-only': {
    models: "Zijlstra's suggestion: send the kick and do not wait (measures the exposure window)",
    leavesOut: 'as asi',
  },
  'asi-stun': {
    models: "Google's later ASI stun state: a core bit checked atomically before every entry",
    leavesOut: 'as asi',
  },
  'linux-asi': {
    models:
      "today's Linux ASI (Jackman, RFC v2 <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>): denylist restricted space, asi_enter/relax/exit, interrupts that re-enter, per-CPU taints deciding IBPB + RSB fill and L1D flush + buffer clear; with the 2019 kick-and-wait sibling protocol and STIBP",
    leavesOut:
      'restricted page tables of its own (kvm:N tags the TLB, the denylist decides per page: docs/linux-asi.md); a host scheduler with other mms; the ephmap (linux-asi-ephmap)',
  },
  'linux-asi-upstream': {
    models:
      "today's Linux ASI as posted: no sibling protocol, no STIBP (unsafe under SMT: the monitor reports it)",
    leavesOut: 'as linux-asi',
  },
  'linux-asi-ephmap': {
    models:
      'linux-asi with the ephmap of "ASI is fast again" (Jackman, August 2025): a page-cache page mapped CPU-locally for one access, torn down with a remote TLB flush, instead of an asi_exit',
    leavesOut: 'as linux-asi; how the ephmap taints (the model taints KERNEL_DATA: docs/linux-asi.md)',
  },
  'linux-asi-fast-again': {
    models:
      'the configuration of Jackman\'s "ASI is fast again" figures: ephmap, setcpuid=retbleed (IBPB on every asi_exit), Sapphire Rapids (no L1TF/MDS), no sibling protocol (unsafe under SMT)',
    leavesOut: 'as linux-asi; the other changes of the August 2025 branch',
  },
  'linux-asi-rfc-v2-spr': {
    models:
      "RFC v2 on Sapphire Rapids with setcpuid=retbleed and no ephmap: the page cache faults out of ASI (the -70% FIO figure's configuration), no sibling protocol (unsafe under SMT)",
    leavesOut: 'as linux-asi',
  },
};

assert(
  Object.keys(policies).every((name) => policyScopes[name] !== undefined) &&
    Object.keys(policyScopes).every((name) => policies[name] !== undefined),
  'every built-in policy says what it models and leaves out, and only they do',
);

/**
 * Policies expected to hold every invariant; the others are unsafe on purpose. `coschedule-nohlt` is
 * not among them: without ASI its HLT exit runs in the full kernel (kvm_emulate_halt, the halt-poll and
 * schedule() path) while the sibling it did not kick runs guest code, which INV-1 reports (issue 19).
 * `linux-asi` (today's ASI with kick-and-wait and STIBP) holds every invariant over the safe-policy
 * campaign (issue 22 item 5); `linux-asi-upstream` is unsafe under SMT on purpose.
 */
export const safePolicyNames = ['nosmt', 'coschedule', 'asi', 'asi-stun', 'linux-asi'] as const;

/**
 * Whether a policy is held to the invariants (`bench --fail-on-violation`): a built-in one when it is
 * in `safePolicyNames` (the others are unsafe baselines on purpose), any other policy unless it says
 * `safe: false` (definePolicy).
 */
export function meantToBeSafe(policy: Pick<Policy, 'name' | 'safe'>): boolean {
  if (policies[policy.name] === policy) return (safePolicyNames as readonly string[]).includes(policy.name);
  return policy.safe !== false;
}

export function policyByName(name: string, field = '--policies'): Policy {
  const policy = policies[name];
  if (!policy) throw new ConfigError(field, `one of ${Object.keys(policies).join(', ')}`, name);
  return policy;
}
