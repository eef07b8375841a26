import { ConfigError } from '../errors.js';
import {
  type LinuxAsiSettingsInput,
  linuxAsiDefaults,
  type SiblingProtocol,
  siblingProtocols,
} from './settings.js';
import { type ContextSwitchExit, contextSwitchExits, type PlantedFault } from './state.js';
import {
  type AsiClass,
  asiClasses,
  type TaintPolicy,
  taintGuestData,
  taintNames,
  taintsAll,
  taintsControlMask,
  taintsDataMask,
} from './taints.js';

/**
 * Today's Linux ASI settings as a user writes them (issue 22 item 6): `defineTaintPolicy` for a class
 * policy written with taint names, and the checks of a `linuxAsi` object a `--policy-module` exports.
 * Every refusal is a ConfigError naming the field and what it accepts (the CLI prints it and exits 2);
 * what passes is what the state machine asserts (settings.ts `assertLinuxAsiSettings`, taints.ts
 * `assertTaintPolicy`), so a user's input never reaches an assert.
 */

/** A taint's name as posted in asi.h (`ASI_TAINT_*` without the prefix). */
export type TaintName =
  | 'KERNEL_DATA'
  | 'USER_DATA'
  | 'GUEST_DATA'
  | 'OTHER_MM_DATA'
  | 'USER_CONTROL'
  | 'GUEST_CONTROL'
  | 'OTHER_MM_CONTROL';

/** A set of taints: names (one, or a list), or the bit mask a TaintPolicy already holds. */
export type TaintSetInput = TaintName | readonly TaintName[] | number;

/** struct asi_taint_policy written with names: `{ preventControl, protectData, set }` (taints.ts). */
export interface TaintPolicyInput {
  readonly preventControl: TaintSetInput;
  readonly protectData: TaintSetInput;
  readonly set: TaintSetInput;
}

/** The data taints `protectData` may name: ASI_TAINTS_DATA_MASK plus GUEST_DATA (its own bit in asi.h). */
const protectableData = taintsDataMask | taintGuestData;

/**
 * What each field of a taint policy accepts. asi_init_class() warns unless `prevent_control` names a
 * control taint and `protect_data` a data taint of ASI_TAINTS_DATA_MASK (asi.c); names of the other
 * kind there would never decide a flush, so they are refused as the mistake they are.
 */
const taintPolicyFields = {
  preventControl: {
    bits: taintsControlMask,
    required: taintsControlMask,
    why: 'the control taints whose presence on entry costs an IBPB + RSB fill',
  },
  protectData: {
    bits: protectableData,
    required: taintsDataMask,
    why: 'the data taints whose presence on entry costs an L1D flush + buffer clear',
  },
  set: { bits: taintsAll, required: 0, why: 'the taints entering the class sets (may be empty)' },
} as const satisfies Record<keyof TaintPolicy, { bits: number; required: number; why: string }>;

const taintPolicyKeys = Object.keys(taintPolicyFields) as (keyof TaintPolicy)[];

function namesOf(bits: number): string[] {
  return taintNames.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name);
}

function describeGot(value: unknown): unknown {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return JSON.stringify(value);
  return value === null || value === undefined ? String(value) : typeof value;
}

/** One field of a taint policy as a bit mask; a ConfigError naming `field` and the names it accepts. */
function taintSetOf(
  value: unknown,
  field: string,
  rule: (typeof taintPolicyFields)[keyof TaintPolicy],
): number {
  const accepted = namesOf(rule.bits);
  const requiredNames = namesOf(rule.required);
  const acceptedText =
    `${rule.why}: a list of taint names, each one of ${accepted.join(', ')}` +
    (rule.required === 0 ? '' : `, naming at least one of ${requiredNames.join(', ')}`);
  let bits = 0;
  if (typeof value === 'number') {
    // `value > rule.bits` also refuses what 32-bit `&` would truncate (2^32 and above).
    if (!Number.isInteger(value) || value < 0 || value > rule.bits || (value & ~rule.bits) !== 0) {
      throw new ConfigError(field, `${acceptedText} (or their bit mask)`, value);
    }
    bits = value;
  } else {
    const names: unknown[] = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [value];
    if (typeof value !== 'string' && !Array.isArray(value)) {
      throw new ConfigError(field, acceptedText, describeGot(value));
    }
    names.forEach((name, index) => {
      const found = taintNames.find(([bit, known]) => known === name && (bit & rule.bits) !== 0);
      if (found === undefined) {
        throw new ConfigError(
          Array.isArray(value) ? `${field}[${index}]` : field,
          acceptedText,
          describeGot(name),
        );
      }
      bits |= found[0];
    });
  }
  if (rule.required !== 0 && (bits & rule.required) === 0) {
    throw new ConfigError(field, acceptedText, describeGot(value));
  }
  return bits;
}

function checkObject(value: unknown, field: string, accepted: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, accepted, describeGot(value));
  }
  return value as Record<string, unknown>;
}

