import { assert, unreachable } from '../assert.js';
import {
  type AsiClass,
  asiClasses,
  assertTaintPolicy,
  type CpuBugs,
  cpuBugsL1tfAndMds,
  enterTaints,
  exitTaints,
  postedClassPolicies,
  switchMmTaints,
  type TaintPolicy,
  taintKernelData,
} from './taints.js';

/**
 * Today's Linux ASI as a state machine: one logical CPU and the task running on it. A caller (a
 * hyperthread's isolation design, cpu/linux-asi-isolation.ts) raises events and executes the actions
 * returned; this module decides, it never executes. Each transition cites its source; docs/linux-asi.md lists them all.
 *
 * Sources: RFC v2 <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com> and the asi branch's
 * arch/x86/mm/asi.c / arch/x86/include/asm/asi.h (asi_enter, __asi_enter, asi_relax, asi_exit,
 * asi_intr_enter, asi_intr_exit, asi_handle_switch_mm); the 2022 RFC
 * <20220223052223.1202152-1-junaids@google.com> (patch 35/47: asi_exit() on a page fault, then retry;
 * patch 03/47: leave ASI when entering the scheduler); "ASI is fast again"
 * <20250812173109.295750-1-jackmanb@google.com> (Google's internal version exits only on an mm switch).
 *
 * The fields, as the kernel keeps them:
 * - `current`: curr_asi, per CPU: the restricted space CR3 holds now (null: the unrestricted one);
 * - `target`: the task's asi_state.target: the domain to be in while the task runs in its critical
 *   section (between asi_enter and asi_relax); null when relaxed;
 * - `interruptDepth`: how many interrupts/exceptions/NMIs are nested on the task. The kernel counts
 *   only those that arrive while tense (asi_intr_enter); since no asi_enter or asi_relax may run in an
 *   interrupt, "tense at the outermost return" is the same as "target set", so one counter serves;
 * - `taints`: asi_taints, per CPU (taints.ts).
 */

export type ContextSwitchExit = 'every-switch' | 'mm-switch';
export const contextSwitchExits: readonly ContextSwitchExit[] = ['every-switch', 'mm-switch'];

/** Why ASI left the restricted space: the result fields `asiExits { pageFault, interrupt, contextSwitch }`. */
export type AsiExitReason = 'page-fault' | 'interrupt' | 'context-switch' | 'explicit';

/**
 * Bugs a test can plant to show the checks can fail (DESIGN.md: "proves the monitor can fail"). The
 * third of issue 22's bugs, "a taint policy that skips IBPB for a guest-to-user switch", needs no switch
 * here: it is a user class policy without GUEST_CONTROL in `preventControl`.
 */
export type PlantedFault = 'exit-skips-kernel-data-taint' | 'nested-nmi-reentry-skips-data-flush';

/**
 * Dynamic ASIDs per CPU: TLB_NR_DYN_ASIDS = 6 (arch/x86/include/asm/tlbflush.h). An mm here is one of
 * those slots, so its kernel PCID is kern_pcid(asid) = asid + 1.
 */
export const mmCountMax = 6;

/**
 * Restricted spaces have PCIDs of their own: asi_pcid(asi, asid) puts the class (plus one) above the
 * mm's kernel PCID (arch/x86/mm/tlb.c on the asi branch, `kern_pcid(asid) | ((class + 1) <<
 * X86_CR3_ASI_PCID_BITS_SHIFT)`). The shift's value was not in the sources read; 8 keeps the class
 * bits clear of the six ASIDs (bits 0-2) and of the PTI user bit (X86_CR3_PTI_PCID_USER_BIT = 11).
 */
export const asiPcidShift = 8;

/** Interrupts nest: IRQ, NMI, #MC, #DB, #PF inside them. A bound, so a runaway caller is caught. */
export const interruptDepthMax = 8;

export interface AsiDomain {
  readonly asiClass: AsiClass;
  readonly mm: number;
}

export interface AsiCpuState {
  readonly mm: number;
  readonly current: AsiDomain | null;
  readonly target: AsiDomain | null;
  readonly interruptDepth: number;
  /** An NMI arrived while another interrupt was being handled, since the depth was last 0. */
  readonly nmiNested: boolean;
  readonly taints: number;
}

