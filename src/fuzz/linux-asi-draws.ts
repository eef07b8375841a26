import fc from 'fast-check';
import { assert } from '../assert.js';
import { kernelEntryCatalogue } from '../cpu/exits.js';
import { type MixClass, mixClasses } from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
import type { SiblingProtocol } from '../linux-asi/settings.js';
import { parseLinuxAsiSettingsInput, type TaintName } from '../linux-asi/settings-input.js';
import { type ContextSwitchExit, contextSwitchExits } from '../linux-asi/state.js';
import {
  type AsiClass,
  asiClasses,
  postedClassPolicies,
  type TaintPolicy,
  taintGuestData,
  taintNames,
  taintsAll,
  taintsControlMask,
  taintsDataMask,
} from '../linux-asi/taints.js';
import { definePolicy, type Policy } from '../policy/policy.js';
import { isUserPolicy } from '../policy/policy-module.js';
import { runsUserClass } from '../policy/user-class.js';
import type { FuzzCase } from './fuzz-case.js';
import type { FuzzLimits } from './limits.js';

/**
 * What the fuzzer draws for today's Linux ASI (issue 22 item 6), on top of a whole case
 * (arbitraries.ts), for a policy that carries `linuxAsi` settings:
 *
 * - **its settings**, as data in the case (`FuzzCase.linuxAsi`, so a replay file carries them; never
 *   code): the sibling protocol (among the safe ones, kick-and-wait and stun, for a policy meant to be
 *   safe; an unsafe protocol is kept as it is), `exitOn` (every-switch, upstream; mm-switch, Google's),
 *   and the class taint policies: supersets of the posted ones (more IBPBs and flushes, never fewer),
 *   drawn only for a policy whose taint policies are the posted ones. A policy with taint policies of
 *   its own (a planted bug's) and a user's module are fuzzed as given: drawing over them could only hide
 *   what they do.
 * - **interrupt re-entry points**: pairs of injected vectors on one hyperthread, the second a few
 *   thousand cycles after the first, so that it lands inside the first one's handler: an NMI inside an
 *   IRQ exit's handler (asi_intr_enter at depth 1: the nested NMI of issue 22's planted bug), an IRQ
 *   inside an NMI's, an NMI inside an NMI's. Single injections (arbitraries.ts) land in the guest (the
 *   critical section) or in a handler as they fall.
 * - **context switches**: HLT exits in the mix (a halt switches to the idle task and the wake switches
 *   back: state.ts `context-switch`), with the `exitOn` drawn above deciding whether they leave ASI.
 *
 * - **the class** (`drawnClassesOf`): for a policy that may run a user mix (policy/user-class.ts: the
 *   linux-asi family and `none`, its baseline), `kvm` (the case as drawn) or `user`: every vCPU thread
 *   runs a host process whose mix is a drawn weighting over the kernel-entry catalogue's keys
 *   (cpu/exits.ts `kernelEntryCatalogue`) with its own user-mode interval between entries
 *   (`withUserClass`), as data in the case (`workload.mix.class`).
 *
 * Drawn after the rest of the case, so a policy without `linuxAsi` (other than `none`) draws exactly the
 * cases it drew before, and a linux-asi policy the same base case plus these (`none`: plus the class
 * only). Every part shrinks back to "not drawn" (the policy's own settings, no pairs, no added HLT, the
 * kvm class).
 */

/** The protocols a policy meant to be safe may run (settings.ts: ipi-only leaves a window, none is upstream). */
export const safeSiblingProtocols: readonly SiblingProtocol[] = ['kick-and-wait', 'stun'];

/**
 * Which settings of a policy the fuzzer draws (null from `linuxAsiDrawsOf`: the policy has no linuxAsi).
 * A setting is drawn as one of the other values listed, or not at all (the policy's own value, which
 * is what a shrink goes back to): a case records only settings that differ from the policy's.
 */
export interface LinuxAsiDraws {
  /** Other protocols drawn among, or null: the policy's own. */
  readonly siblingProtocols: readonly SiblingProtocol[] | null;
  /** Other exitOn values drawn among, or null: the policy's own. */
  readonly exitOn: readonly ContextSwitchExit[] | null;
  /** Supersets of the posted class policies. */
  readonly taintPolicies: boolean;
  /**
   * Whether the injection pairs and HLTs are drawn: for every policy with `linuxAsi`; not for `none`,
   * which draws only the class (its cases stay the base case otherwise).
   */
  readonly pairsAndHalts: boolean;
  /** The classes a case may run (`drawnClassesOf`): `kvm` always, `user` where the policy runs it. */
  readonly classes: readonly MixClass[];
}

