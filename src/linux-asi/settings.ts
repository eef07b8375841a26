import { assert } from '../assert.js';
import {
  type AsiMachineConfig,
  type ContextSwitchExit,
  contextSwitchExits,
  type PlantedFault,
} from './state.js';
import {
  type AsiClass,
  asiClasses,
  assertTaintPolicy,
  type CpuBugs,
  cpuBugsL1tfAndMds,
  postedClassPolicies,
  type TaintPolicy,
} from './taints.js';

/**
 * What a `linux-asi` policy sets (policy/linux-asi.ts): the state machine's configuration (state.ts)
 * plus how it composes with SMT siblings. A hyperthread whose policy carries these runs today's Linux
 * ASI (cpu/linux-asi-cpu.ts) instead of the 2019 RFC's isolated/full switch.
 */

/**
 * The sibling protocol `linux-asi` composes with (issue 22 item 5). Upstream ASI has none (`none`):
 * its taints are per logical CPU and see nothing a sibling does. The others are the 2019 RFC's
 * (asi: kick before leaving the restricted space and wait; asi-ipi-only: kick, don't wait;
 * asi-stun: a core stun flag checked atomically at every entry).
 */
export type SiblingProtocol = 'kick-and-wait' | 'ipi-only' | 'stun' | 'none';
export const siblingProtocols: readonly SiblingProtocol[] = ['kick-and-wait', 'ipi-only', 'stun', 'none'];

export interface LinuxAsiSettings {
  readonly siblingProtocol: SiblingProtocol;
  /** Upstream exits ASI on every context switch; Google's internal version on an mm switch only. */
  readonly exitOn: ContextSwitchExit;
  /**
   * STIBP on every hyperthread (IA32_SPEC_CTRL bit 1): a thread is steered only by branch-predictor
   * entries it trained itself (spectre.rst, "A user process attacking another user process"). asi.c
   * as posted sets none; `spectre_v2_user=on` turns it on for every task.
   */
  readonly stibp: boolean;
  /** The class policies (taints.ts): the posted ones, or a planted bug's. */
  readonly classPolicies: Readonly<Record<AsiClass, TaintPolicy>>;
  /** Faults planted in the state machine itself (state.ts `PlantedFault`). */
  readonly plantedFaults: readonly PlantedFault[];
  /**
   * The ephmap ("ASI is fast again", <20250812173109.295750-1-jackmanb@google.com>): a sensitive
   * page-cache page the kernel must read or write while restricted is mapped CPU-locally for the
   * access and torn down right after, with a remote TLB flush, instead of faulting out of the
   * restricted space. Off by default: RFC v2, which `linux-asi` models, has none; it came with the
   * August 2025 branch (`linux-asi-ephmap`). Cost: `costs.ephmap` per page (docs/calibration.md).
   */
  readonly ephmap: boolean;
  /**
   * The CPU's bugs the data flushes are for (taints.ts `CpuBugs`): an L1D flush where L1TF applies,
   * a buffer clear where MDS does. Default: an L1TF- and MDS-affected part (Skylake-SP and earlier
   * server parts); Sapphire Rapids has neither (Linux Documentation/admin-guide/hw-vuln/l1tf.rst and
   * mds.rst list the affected processors; Sapphire Rapids enumerates ARCH_CAPABILITIES RDCL_NO and
   * MDS_NO) — `cpuBugsNone`.
   */
  readonly cpuBugs: CpuBugs;
  /**
   * `setcpuid=retbleed`: Jackman's "ASI is fast again" figures were taken with it: "This introduces an
   * IBPB in asi_exit()" (docs/linux-asi.md §4). An IBPB + RSB fill on every asi_exit, whether or not a
   * control taint asks for one.
   */
  readonly ibpbOnExit: boolean;
}

/** A CPU with neither L1TF nor MDS (Sapphire Rapids: RDCL_NO, MDS_NO): data taints flush nothing. */
export const cpuBugsNone: CpuBugs = Object.freeze({ l1tf: false, mds: false });

export const linuxAsiDefaults: LinuxAsiSettings = Object.freeze({
  siblingProtocol: 'kick-and-wait',
  exitOn: 'every-switch',
  stibp: true,
  classPolicies: postedClassPolicies,
  plantedFaults: Object.freeze([]) as readonly PlantedFault[],
  ephmap: false,
  cpuBugs: cpuBugsL1tfAndMds,
  ibpbOnExit: false,
});

export function assertLinuxAsiSettings(settings: LinuxAsiSettings, what: string): void {
  assert(siblingProtocols.includes(settings.siblingProtocol), `${what}.siblingProtocol`);
  assert(contextSwitchExits.includes(settings.exitOn), `${what}.exitOn`);
  assert(typeof settings.stibp === 'boolean', `${what}.stibp must be a boolean`);
  assert(typeof settings.ephmap === 'boolean', `${what}.ephmap must be a boolean`);
  assert(typeof settings.ibpbOnExit === 'boolean', `${what}.ibpbOnExit must be a boolean`);
  assert(
    typeof settings.cpuBugs?.l1tf === 'boolean' && typeof settings.cpuBugs?.mds === 'boolean',
    `${what}.cpuBugs must be { l1tf, mds } booleans`,
  );
  for (const asiClass of asiClasses)
    assertTaintPolicy(settings.classPolicies[asiClass], `${what}.classPolicies.${asiClass}`);
}

/** The state machine's configuration for these settings (the CPU bugs: `settings.cpuBugs`). */
export function asiMachineConfigOf(settings: LinuxAsiSettings): AsiMachineConfig {
  return {
    exitOn: settings.exitOn,
    policies: settings.classPolicies,
    bugs: settings.cpuBugs,
    plantedFaults: settings.plantedFaults,
  };
}

/**
 * Settings as a definition may give them (definePolicy, linuxAsiPolicy, a `--policy-module`): any field
 * left out takes `linuxAsiDefaults`' value, and `classPolicies` may name one class only (the other keeps
 * its posted policy).
 */
export type LinuxAsiSettingsInput = Partial<Omit<LinuxAsiSettings, 'classPolicies'>> & {
  readonly classPolicies?: Partial<Readonly<Record<AsiClass, TaintPolicy>>>;
};

/** The whole settings for `input` (defaults filled in, asserted, frozen). */
export function linuxAsiSettingsOf(input: LinuxAsiSettingsInput, what: string): LinuxAsiSettings {
  const given = Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined));
  const settings: LinuxAsiSettings = {
    ...linuxAsiDefaults,
    ...given,
    classPolicies:
      input.classPolicies === undefined
        ? linuxAsiDefaults.classPolicies
        : Object.freeze({
            ...linuxAsiDefaults.classPolicies,
            ...Object.fromEntries(
              Object.entries(input.classPolicies).filter(([, policy]) => policy !== undefined),
            ),
          }),
  };
  assertLinuxAsiSettings(settings, what);
  return Object.freeze(settings);
}