export type AsiInterruptSource = 'irq' | 'nmi' | 'exception';

export type AsiEvent =
  /** asi_enter(&current->mm->asi[class]): KVM just before VM entry, the user class on return to user. */
  | { readonly kind: 'enter'; readonly asiClass: AsiClass }
  /** asi_relax(): KVM just after the VM exit, the user class on syscall entry. */
  | { readonly kind: 'relax' }
  /** asi_exit() called directly: end of KVM_RUN (RFC v2 patch 21/29), ASI_EXIT_MISC/USER_RET. */
  | { readonly kind: 'exit' }
  /** An access to an address the restricted space does not map (a sensitive page). */
  | { readonly kind: 'page-fault' }
  /** Entry of an interrupt, NMI or exception (asi_intr_enter). */
  | { readonly kind: 'interrupt'; readonly source: AsiInterruptSource }
  /** Return from one (asi_intr_exit); the outermost return re-enters the target. */
  | { readonly kind: 'interrupt-return' }
  /** The scheduler switches to a task of `nextMm` (the same mm: another thread of the process). */
  | { readonly kind: 'context-switch'; readonly nextMm: number };

export type AsiEventKind = AsiEvent['kind'];

export type AsiAction =
  | { readonly kind: 'ibpb' }
  | { readonly kind: 'rsb-fill' }
  | { readonly kind: 'l1d-flush' }
  | { readonly kind: 'buffer-clear' }
  | { readonly kind: 'cr3'; readonly asiClass: AsiClass | null; readonly mm: number; readonly pcid: number }
  /** The faulting access is retried, now in the unrestricted space (2022 RFC patch 35/47). */
  | { readonly kind: 'retry-access' };

/** A typed "not allowed" (STYLE.md, Firecracker): the event, the state it came in, and why. */
export interface AsiRejection {
  readonly event: AsiEventKind;
  readonly state: AsiStateName;
  readonly reason: string;
}

export type AsiStep =
  | {
      readonly ok: true;
      readonly state: AsiCpuState;
      readonly actions: readonly AsiAction[];
      /** Set when this step left a restricted space; null when it did not. */
      readonly exitReason: AsiExitReason | null;
      /** The outermost interrupt return (or a page fault's own return) entered the target again. */
      readonly reentered: boolean;
    }
  | { readonly ok: false; readonly state: AsiCpuState; readonly rejection: AsiRejection };

export interface AsiMachineConfig {
  /** Upstream exits ASI on every context switch; Google's internal version only on an mm switch. */
  readonly exitOn: ContextSwitchExit;
  readonly policies: Readonly<Record<AsiClass, TaintPolicy>>;
  readonly bugs: CpuBugs;
  readonly plantedFaults: readonly PlantedFault[];
}

export const defaultAsiMachineConfig: AsiMachineConfig = Object.freeze({
  exitOn: 'every-switch',
  policies: postedClassPolicies,
  bugs: cpuBugsL1tfAndMds,
  plantedFaults: Object.freeze([]) as readonly PlantedFault[],
});

/**
 * The named states. Which one holds follows from the fields; `stateName` derives it.
 * - `unrestricted`: CR3 holds the unrestricted (full kernel) space; no critical section.
 * - `restricted-relaxed`: CR3 still holds a restricted space after asi_relax (ASI stays there until
 *   something needs sensitive data: "asi_relax() ends the critical section without switching").
 * - `critical`: between asi_enter and asi_relax, in the target's restricted space, no interrupt.
 * - `interrupted-restricted` / `interrupted-unrestricted`: one or more interrupts are being handled,
 *   in a restricted space or (after a handler's page fault exited) in the unrestricted one.
 */
export type AsiStateName =
  | 'unrestricted'
  | 'restricted-relaxed'
  | 'critical'
  | 'interrupted-restricted'
  | 'interrupted-unrestricted';

export function stateName(state: AsiCpuState): AsiStateName {
  if (state.interruptDepth > 0) return state.current ? 'interrupted-restricted' : 'interrupted-unrestricted';
  if (state.target) return 'critical';
  return state.current ? 'restricted-relaxed' : 'unrestricted';
}