function samePolicies(
  a: Readonly<Record<AsiClass, TaintPolicy>>,
  b: Readonly<Record<AsiClass, TaintPolicy>>,
) {
  return asiClasses.every(
    (asiClass) =>
      a[asiClass].preventControl === b[asiClass].preventControl &&
      a[asiClass].protectData === b[asiClass].protectData &&
      a[asiClass].set === b[asiClass].set,
  );
}

/**
 * What the fuzzer draws for `policy` on top of the base case: null for a policy that neither carries
 * `linuxAsi` nor runs a user mix (every 2019 policy and mitigation: they draw the base case alone).
 */
export function linuxAsiDrawsOf(policy: Policy): LinuxAsiDraws | null {
  const settings = policy.linuxAsi;
  const classes = drawnClassesOf(policy);
  if (settings === undefined) {
    // `none`: the user class's baseline (the process unprotected) draws the class, nothing else.
    if (classes.length === 1) return null;
    return { siblingProtocols: null, exitOn: null, taintPolicies: false, pairsAndHalts: false, classes };
  }
  // A user's module: its hooks are its protocol and its taint policies are what it tests.
  if (isUserPolicy(policy))
    return { siblingProtocols: null, exitOn: null, taintPolicies: false, pairsAndHalts: true, classes };
  const own = settings.siblingProtocol;
  return {
    siblingProtocols: safeSiblingProtocols.includes(own)
      ? safeSiblingProtocols.filter((protocol) => protocol !== own)
      : null,
    exitOn: contextSwitchExits.filter((exitOn) => exitOn !== settings.exitOn),
    taintPolicies: samePolicies(settings.classPolicies, postedClassPolicies),
    pairsAndHalts: true,
    classes,
  };
}

/**
 * The classes a case of `policy` may run: `kvm` (vCPUs) always, and `user` (host processes) for a
 * policy that runs a user mix (policy/user-class.ts `runsUserClass`: `none` and every policy with
 * `linuxAsi`; the 2019 RFC and the VM-entry mitigations have no userspace class and are refused one).
 */
export function drawnClassesOf(policy: Policy): readonly MixClass[] {
  return runsUserClass(policy) ? mixClasses : ['kvm'];
}

/** A class policy in a case: taint names (readable in a replay file), as defineTaintPolicy takes them. */
export interface FuzzTaintPolicy {
  preventControl: TaintName[];
  protectData: TaintName[];
  set: TaintName[];
}

/** The drawn settings a case carries (`FuzzCase.linuxAsi`): each absent field is the policy's own. */
export interface FuzzLinuxAsi {
  siblingProtocol?: SiblingProtocol;
  exitOn?: ContextSwitchExit;
  classPolicies?: Partial<Record<AsiClass, FuzzTaintPolicy>>;
}

/** The raw draws (`linuxAsiExtrasArbitrary`), made concrete by `withLinuxAsiExtras`. */
export interface LinuxAsiExtras {
  siblingProtocol: SiblingProtocol | undefined;
  exitOn: ContextSwitchExit | undefined;
  /** Bits added to each posted class policy (0: none), or undefined: the posted ones. */
  extraTaints: Record<AsiClass, TaintPolicy> | undefined;
  /** Injection pairs: `inner` arrives `delayCycles` after `outer`, on the same hyperthread. */
  nested: { thread: number; atCycles: number; outer: Vector; inner: Vector; delayCycles: number }[];
  /** Weight of an added HLT entry in the mix (0: none). */
  haltWeight: number;
}

type Vector = 'nmi' | 'mc' | 'irq';
const vectors: readonly Vector[] = ['nmi', 'mc', 'irq'];

/** The bits a drawn superset may add to each field (taint-policy rules: settings-input.ts). */
const extraBits = {
  preventControl: taintsControlMask,
  protectData: taintsDataMask | taintGuestData,
  set: taintsAll,
} as const;

function extraTaintsArbitrary(): fc.Arbitrary<TaintPolicy> {
  const bits = (mask: number) => fc.integer({ min: 0, max: taintsAll }).map((drawn) => drawn & mask);
  return fc.record({
    preventControl: bits(extraBits.preventControl),
    protectData: bits(extraBits.protectData),
    set: bits(extraBits.set),
  });
}

