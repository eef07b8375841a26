import { isStunned } from '../cpu/modes.js';
import {
  assertLinuxAsiSettings,
  type LinuxAsiSettings,
  linuxAsiDefaults,
  type SiblingProtocol,
} from '../linux-asi/settings.js';
import { definePolicy, noSiblingHoldsSecrets, type Policy, type PolicyView } from './policy.js';

/**
 * Today's Linux ASI as a policy (issue 22): Brendan Jackman's RFC v2,
 * <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com> (docs/linux-asi.md has every rule and its source).
 * The hyperthread runs the state machine of src/linux-asi/ (cpu/linux-asi-cpu.ts): asi_enter just before
 * VM entry, asi_relax just after the exit, asi_exit + retry on a fault in the restricted space,
 * interrupts that re-enter on the outermost return, context switches that exit (every switch, or on an
 * mm switch only); its per-CPU taints decide the flushes (IBPB + RSB fill, L1D flush + buffer clear).
 *
 * Upstream ASI has no sibling protocol. `linux-asi` composes with the 2019 RFC's (issue 22 item 5): the
 * hooks below are the protocol, and the mode the hyperthread shows is `isolated` in a restricted space,
 * `full` in the unrestricted one. No entry flush of its own: the taints decide every flush (a sibling
 * that held secrets flushed the core's L1D at its own asi_enter, before the barrier let this thread in).
 */
export interface LinuxAsiOptions extends Partial<LinuxAsiSettings> {
  readonly name?: string;
  readonly description?: string;
}

const source = 'RFC v2 <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>';

/** The hooks of each sibling protocol, as the 2019 policies have them (asi, asi-ipi-only, asi-stun). */
function protocolHooks(protocol: SiblingProtocol) {
  switch (protocol) {
    case 'kick-and-wait':
      return {
        kickBeforeFull: () => true,
        waitForSiblingsOut: () => true,
        mayEnter: noSiblingHoldsSecrets,
      };
    case 'ipi-only':
      return {
        kickBeforeFull: () => true,
        waitForSiblingsOut: () => false,
        mayEnter: noSiblingHoldsSecrets,
      };
    case 'stun':
      return {
        stun: true,
        kickBeforeFull: () => true,
        waitForSiblingsOut: () => true,
        mayEnter: (word: number, view: PolicyView) => !isStunned(word) && noSiblingHoldsSecrets(word, view),
      };
    case 'none':
      return {};
  }
}

export function linuxAsiPolicy(options: LinuxAsiOptions = {}): Policy {
  const { name, description, ...rest } = options;
  const settings: LinuxAsiSettings = { ...linuxAsiDefaults, ...rest };
  assertLinuxAsiSettings(settings, `policy ${name ?? 'linux-asi'}`);
  const protocol = settings.siblingProtocol;
  return definePolicy({
    name: name ?? (protocol === 'kick-and-wait' ? 'linux-asi' : `linux-asi-${protocol}`),
    description:
      description ??
      `today's Linux ASI (Jackman, ${source}): denylist restricted space, asi_enter/relax/exit, taint-decided IBPB and L1D flushes; sibling protocol ${protocol}`,
    usesAsi: true,
    ...protocolHooks(protocol),
    linuxAsi: Object.freeze(settings),
  });
}

/** `linux-asi`: today's ASI with the 2019 kick-and-wait sibling protocol and STIBP; meant to be safe. */
export const linuxAsi = linuxAsiPolicy();

/**
 * `linux-asi-upstream`: ASI as posted, with no sibling protocol and no STIBP. Its taints are per logical
 * CPU: a sibling's guest runs beside this thread's unrestricted kernel and VMM, which the monitor reports
 * (INV-1, INV-3, INV-14, INV-15). Unsafe under SMT, on purpose.
 */
export const linuxAsiUpstream = linuxAsiPolicy({
  name: 'linux-asi-upstream',
  description: `today's Linux ASI as posted (Jackman, ${source}): no sibling protocol, no STIBP; unsafe under SMT`,
  siblingProtocol: 'none',
  stibp: false,
});