/**
 * The transition table: for each state, the events it accepts, each with its source. An event missing
 * from a state's row is rejected with the reason in `rejections`. The effect of each accepted event is
 * in `step` below (one function per event).
 *
 * | state \ event            | enter | relax | exit | page-fault | interrupt | interrupt-return | context-switch |
 * |--------------------------|-------|-------|------|------------|-----------|------------------|----------------|
 * | unrestricted             |  yes  | no-op | no-op|     -      |    yes    |        -         |      yes       |
 * | restricted-relaxed       |  yes  | no-op | yes  | exit+retry |    yes    |        -         |      yes       |
 * | critical                 |   -   |  yes  |  -   | exit+retry+re-enter | yes |       -         |       -        |
 * | interrupted-restricted   |   -   |   -   | yes  | exit+retry |   nest    |  pop (re-enter)  |       -        |
 * | interrupted-unrestricted |   -   |   -   | no-op|     -      |   nest    |  pop (re-enter)  |       -        |
 */
export const acceptedEvents: Readonly<Record<AsiStateName, readonly AsiEventKind[]>> = Object.freeze({
  unrestricted: ['enter', 'relax', 'exit', 'interrupt', 'context-switch'],
  'restricted-relaxed': ['enter', 'relax', 'exit', 'page-fault', 'interrupt', 'context-switch'],
  critical: ['relax', 'page-fault', 'interrupt'],
  'interrupted-restricted': ['exit', 'page-fault', 'interrupt', 'interrupt-return'],
  'interrupted-unrestricted': ['exit', 'interrupt', 'interrupt-return'],
});

/** Why an event is refused where it is refused. */
const rejections: Readonly<Record<AsiEventKind, string>> = Object.freeze({
  enter:
    'asi_enter needs a relaxed task outside interrupts: "there must be an asi_relax() between any two ' +
    'asi_enter()s" (RFC v2 patch 25/29); "This can\'t be from an interrupt or exception handler" (asi.h)',
  relax: 'asi_relax may not run inside an interrupt (VM_WARN_ON_ONCE(asi_intr_nest_depth()), asi.c)',
  exit: 'asi_exit inside the critical section is a bug (WARN_ON_ONCE(asi_in_critical_section()), asi.c)',
  'page-fault': 'nothing faults for ASI in the unrestricted space: it maps everything',
  interrupt: 'interrupts nest at most interruptDepthMax deep',
  'interrupt-return': 'no interrupt is being handled',
  'context-switch':
    'no context switch in the critical section (__asi_enter: VM_BUG_ON(preemptible())) or from an ' +
    'interrupt (not modelled: the caller switches tasks from a relaxed state)',
});

export function initialAsiState(mm: number): AsiCpuState {
  assertMm(mm);
  return { mm, current: null, target: null, interruptDepth: 0, nmiNested: false, taints: taintKernelData };
}

/** The PCID CR3 gets for `mm` in the unrestricted space (asiClass null) or a class's restricted space. */
export function pcidOf(mm: number, asiClass: AsiClass | null): number {
  assertMm(mm);
  const kernelPcid = mm + 1;
  return asiClass === null ? kernelPcid : kernelPcid | ((asiClasses.indexOf(asiClass) + 1) << asiPcidShift);
}

export function assertAsiMachineConfig(config: AsiMachineConfig): void {
  assert(contextSwitchExits.includes(config.exitOn), `exitOn: ${String(config.exitOn)}`);
  for (const asiClass of asiClasses) assertTaintPolicy(config.policies[asiClass], `policies.${asiClass}`);
}

/** One event on one CPU: the next state and the actions the caller must take, in order. */
export function step(state: AsiCpuState, event: AsiEvent, config: AsiMachineConfig): AsiStep {
  assertState(state);
  const name = stateName(state);
  if (!acceptedEvents[name].includes(event.kind) || !withinBounds(state, event)) {
    return {
      ok: false,
      state,
      rejection: { event: event.kind, state: name, reason: rejections[event.kind] },
    };
  }
  const out = new StepBuilder(state);
  switch (event.kind) {
    case 'enter':
      enter(out, event.asiClass, config);
      break;
    case 'relax':
      // asi_relax(): `asi_set_target(current, NULL)`; no address space change.
      out.state = { ...out.state, target: null };
      break;
    case 'exit':
      exit(out, state.interruptDepth > 0 ? 'interrupt' : 'explicit', config);
      break;
    case 'page-fault':
      pageFault(out, config);
      break;
    case 'interrupt':
      // asi_intr_enter(): the depth grows; nothing is switched (handlers fault their way out).
      out.state = {
        ...out.state,
        interruptDepth: state.interruptDepth + 1,
        nmiNested: state.nmiNested || (event.source === 'nmi' && state.interruptDepth > 0),
      };
      break;
    case 'interrupt-return':
      interruptReturn(out, config);
      break;
    case 'context-switch':
      contextSwitch(out, event.nextMm, config);
      break;
    default:
      unreachable(event, 'ASI event');
  }
  assertState(out.state);
  return out.result();
}