/** A taint policy from names (or masks), checked field by field; `field` prefixes every error. */
export function parseTaintPolicy(value: unknown, field: string): TaintPolicy {
  const accepted = `a taint policy { ${taintPolicyKeys.join(', ')} } (see defineTaintPolicy)`;
  const input = checkObject(value, field, accepted);
  for (const key of Object.keys(input)) {
    if (!(taintPolicyKeys as string[]).includes(key)) {
      throw new ConfigError(
        `${field}.${key}`,
        `a taint policy field: one of ${taintPolicyKeys.join(', ')}`,
        key,
      );
    }
  }
  const policy: Record<string, number> = {};
  for (const key of taintPolicyKeys) {
    if (input[key] === undefined) {
      throw new ConfigError(`${field}.${key}`, `${taintPolicyFields[key].why} (required)`);
    }
    policy[key] = taintSetOf(input[key], `${field}.${key}`, taintPolicyFields[key]);
  }
  return Object.freeze(policy as unknown as TaintPolicy);
}

/**
 * A class policy (asi.h `struct asi_taint_policy`) written with taint names, for a policy's
 * `linuxAsi.classPolicies` (linuxAsiPolicy, definePolicy, a `--policy-module`):
 *
 *   defineTaintPolicy({
 *     preventControl: ['GUEST_CONTROL', 'OTHER_MM_CONTROL'], // IBPB + RSB fill on entry if present
 *     protectData: ['KERNEL_DATA', 'OTHER_MM_DATA'],         // L1D flush + buffer clear on entry if present
 *     set: ['USER_CONTROL', 'USER_DATA'],                    // what entering the class taints
 *   })
 *
 * Returns the TaintPolicy the state machine uses (bit masks). A bad field is a ConfigError naming it
 * and the names it accepts.
 */
export function defineTaintPolicy(input: TaintPolicyInput): TaintPolicy {
  return parseTaintPolicy(input, 'taint policy');
}

/** The planted faults of the state machine (state.ts `PlantedFault`), for a module that plants one. */
export const plantedFaultNames = [
  'exit-skips-kernel-data-taint',
  'nested-nmi-reentry-skips-data-flush',
] as const satisfies readonly PlantedFault[];

/**
 * A `linuxAsi` object as a policy module gives it (a policy made with linuxAsiPolicy carries every
 * field; a plain object or definePolicy may give some): each field checked, class policies as names or
 * masks.
 */
export function parseLinuxAsiSettingsInput(value: unknown, field: string): LinuxAsiSettingsInput {
  const knownKeys = Object.keys(linuxAsiDefaults);
  const input = checkObject(
    value,
    field,
    `today's Linux ASI settings: an object of ${knownKeys.join(', ')} (each optional; see linuxAsiPolicy)`,
  );
  for (const key of Object.keys(input)) {
    if (!knownKeys.includes(key)) {
      throw new ConfigError(`${field}.${key}`, `a linux-asi setting: one of ${knownKeys.join(', ')}`, key);
    }
  }
  const out: Record<string, unknown> = { ...input };
  const oneOf = <T>(key: string, accepted: readonly T[]) => {
    const setting = input[key];
    if (setting !== undefined && !accepted.includes(setting as T)) {
      throw new ConfigError(
        `${field}.${key}`,
        `one of ${accepted.map((choice) => JSON.stringify(choice)).join(', ')}`,
        describeGot(setting),
      );
    }
  };
  oneOf<SiblingProtocol>('siblingProtocol', siblingProtocols);
  oneOf<ContextSwitchExit>('exitOn', contextSwitchExits);
  oneOf<boolean>('stibp', [true, false]);
  oneOf<boolean>('ephmap', [true, false]);
  oneOf<boolean>('ibpbOnExit', [true, false]);
  if (input.cpuBugs !== undefined) {
    const accepted = "the CPU's bugs: { l1tf: boolean, mds: boolean } (Sapphire Rapids has neither)";
    const bugs = checkObject(input.cpuBugs, `${field}.cpuBugs`, accepted);
    for (const key of Object.keys(bugs)) {
      if (key !== 'l1tf' && key !== 'mds') throw new ConfigError(`${field}.cpuBugs.${key}`, accepted, key);
    }
    for (const key of ['l1tf', 'mds']) {
      if (typeof bugs[key] !== 'boolean')
        throw new ConfigError(`${field}.cpuBugs.${key}`, accepted, describeGot(bugs[key]));
    }
  }
  if (input.classPolicies !== undefined) {
    const classes = checkObject(
      input.classPolicies,
      `${field}.classPolicies`,
      `taint policies by class: an object of ${asiClasses.join(', ')} (each optional; see defineTaintPolicy)`,
    );
    const policies: Partial<Record<AsiClass, TaintPolicy>> = {};
    for (const [asiClass, policy] of Object.entries(classes)) {
      if (!(asiClasses as readonly string[]).includes(asiClass)) {
        throw new ConfigError(
          `${field}.classPolicies.${asiClass}`,
          `an ASI class: one of ${asiClasses.join(', ')}`,
          asiClass,
        );
      }
      if (policy === undefined) continue;
      policies[asiClass as AsiClass] = parseTaintPolicy(policy, `${field}.classPolicies.${asiClass}`);
    }
    out.classPolicies = policies;
  }
  if (input.plantedFaults !== undefined) {
    const faults = input.plantedFaults;
    const accepted = `a list of planted faults, each one of ${plantedFaultNames.join(', ')} (real policies plant none)`;
    if (!Array.isArray(faults))
      throw new ConfigError(`${field}.plantedFaults`, accepted, describeGot(faults));
    faults.forEach((fault, index) => {
      if (!(plantedFaultNames as readonly unknown[]).includes(fault)) {
        throw new ConfigError(`${field}.plantedFaults[${index}]`, accepted, describeGot(fault));
      }
    });
  }
  return out as LinuxAsiSettingsInput;
}
