import { cpuBugsNone, type LinuxAsiSettingsInput, linuxAsiDefaults } from '../linux-asi/settings.js';
import { definePolicy, type Policy } from './policy.js';

/**
 * Today's Linux ASI as a policy (issue 22): Brendan Jackman's RFC v2,
 * <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com> (docs/linux-asi.md has every rule and its source).
 * The hyperthread runs the state machine of src/linux-asi/ through its isolation design
 * (cpu/linux-asi-isolation.ts, over cpu/linux-asi-cpu.ts): asi_enter just before VM entry, asi_relax
 * just after the exit, asi_exit + retry on a fault in the restricted space, interrupts that re-enter on
 * the outermost return, context switches that exit (every switch, or on an mm switch only); its per-CPU
 * taints decide the flushes (IBPB + RSB fill, L1D flush + buffer clear).
 *
 * Upstream ASI has no sibling protocol. `linux-asi` composes with the 2019 RFC's (issue 22 item 5): the
 * hooks are the protocol (sibling-protocols.ts, which definePolicy puts in for `linuxAsi` settings), and
 * the mode the hyperthread shows is `isolated` in a restricted space, `full` in the unrestricted one. No entry flush of its own: the taints decide every flush (a sibling
 * that held secrets flushed the core's L1D at its own asi_enter, before the barrier let this thread in).
 */
export type LinuxAsiOptions = LinuxAsiSettingsInput & {
  readonly name?: string;
  readonly description?: string;
};

const source = 'RFC v2 <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>';

export function linuxAsiPolicy(options: LinuxAsiOptions = {}): Policy {
  const { name, description, ...rest } = options;
  const protocol = rest.siblingProtocol ?? linuxAsiDefaults.siblingProtocol;
  // definePolicy fills in the other settings and puts the protocol's hooks (sibling-protocols.ts) in.
  return definePolicy({
    name: name ?? (protocol === 'kick-and-wait' ? 'linux-asi' : `linux-asi-${protocol}`),
    description:
      description ??
      `today's Linux ASI (Jackman, ${source}): denylist restricted space, asi_enter/relax/exit, taint-decided IBPB and L1D flushes; sibling protocol ${protocol}`,
    usesAsi: true,
    linuxAsi: rest,
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

const fastAgain = '"ASI is fast again" <20250812173109.295750-1-jackmanb@google.com>';

/** `linux-asi-ephmap`: `linux-asi` with the ephmap of the August 2025 branch (page-cache reads stay restricted). */
export const linuxAsiEphmap = linuxAsiPolicy({
  name: 'linux-asi-ephmap',
  description: `today's Linux ASI with the ephmap (Jackman, ${fastAgain}): a page-cache page is mapped CPU-locally for the access instead of faulting out; kick-and-wait, STIBP`,
  ephmap: true,
});

/**
 * The configuration of Jackman's "ASI is fast again" measurements (docs/calibration.md): Sapphire
 * Rapids (no L1TF, no MDS: data taints flush nothing), `setcpuid=retbleed` (an IBPB in every asi_exit),
 * ASI as posted (no sibling protocol, no STIBP: unsafe under SMT; the calibration runs one thread a
 * core), with the ephmap. `linux-asi-rfc-v2-spr` is the same without it: RFC v2 on that machine, where
 * the page cache faults out of the restricted space.
 */
export const linuxAsiFastAgain = linuxAsiPolicy({
  name: 'linux-asi-fast-again',
  description: `today's Linux ASI as measured in ${fastAgain}: ephmap, setcpuid=retbleed (IBPB on every asi_exit), Sapphire Rapids (no L1TF/MDS), no sibling protocol`,
  siblingProtocol: 'none',
  stibp: false,
  ephmap: true,
  cpuBugs: cpuBugsNone,
  ibpbOnExit: true,
});

export const linuxAsiRfcV2Spr = linuxAsiPolicy({
  name: 'linux-asi-rfc-v2-spr',
  description: `today's Linux ASI as posted (${source}) on Sapphire Rapids with setcpuid=retbleed, no ephmap (the -70% FIO configuration of ${fastAgain}), no sibling protocol`,
  siblingProtocol: 'none',
  stibp: false,
  cpuBugs: cpuBugsNone,
  ibpbOnExit: true,
});