export function linuxAsiExtrasArbitrary(
  draws: LinuxAsiDraws,
  limits: FuzzLimits,
): fc.Arbitrary<LinuxAsiExtras> {
  const maybe = <T>(values: readonly T[] | null): fc.Arbitrary<T | undefined> =>
    values === null
      ? fc.constant(undefined)
      : fc.option(fc.constantFrom(...values), { nil: undefined, freq: 2 });
  const threadsMax = limits.coresMax * limits.smtMax;
  return fc.record({
    // Key order is shrink order: the pairs first (fewer injected events), then the settings.
    nested: fc.array(
      fc.noShrink(
        fc.record({
          thread: fc.nat({ max: threadsMax - 1 }),
          atCycles: fc.integer({ min: 0, max: limits.injectionAtCyclesMax }),
          outer: fc.constantFrom(...vectors),
          inner: fc.constantFrom(...vectors),
          delayCycles: fc.integer({ min: 1, max: limits.nestedInjectionDelayCyclesMax }),
        }),
      ),
      { maxLength: limits.nestedInjectionPairsMax },
    ),
    haltWeight: fc.option(fc.noShrink(fc.integer({ min: 1, max: 50 })), { nil: 0, freq: 2 }),
    siblingProtocol: maybe(draws.siblingProtocols),
    exitOn: maybe(draws.exitOn),
    extraTaints: draws.taintPolicies
      ? fc.option(fc.record({ kvm: extraTaintsArbitrary(), user: extraTaintsArbitrary() }), {
          nil: undefined,
          freq: 2,
        })
      : fc.constant(undefined),
  });
}

function taintNamesOf(bits: number): TaintName[] {
  return taintNames.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name as TaintName);
}

/** The mix key of the HLT exit (cpu/exits.ts): a halt and its wake are the context switches drawn. */
export const haltMixKey = 'HLT:halt';

/** The case with the extras in: settings as data, pairs among the injections, HLT in the mix. */
export function withLinuxAsiExtras(fuzzCase: FuzzCase, extras: LinuxAsiExtras): FuzzCase {
  const pinned = fuzzCase.machine.vms.flatMap((vm) => vm.pin).sort((a, b) => a - b);
  const injections = [...fuzzCase.workload.injections];
  for (const pair of extras.nested) {
    const thread = pinned[pair.thread % pinned.length];
    injections.push({ thread, atCycles: pair.atCycles, vector: pair.outer });
    injections.push({ thread, atCycles: pair.atCycles + pair.delayCycles, vector: pair.inner });
  }
  injections.sort((a, b) => a.atCycles - b.atCycles || a.thread - b.thread);
  const weights = { ...fuzzCase.workload.mix.weights };
  if (extras.haltWeight > 0) weights[haltMixKey] = (weights[haltMixKey] ?? 0) + extras.haltWeight;
  const linuxAsi: FuzzLinuxAsi = {};
  if (extras.siblingProtocol !== undefined) linuxAsi.siblingProtocol = extras.siblingProtocol;
  if (extras.exitOn !== undefined) linuxAsi.exitOn = extras.exitOn;
  if (extras.extraTaints !== undefined) {
    const classPolicies: Partial<Record<AsiClass, FuzzTaintPolicy>> = {};
    for (const asiClass of asiClasses) {
      const posted = postedClassPolicies[asiClass];
      const extra = extras.extraTaints[asiClass];
      if (extra.preventControl === 0 && extra.protectData === 0 && extra.set === 0) continue;
      classPolicies[asiClass] = {
        preventControl: taintNamesOf(posted.preventControl | extra.preventControl),
        protectData: taintNamesOf(posted.protectData | extra.protectData),
        set: taintNamesOf(posted.set | extra.set),
      };
    }
    if (Object.keys(classPolicies).length > 0) linuxAsi.classPolicies = classPolicies;
  }
  return {
    ...fuzzCase,
    workload: { ...fuzzCase.workload, mix: { ...fuzzCase.workload.mix, weights }, injections },
    ...(Object.keys(linuxAsi).length > 0 ? { linuxAsi } : {}),
  };
}

/** Mix keys of a user-class case: every kernel entry's variants (cpu/exits.ts `kernelEntryCatalogue`). */
export const userMixKeys: readonly string[] = kernelEntryCatalogue.flatMap((reason) =>
  reason.variants.map((variant) => `${reason.name}:${variant.name}`),
);

/** The drawn user class (`asiClassArbitrary`): undefined is the kvm class, the case as drawn. */
export interface UserClassDraw {
  /** (kernel entry key, weight) pairs; a key drawn twice adds up. */
  weights: [string, number][];
  /** User-mode cycles between two kernel entries (`workload.exitIntervalCycles`). */
  exitIntervalCycles: number;
}

/** Steps of the log-uniform interval draw (1,000: each step ~0.8% apart over 100..250,000). */
const intervalSteps = 1000;

/**
 * The class of a case: kvm (undefined, what a shrink goes back to) or a user mix, half the time each
 * for a policy that runs both. The weights are 1..100 each (kernel-build's entries span 4,297 to 185 a
 * CPU-second, a ratio of 23), over 1 to all the kernel entries: one `read:tmpfs-page-cache` entry is
 * fio-randread-tmpfs's page-cache storm, faults with a `futex:block` are kernel-build's shape. The
 * interval (`userExitIntervalCyclesMin..Max`, log-uniform) spans FIO's storm to a kernel build's pace.
 */
