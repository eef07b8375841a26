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
}

export const linuxAsiDefaults: LinuxAsiSettings = Object.freeze({
  siblingProtocol: 'kick-and-wait',
  exitOn: 'every-switch',
  stibp: true,
  classPolicies: postedClassPolicies,
  plantedFaults: Object.freeze([]) as readonly PlantedFault[],
});

export function assertLinuxAsiSettings(settings: LinuxAsiSettings, what: string): void {
  assert(siblingProtocols.includes(settings.siblingProtocol), `${what}.siblingProtocol`);
  assert(contextSwitchExits.includes(settings.exitOn), `${what}.exitOn`);
  assert(typeof settings.stibp === 'boolean', `${what}.stibp must be a boolean`);
  for (const asiClass of asiClasses)
    assertTaintPolicy(settings.classPolicies[asiClass], `${what}.classPolicies.${asiClass}`);
}

/** The state machine's configuration for these settings (the CPU bugs of an L1TF/MDS-affected part). */
export function asiMachineConfigOf(settings: LinuxAsiSettings): AsiMachineConfig {
  return {
    exitOn: settings.exitOn,
    policies: settings.classPolicies,
    bugs: cpuBugsL1tfAndMds,
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
