import { assert } from '../assert.js';
import { anySiblingHoldsSecrets, Mode, modeOf } from '../cpu/modes.js';
import { ConfigError } from '../errors.js';
import {
  type LinuxAsiSettings,
  type LinuxAsiSettingsInput,
  linuxAsiSettingsOf,
} from '../linux-asi/settings.js';
import { siblingProtocolHooks } from './sibling-protocols.js';

/**
 * The mitigation policy interface (DESIGN.md "Policies"). A policy decides; the hyperthread state
 * machine (cpu/hyperthread.ts) carries the decisions out. Every hook is a pure decision over what the
 * thread sees (a PolicyView) and the core-state word, so the same policy runs unchanged on the `sim`
 * and `workers` backends and a user can write one as a small module (see `definePolicy`).
 *
 * The hooks, in the order a VM exit meets them:
 *   exit ─ kickOnExit? ─ handler runs in isolation ─ (access misses in kvm:N, or an interrupt, or an
 *   exit to the VMM) ─ kickBeforeFull? ─ waitForSiblingsOut? ─ switch to full ─ kickAfterFull? ─ ...
 *   ─ back to isolated ─ entry barrier (mayEnter, atomic with the entry) ─ flushBeforeEntry ─ VM entry.
 * A kick that reaches a thread in the guest makes it exit (exitOnKick). The planted-bug switches
 * (`plantedBugs`) move or weaken steps of this path; real policies leave them alone.
 */

/** What a policy may look at. Reading it never changes the machine. */
export interface PolicyView {
  readonly thread: number;
  /** Index of this thread in its core (0..smt-1). */
  readonly sibling: number;
  readonly smt: number;
  readonly vmId: number;
  /** Catalogue name of the exit being handled (`HLT`, `MSR_WRITE`, ...). */
  readonly exitReasonName: string;
  /** The core-state word, read atomically now. */
  coreWord(): number;
  /** Lines in this core's L1D and fill buffers that are foreign to this thread's VM. */
  foreignLines(): number;
  /** Since the last VM entry: did this thread switch to full, go to the VMM, take an NMI / #MC / IRQ? */
  readonly switchedToFullSinceEntry: boolean;
  readonly vmmSinceEntry: boolean;
  readonly nmiSinceEntry: boolean;
  readonly interruptSinceEntry: boolean;
  /** Since the last VM entry: did a handler access miss in kvm:N (the switch to full it caused)? */
  readonly faultedSinceEntry: boolean;
  /**
   * KVM's `l1tf_flush_l1d` as `vmx_l1d_flush` (arch/x86/kvm/vmx/vmx.c, `vmentry_l1d_flush=cond`) reads
   * it at VM entry: the vCPU flag or the per-CPU one is set. The vCPU flag is set by `vcpu_run`
   * (arch/x86/kvm/x86.c: every KVM_RUN, so every return from the VMM) and by the handlers that are not
   * confined to the vCPU's own state (`x86_emulate_instruction`, `kvm_write_guest_virt_system`, task
   * switches); the per-CPU one by interrupts and NMIs handled on the way (`kvm_set_cpu_l1tf_flush_l1d`
   * from `irq_enter`, `kvm_before_interrupt`). The model's "not confined" is a handler that touches a
   * region the RFC's kvm:N does not map (Region.inKvmAddressSpace): the same test ASI applies, by page
   * fault. Cleared at every VM entry, as `vmx_l1d_flush` clears both flags.
   */
  readonly l1tfFlushL1d: boolean;
}

/** Bits returned by `flushBeforeEntry`. */
export const Flush = {
  none: 0,
  /** L1D flush (MSR_IA32_FLUSH_CMD or KVM's software fallback). */
  l1d: 1,
  /** VERW: clear fill buffers and other core buffers (MDS). */
  buffers: 2,
} as const;
/** Flush's bits as this module's hooks read them. */
const FlushBits = Flush;