export function asiClassArbitrary(
  draws: LinuxAsiDraws,
  limits: FuzzLimits,
): fc.Arbitrary<UserClassDraw | undefined> {
  if (!draws.classes.includes('user')) return fc.constant(undefined);
  const low = limits.userExitIntervalCyclesMin;
  const ratio = limits.userExitIntervalCyclesMax / low;
  return fc.option(
    fc.record({
      weights: fc.array(
        fc.noShrink(fc.tuple(fc.constantFrom(...userMixKeys), fc.integer({ min: 1, max: 100 }))),
        { minLength: 1, maxLength: userMixKeys.length },
      ),
      exitIntervalCycles: fc
        .noShrink(fc.integer({ min: 0, max: intervalSteps }))
        .map((step) => Math.round(low * ratio ** (step / intervalSteps))),
    }),
    { nil: undefined, freq: 2 },
  );
}

/** The mix name of a user-class case (a kvm case's is `fuzz`). */
export const userFuzzMixName = 'fuzz-user';

/**
 * The case with every vCPU thread running a host process (the user class, cpu/mixes.ts `class: 'user'`):
 * its mix is the drawn weighting over kernel entries, with the drawn interval. What a process cannot
 * have is made consistent here, as arbitraries.ts `concreteCase` does for the rest:
 * - no confidential VM (a host process has no SEV-SNP memory: no conversions, no hostile VMM);
 * - no generated handlers (workload.handlers extend the VM exit reasons only, which a user mix may not
 *   name: cpu/mixes.ts `checkKeysOfClass`), and no VM exit key in the mix (the kick exit, the conversion
 *   keys and the added HLT included: a process's context switch is its `futex:block` entry).
 * The machine, injections, interrupt clocks, costs, run, choices and drawn linux-asi settings stay.
 */
export function withUserClass(fuzzCase: FuzzCase, draw: UserClassDraw | undefined): FuzzCase {
  if (draw === undefined) return fuzzCase;
  const weights: Record<string, number> = {};
  for (const [key, weight] of draw.weights) weights[key] = (weights[key] ?? 0) + weight;
  const { handlers: _handlers, ...workload } = fuzzCase.workload;
  return {
    ...fuzzCase,
    machine: {
      ...fuzzCase.machine,
      vms: fuzzCase.machine.vms.map((vm) => ({ ...vm, confidential: false })),
    },
    workload: {
      ...workload,
      mix: {
        name: userFuzzMixName,
        class: 'user',
        description: 'host processes (the user class), generated by the fuzzer',
        source: 'fast-check',
        weights,
      },
      exitIntervalCycles: draw.exitIntervalCycles,
      ...(workload.confidential === undefined
        ? {}
        : { confidential: { ...workload.confidential, hostileVmm: false } }),
    },
  };
}

/**
 * The policy a case runs: `policy` with the case's drawn linux-asi settings (checked as a module's are,
 * so a hand-edited replay file gets a ConfigError naming `case.linuxAsi.<field>`). A drawn sibling
 * protocol brings its own hooks (definePolicy: sibling-protocols.ts); it is refused for a policy whose
 * hooks are a user's.
 */
export function policyForCase(policy: Policy, fuzzCase: FuzzCase, source = 'case'): Policy {
  const drawn = fuzzCase.linuxAsi;
  if (drawn === undefined) return policy;
  const field = `${source}.linuxAsi`;
  const settings = policy.linuxAsi;
  if (settings === undefined) {
    throw new ConfigError(
      field,
      `absent: policy ${policy.name} is not today's Linux ASI (it has no linuxAsi)`,
    );
  }
  const parsed = parseLinuxAsiSettingsInput(drawn, field);
  const protocolChanges =
    parsed.siblingProtocol !== undefined && parsed.siblingProtocol !== settings.siblingProtocol;
  if (protocolChanges && isUserPolicy(policy)) {
    throw new ConfigError(
      `${field}.siblingProtocol`,
      `absent: policy ${policy.name}'s hooks are its own (a module), so its protocol is never drawn`,
      parsed.siblingProtocol,
    );
  }
  const linuxAsi = {
    ...settings,
    ...parsed,
    classPolicies: { ...settings.classPolicies, ...parsed.classPolicies },
  };
  // Another protocol: its hooks and stun, not the policy's (a built-in's are its protocol's).
  const variant = protocolChanges
    ? definePolicy({
        name: policy.name,
        description: policy.description,
        usesAsi: policy.usesAsi,
        smt: policy.smt,
        ...(policy.safe === undefined ? {} : { safe: policy.safe }),
        plantedBugs: policy.plantedBugs,
        linuxAsi,
      })
    : definePolicy({ ...policy, linuxAsi });
  assert(variant.linuxAsi !== undefined, 'a linux-asi variant keeps its settings');
  return variant;
}