function withinBounds(state: AsiCpuState, event: AsiEvent): boolean {
  if (event.kind === 'interrupt') return state.interruptDepth < interruptDepthMax;
  if (event.kind === 'context-switch') assertMm(event.nextMm);
  if (event.kind === 'enter')
    assert(asiClasses.includes(event.asiClass), `unknown ASI class ${event.asiClass}`);
  return true;
}

/** Accumulates one step's state and actions. */
class StepBuilder {
  readonly actions: AsiAction[] = [];
  exitReason: AsiExitReason | null = null;
  reentered = false;
  constructor(public state: AsiCpuState) {}

  result(): AsiStep {
    return {
      ok: true,
      state: this.state,
      actions: this.actions,
      exitReason: this.exitReason,
      reentered: this.reentered,
    };
  }
}

/** asi_enter(): set the task's target, then __asi_enter(). */
function enter(out: StepBuilder, asiClass: AsiClass, config: AsiMachineConfig): void {
  assert(
    out.state.target === null && out.state.interruptDepth === 0,
    'enter from a tense or interrupted task',
  );
  out.state = { ...out.state, target: { asiClass, mm: out.state.mm } };
  switchToTarget(out, config, false);
}

/**
 * __asi_enter(): nothing when the target is already loaded ("if (!target || target == curr_asi)
 * return"). Otherwise, in its order: curr_asi = target; maybe_flush_control (IBPB + RSB fill); CR3 to
 * the target with its own PCID; maybe_flush_data (L1D flush, buffer clear); taints |= policy->set.
 */
function switchToTarget(out: StepBuilder, config: AsiMachineConfig, skipDataFlush: boolean): void {
  const target = out.state.target;
  assert(target !== null, '__asi_enter without a target');
  if (sameDomain(target, out.state.current)) return;
  const policy = config.policies[target.asiClass];
  const transition = enterTaints(out.state.taints, policy, config.bugs);
  if (transition.ibpb) out.actions.push({ kind: 'ibpb' });
  if (transition.rsbFill) out.actions.push({ kind: 'rsb-fill' });
  out.actions.push({
    kind: 'cr3',
    asiClass: target.asiClass,
    mm: target.mm,
    pcid: pcidOf(target.mm, target.asiClass),
  });
  let taints = transition.taints;
  if (skipDataFlush) {
    // Planted: the control flush and the `set` happen, the data flush and its clearing do not.
    const controlOnly = enterTaints(out.state.taints, { ...policy, protectData: 0 }, config.bugs);
    taints = controlOnly.taints;
  } else {
    if (transition.l1dFlush) out.actions.push({ kind: 'l1d-flush' });
    if (transition.bufferClear) out.actions.push({ kind: 'buffer-clear' });
  }
  out.state = { ...out.state, current: target, taints };
}

/**
 * asi_exit(): nothing when no restricted space is loaded. Otherwise maybe_flush_control(NULL) (IBPB +
 * RSB fill when any control taint is set), taints |= KERNEL_DATA, CR3 to the unrestricted space,
 * curr_asi = NULL. The task's target is left alone: an interrupt's exit is undone on its return.
 */
function exit(out: StepBuilder, reason: AsiExitReason, config: AsiMachineConfig): void {
  if (out.state.current === null) return;
  const transition = exitTaints(out.state.taints);
  if (transition.ibpb) out.actions.push({ kind: 'ibpb' });
  if (transition.rsbFill) out.actions.push({ kind: 'rsb-fill' });
  out.actions.push({ kind: 'cr3', asiClass: null, mm: out.state.mm, pcid: pcidOf(out.state.mm, null) });
  const taints = config.plantedFaults.includes('exit-skips-kernel-data-taint')
    ? transition.taints & ~taintKernelData
    : transition.taints;
  out.state = { ...out.state, current: null, taints };
  out.exitReason = reason;
}

