import { type ExitMix, mixClassOf } from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
import type { Policy } from './policy.js';

/**
 * Which policies run a user mix (issue 22 item 4: a hyperthread runs a host process instead of a vCPU).
 *
 * - `none`: the process with no isolation, the baseline its overhead is measured against.
 * - Today's Linux ASI (a policy that carries `linuxAsi`): the userspace class, ASI_CLASS_USERSPACE of
 *   RFC v2 patch 25/29 (<20250110-asi-rfc-v2-v2-25-8419288bc805@google.com>).
 *
 * Every other built-in policy is refused. The 2019 KVM ASI RFC (`asi`, `asi-ipi-only`, `asi-stun`) has
 * no userspace class: its only restricted space is `kvm:N`, entered around VM entry, and a host process
 * never enters a VM. The VM-entry mitigations (`nosmt`'s and `l1d-flush`'s L1D flush, `kvm-default`,
 * coscheduling) act at VM entry and on vCPU threads, so a kernel engineer would read a figure of theirs
 * on a host process as meaningless, not as "no overhead". A refusal says what is accepted instead of
 * running something that looks like a result. A policy module runs one when it carries `linuxAsi`
 * (the probe reports that: backend/workers/policy-probe.ts), as the fuzzer draws it.
 */
export function runsUserClass(policy: Pick<Policy, 'name'> & { readonly linuxAsi?: unknown }): boolean {
  return policy.name === 'none' || (policy.linuxAsi !== undefined && policy.linuxAsi !== false);
}

/** Refuses `policy` on `mix` when the mix is a user mix and the policy has no userspace class. */
export function checkPolicyRunsMix(
  policy: Pick<Policy, 'name'> & { readonly linuxAsi?: unknown },
  mix: ExitMix,
  field = '--policies',
): void {
  if (mixClassOf(mix) !== 'user' || runsUserClass(policy)) return;
  throw new ConfigError(
    field,
    `none or a today's-ASI policy (linux-asi, linux-asi-upstream, linux-asi-*) for --mix ${mix.name}, a host process (class user): ${policy.name} has no userspace class (the 2019 RFC isolates only KVM; the VM-entry mitigations act only at VM entry)`,
    policy.name,
  );
}