export interface Policy {
  readonly name: string;
  /** One line for `asi-emu policies`. */
  readonly description: string;
  /**
   * true: the policy runs KVM with ASI: an exit lands in the isolated `kvm:N` (the VMCS host CR3), a
   * handler access it does not map faults and switches to `full`, and the thread switches back before
   * VM entry, paying each CR3 write. false: KVM without ASI: every exit is handled in the full kernel
   * address space (mode `full`), with no switch, no ASI fault and no CR3 write for ASI (DESIGN.md "Cost
   * model": baselines pay nothing for ASI). A policy that kicks on exit does so from the exit path
   * first (mode `isolated`: it touches only the vCPU's state), then enters `full`.
   */
  readonly usesAsi: boolean;
  /** false: only sibling 0 of each core runs vCPUs, the others are offline (`nosmt`). */
  readonly smt: boolean;
  /** Set the core's stun flag before kicking and clear it after the flush on the way back in. */
  readonly stun: boolean;
  /**
   * Switches that exist only to plant bugs (policy/planted.ts): every real policy leaves them at their
   * defaults, the correct design. Read the hooks below for what a policy decides.
   */
  readonly plantedBugs: PlantedBugSwitches;
  /**
   * false: the policy is unsafe on purpose (a baseline to measure against, a demonstration), so a
   * broken invariant is what it is for, not a failure: `bench --fail-on-violation` does not hold it to
   * the invariants. Unset: a user's policy is meant to be safe; the built-ins are listed in
   * policy/index.ts `safePolicyNames` (see `meantToBeSafe` there).
   */
  readonly safe?: boolean;
  /**
   * Set: the policy runs today's Linux ASI (RFC v2, policy/linux-asi.ts) instead of the 2019 RFC's
   * isolated/full switch: the hyperthread executes the state machine of src/linux-asi/ (asi_enter before
   * VM entry, asi_relax after the exit, asi_exit on a fault, interrupts that re-enter, context switches)
   * and its taint-decided flushes; the hooks below are then the sibling protocol it composes with.
   */
  readonly linuxAsi?: LinuxAsiSettings;
  kickOnExit(view: PolicyView): boolean;
  kickBeforeFull(view: PolicyView): boolean;
  waitForSiblingsOut(view: PolicyView): boolean;
  kickAfterFull(view: PolicyView): boolean;
  /** Siblings (bit per sibling index) to kick: by default every sibling now in the guest. */
  kickTargets(word: number, view: PolicyView): number;
  /** The condition `waitForSiblingsOut` waits for: by default no sibling in the guest. */
  siblingsOut(word: number, view: PolicyView): boolean;
  flushBeforeEntry(view: PolicyView): number;
  /**
   * The entry barrier, evaluated on the core word atomically with the entry (unless atomicEntry is false).
   * Asked only once every sibling that runs a vCPU has started (cpu/hyperthread.ts `siblingsStarted`):
   * an `offline` sibling in `word` runs none.
   */
  mayEnter(word: number, view: PolicyView): boolean;
  exitOnKick(view: PolicyView): boolean;
}

/**
 * The switches a planted bug turns (issue 21 item 5): each default is the correct design, and each other
 * value a known mistake kept so the monitor and the fuzzer can prove they catch it.
 */
export interface PlantedBugSwitches {
  /** true (correct): check `mayEnter` atomically with the entry. false: check, then enter in a separate step (a race). */
  readonly atomicEntry: boolean;
  /**
   * What the kicker waits for. 'mode' (correct): siblings out of the guest. 'ack': their kick
   * acknowledgement, which a sibling that left on its own never sends (a lost wake-up).
   */
  readonly waitFor: 'mode' | 'ack';
  /**
   * Where `flushBeforeEntry` runs. 'after-barrier' (correct): once the entry is committed.
   * 'before-barrier': before waiting at the barrier, so a sibling can refill the L1D in between.
   */
  readonly flushPoint: 'after-barrier' | 'before-barrier';
}

/** The switches' correct values: what a policy gets for each one it does not set. */
export const plantedBugSwitchesCorrect: PlantedBugSwitches = {
  atomicEntry: true,
  waitFor: 'mode',
  flushPoint: 'after-barrier',
};

/** The switches' names, in the order of their declaration. */
export const plantedBugSwitchNames = Object.keys(
  plantedBugSwitchesCorrect,
) as readonly (keyof PlantedBugSwitches)[];

/**
 * Refuses a definition that sets a planted-bug switch at the top level, where it was before issue 21:
 * the switch would otherwise be ignored without a word. The error names the new place.
 */
export function refuseTopLevelPlantedBugSwitches(definition: object, field: string): void {
  for (const key of plantedBugSwitchNames) {
    if (Object.hasOwn(definition, key)) {
      throw new ConfigError(
        `${field}.${key}`,
        `${key} under plantedBugs: { ${key}: ... } (the switches that exist only for planted bugs moved there: ${plantedBugSwitchNames.join(', ')})`,
        key,
      );
    }
  }
}

/** The members of Policy that are hooks (functions): the keys `policyHookReturns` must list. */
type PolicyHookKey = {
  [K in keyof Policy]-?: Policy[K] extends (...args: never[]) => unknown ? K : never;
}[keyof Policy];

/**
 * The one list of a Policy's hooks (issue 21 item 7), in the order of their declaration (a hook's id
 * elsewhere is its index + 1), with what each must return: a boolean, or a non-negative integer bit
 * mask. The module checks (policy-module.ts) and `definePolicy` read it; `satisfies` makes the compiler
 * refuse a hook added to Policy and not here, or listed here and not in Policy.
 */