/**
 * A page fault on an address the restricted space does not map (2022 RFC patch 35/47, exc_page_fault:
 * "On a page-fault - do asi_exit(). Then check if now after the exit the address is accessible" and
 * return, so the access is retried). The fault is an exception: in the critical section it nests like
 * an interrupt, so its own return is the outermost one and re-enters the target at once. Inside an
 * interrupt handler the exit is the handler's ("interrupts may touch sensitive data"): counted as an
 * interrupt exit, re-entered on the outermost interrupt return.
 */
function pageFault(out: StepBuilder, config: AsiMachineConfig): void {
  const inCritical = out.state.target !== null && out.state.interruptDepth === 0;
  exit(out, out.state.interruptDepth > 0 ? 'interrupt' : 'page-fault', config);
  out.actions.push({ kind: 'retry-access' });
  if (inCritical) {
    switchToTarget(out, config, false);
    out.reentered = true;
  }
}

/**
 * asi_intr_exit(): the depth drops; at 0, with the task still tense, __asi_enter() re-enters the target
 * ("ASI will re-enter the restricted address space before returning from the outermost
 * exception/interrupt", asi.h), with the flushes the taints call for.
 */
function interruptReturn(out: StepBuilder, config: AsiMachineConfig): void {
  const depth = out.state.interruptDepth - 1;
  const nmiNested = out.state.nmiNested;
  out.state = { ...out.state, interruptDepth: depth, nmiNested: depth === 0 ? false : nmiNested };
  if (depth > 0 || out.state.target === null) return;
  const before = out.state.current;
  const skip = nmiNested && config.plantedFaults.includes('nested-nmi-reentry-skips-data-flush');
  switchToTarget(out, config, skip);
  out.reentered = !sameDomain(before, out.state.current);
}

/**
 * context_switch(): upstream leaves ASI on every switch (2022 RFC patch 03/47 "Switch to unrestricted
 * address space when entering scheduler"; RFC v2 keeps it); Google's internal version "only really
 * need[s] it when switching mms" ("ASI is fast again"). On an mm switch the taints fold into OTHER_MM
 * (asi_handle_switch_mm) and CR3 loads the next mm's unrestricted space.
 */
function contextSwitch(out: StepBuilder, nextMm: number, config: AsiMachineConfig): void {
  assert(out.state.target === null && out.state.interruptDepth === 0, 'context switch from a tense task');
  const mmChanges = nextMm !== out.state.mm;
  if (config.exitOn === 'every-switch' || mmChanges) exit(out, 'context-switch', config);
  if (!mmChanges) return;
  out.actions.push({ kind: 'cr3', asiClass: null, mm: nextMm, pcid: pcidOf(nextMm, null) });
  out.state = { ...out.state, mm: nextMm, taints: switchMmTaints(out.state.taints) };
}

function sameDomain(a: AsiDomain | null, b: AsiDomain | null): boolean {
  if (a === null || b === null) return a === b;
  return a.asiClass === b.asiClass && a.mm === b.mm;
}

function assertMm(mm: number): void {
  assert(Number.isInteger(mm) && mm >= 0 && mm < mmCountMax, `mm must be 0..${mmCountMax - 1}, got ${mm}`);
}

/** The negative space: combinations of fields no transition produces. */
export function assertState(state: AsiCpuState): void {
  assertMm(state.mm);
  assert(
    Number.isInteger(state.interruptDepth) &&
      state.interruptDepth >= 0 &&
      state.interruptDepth <= interruptDepthMax,
    `interruptDepth out of range: ${state.interruptDepth}`,
  );
  assert(state.interruptDepth > 0 || !state.nmiNested, 'nmiNested outside an interrupt');
  if (state.target !== null) assert(state.target.mm === state.mm, 'target belongs to another mm');
  if (state.current !== null) assert(state.current.mm === state.mm, 'current restricted space of another mm');
  if (state.target !== null && state.interruptDepth === 0) {
    assert(sameDomain(state.target, state.current), 'tense outside interrupts but not in the target');
  }
}