export const policyHookReturns = {
  kickOnExit: 'boolean',
  kickBeforeFull: 'boolean',
  waitForSiblingsOut: 'boolean',
  kickAfterFull: 'boolean',
  kickTargets: 'mask',
  siblingsOut: 'boolean',
  flushBeforeEntry: 'mask',
  mayEnter: 'boolean',
  exitOnKick: 'boolean',
} as const satisfies Record<PolicyHookKey, 'boolean' | 'mask'>;
export type PolicyHookName = keyof typeof policyHookReturns;
/** The hooks' names, in the order of their declaration. */
export const policyHookNames = Object.keys(policyHookReturns) as readonly PolicyHookName[];

export type PolicyDefinition = Partial<Omit<Policy, 'plantedBugs' | 'linuxAsi'>> &
  Pick<Policy, 'name' | 'description'> & {
    /** The planted-bug switches to turn; the others keep their correct values. */
    plantedBugs?: Partial<PlantedBugSwitches>;
    /**
     * Today's Linux ASI (Policy.linuxAsi), any field left out at its default (settings.ts
     * `linuxAsiDefaults`). Its sibling protocol's hooks (sibling-protocols.ts) are the policy's unless
     * the definition writes a hook itself.
     */
    linuxAsi?: LinuxAsiSettingsInput;
  };

// ---- building blocks ---------------------------------------------------------------------------------

/** Siblings (bitmask) of `view` whose mode is guest. */
export function siblingsInGuest(word: number, view: PolicyView): number {
  let mask = 0;
  for (let sibling = 0; sibling < view.smt; sibling++) {
    if (sibling !== view.sibling && modeOf(word, sibling) === Mode.guest) mask |= 1 << sibling;
  }
  return mask;
}

/** INV-1 / INV-3 barrier: no sibling holds secrets (full or vmm). */
export function noSiblingHoldsSecrets(word: number, view: PolicyView): boolean {
  return !anySiblingHoldsSecrets(word, view.sibling, view.smt);
}

/** Flush whatever this core holds that is foreign to the VM about to run. */
export function flushIfForeign(view: PolicyView): number {
  return view.foreignLines() > 0 ? FlushBits.l1d | FlushBits.buffers : FlushBits.none;
}

/**
 * The defaults are those of a policy that does nothing extra: no kicks, no flush, no barrier. It uses
 * ASI unless it says `usesAsi: false`: the hooks a user writes (kick before full, wait, barrier) are ASI's
 * protocol, and every user policy written before the setting existed ran its handlers in kvm:N.
 */
export function definePolicy(definition: PolicyDefinition): Policy {
  assert(typeof definition.name === 'string' && definition.name.length > 0, 'a policy needs a name');
  refuseTopLevelPlantedBugSwitches(definition, `policy ${definition.name}`);
  const { linuxAsi: linuxAsiInput, ...settingsAndHooks } = definition;
  const linuxAsi =
    linuxAsiInput === undefined
      ? undefined
      : linuxAsiSettingsOf(linuxAsiInput, `policy ${definition.name}.linuxAsi`);
  const policy: Policy = {
    usesAsi: true,
    smt: true,
    stun: false,
    kickOnExit: () => false,
    kickBeforeFull: () => false,
    waitForSiblingsOut: () => false,
    kickAfterFull: () => false,
    kickTargets: siblingsInGuest,
    siblingsOut: (word, view) => siblingsInGuest(word, view) === 0,
    flushBeforeEntry: () => FlushBits.none,
    mayEnter: () => true,
    exitOnKick: () => true,
    ...(linuxAsi === undefined ? {} : siblingProtocolHooks(linuxAsi.siblingProtocol)),
    ...settingsAndHooks,
    plantedBugs: { ...plantedBugSwitchesCorrect, ...definition.plantedBugs },
    ...(linuxAsi === undefined ? {} : { linuxAsi }),
  };
  for (const hook of policyHookNames) {
    assert(typeof policy[hook] === 'function', `policy ${policy.name}: ${hook} must be a function`);
  }
  assert(typeof policy.usesAsi === 'boolean', `policy ${policy.name}: usesAsi must be a boolean`);
  assert(
    policy.linuxAsi === undefined || policy.usesAsi,
    `policy ${policy.name}: today's Linux ASI (linuxAsi) is ASI (usesAsi: true)`,
  );
  // Without ASI nothing switches to full: a hook run at that switch would never run.
  assert(
    policy.usesAsi || policy.stun === false,
    `policy ${policy.name}: a stun is part of ASI's switch (usesAsi: true)`,
  );
  return policy;
}
