import { assert } from '../assert.js';
import { cacheLineBytes, pageBytes } from '../constants.js';
import { Vector } from '../kick/ipi.js';
import type { AsiAction, AsiEvent, AsiExitReason, AsiStep } from '../linux-asi/state.js';
import { ThreadStat } from '../memory/layout.js';
import { kernelSpace, kvmSpace, vmmSpace } from '../paging/address-space.js';
import type { Tlb } from '../paging/tlb.js';
import { Flush } from '../policy/policy.js';
import type { CostModel } from './costs.js';
import type { CompiledVariant } from './handler-program.js';
import type { IsolationDesign, IsolationHost, IsolationHotPath } from './isolation-design.js';
import type { LinuxAsiCpu } from './linux-asi-cpu.js';
import { Mode } from './modes.js';

/**
 * Today's Linux ASI as an isolation design (issue 22 item 2; isolation-design.ts): Jackman's RFC v2
 * <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>, docs/linux-asi.md "Wiring". The state machine of
 * src/linux-asi/state.ts for this logical CPU (linux-asi-cpu.ts) decides; this file raises its events at
 * the hyperthread's points and executes the actions each step returns, in their order (`execute`): IBPB
 * and RSB fill on the core's predictor, the CR3 write, the L1D flush and the buffer clear.
 *
 * A vCPU's loop, with the events raised in order (state.ts's states in brackets; the mode the sibling
 * protocol reads is `isolated` while the CPU is in the restricted space, `full` out of it):
 *
 *   start       CR3 kernel [unrestricted] ──enter kvm──▶ [critical] ──mode isolated──▶ entry barrier ──▶ guest
 *   exit        guest ──VM exit (CR3 kvm:N)──▶ relax ──▶ [restricted-relaxed]
 *               or, for a host interrupt, NMI or #MC: interrupt ──▶ [interrupted-restricted]
 *   handler     an access the denylist leaves out ──(sibling protocol)──▶ page-fault: asi_exit + retry
 *               ──▶ [unrestricted], mode full; with the ephmap a page-cache page is mapped instead
 *   interrupt   pending during a handler: interrupt (nests); its handler faults out as a handler does;
 *               its end: interrupt-return (the outermost one re-enters the target: a step for the mode)
 *   action      interrupt-return for each interrupt still open, relax, then:
 *               resume / ipi ──▶ enter kvm (returnToIsolation) ──▶ entry
 *               halt ──▶ [from full: enter kvm first] relax, context-switch (the idle task) ──▶ idle
 *               vmm ──(sibling protocol)──▶ enter user (asi_enter_userspace) ──▶ the VMM runs
 *   wake        context-switch (back to the vCPU task) ──▶ enter kvm ──▶ entry
 *   KVM_RUN     relax (the syscall's entry ends the user class's critical section) ──▶ enter kvm ──▶ entry
 *
 * Every way back into the guest goes through `enter` (`returnToIsolation`), after a relax. A host process
 * (a user mix: issue 22 item 4) runs the same loop with the user class: `enter user` where a vCPU enters
 * kvm, its user-mode stretches standing for the guest's.
 */
export class LinuxAsiIsolation implements IsolationDesign, IsolationHotPath {
  /** The guest stretch, the exit, a handler's access and its end: this design's own methods below. */
  readonly hotPath: IsolationHotPath = this;
  readonly interruptsInHost = true;
  /** Every way back into the guest goes through asi_enter, after the relax of the handler's end. */
  readonly entersBeforeEveryEntry = true;
  /** The event a leave carries out once the sibling protocol let it: a page fault's asi_exit. */
  private pending: AsiEvent | null = null;

  constructor(
    private readonly host: IsolationHost,
    private readonly tlb: Tlb,
    readonly linuxAsi: LinuxAsiCpu,
    private readonly vmId: number,
    private readonly costs: CostModel,
    /** MachineConfig.kpti: the user class's CR3 is the VMM's user copy (vmm:N). */
    private readonly kpti: boolean,
  ) {}

  // ---- executing a step's actions -------------------------------------------------------------------

  /**
   * Executes a step's actions, in the state machine's order (state.ts): IBPB and RSB fill on this thread's
   * view of the core's predictor, the CR3 write (its TLB tag: kvm:N restricted, the kernel's otherwise;
   * linux-asi-cpu.ts says why), the L1D flush and the buffer clear on the core's caches; each charged.
   * Counts the exit by its reason (asiExits).
   */
  private execute(result: AsiStep & { ok: true }): void {
    for (const action of result.actions) this.executeAction(action);
    if (result.exitReason !== null) this.countExit(result.exitReason);
  }

  private executeAction(action: AsiAction): void {
    const asi = this.linuxAsi;
    switch (action.kind) {
      case 'ibpb':
        asi.predictor.ibpb(asi.sibling);
        this.host.spend(this.costs.ibpb);
        this.host.count(ThreadStat.ibpbs);
        return;
      case 'rsb-fill':
        asi.predictor.rsbFill(asi.sibling);
        this.host.spend(this.costs.rsbFill);
        this.host.count(ThreadStat.rsbFills);
        return;
      case 'cr3': {
        const space =
          action.asiClass === 'kvm'
            ? kvmSpace(this.vmId)
            : action.asiClass === 'user' && this.kpti
              ? vmmSpace(this.vmId)
              : kernelSpace;
        if (this.tlb.cr3 !== space) this.tlb.switchTo(space);
        // Restricted spaces have PCIDs of their own (state.ts pcidOf): a CR3 write with PCID.
        this.host.spend(this.host.cr3WriteCycles());
        return;
      }
      case 'l1d-flush':
        this.host.flush(Flush.l1d);
        return;
      case 'buffer-clear':
        this.host.flush(Flush.buffers);
        return;
      case 'retry-access':
        // The faulting op runs again from the handler's loop (its op index did not move).
        return;
    }
  }

  private countExit(reason: AsiExitReason): void {
    if (reason === 'page-fault') this.host.count(ThreadStat.asiExitsPageFault);
    else if (reason === 'interrupt') this.host.count(ThreadStat.asiExitsInterrupt);
    else if (reason === 'context-switch') this.host.count(ThreadStat.asiExitsContextSwitch);
  }

  // ---- the points of the vCPU loop, in order ---------------------------------------------------------

  /**
   * The first KVM_RUN: the vCPU task starts unrestricted (in the kernel, which touched nothing yet) and
   * asi_enter()s at once, before the first entry: no mode of its own for that instant.
   */
  start(): void {
    this.tlb.switchTo(kernelSpace);
    const entered = this.returnToIsolation();
    assert(entered, 'linux-asi: the first asi_enter sets the mode in the same step');
  }

  /**
   * Guest code ran: it trains the core's predictor as the guest's domain (a host process's user code as
   * its own).
   */
  guestRuns(): void {
    this.linuxAsi.guestRuns();
  }

  /**
   * The VM exit lands in the restricted space asi_enter loaded (the task is still tense). An exit for an
   * interrupt is that interrupt arriving in the critical section (`interrupt`: asi_intr_enter): the handler
   * runs there and the section ends after its outermost return re-entered the target; any other exit is
   * followed by `relax` at once (RFC v2 patch 21/29, just after vmx_vcpu_enter_exit).
   */
  exited(vector: number, variant: CompiledVariant): void {
    const asi = this.linuxAsi;
    assert(asi.tense, 'a linux-asi exit comes from the critical section');
    if (vector !== 0 && vector !== Vector.kick && vector !== Vector.wake) {
      asi.raise({ kind: 'interrupt', source: interruptSourceOf(vector) });
      return;
    }
    // A mix's host interrupt, NMI or #MC exit (not the sibling kick) is an interrupt too.
    const source = interruptExitSources[variant.reasonName];
    if (source !== undefined && !variant.isKick) {
      asi.raise({ kind: 'interrupt', source });
      return;
    }
    asi.raise({ kind: 'relax' });
  }

  /**
   * The restricted space's denylist decides (RFC v2 patch 14/29); a mapped access goes through the
   * kernel's table. A page-cache page the denylist leaves out is mapped through the ephmap instead,
   * where it is on; anything else it leaves out faults.
   */
  handlerAccessSpace(va: number, lines: number): number {
    if (!this.linuxAsi.mapsVa(va)) {
      if (!this.linuxAsi.ephmapServes(va)) return -1;
      this.ephmapAccess(va, lines);
    }
    return kernelSpace;
  }

  /** An interrupt handler's access: the denylist alone (no ephmap in interrupt context). */
  interruptAccessSpace(va: number): number {
    return this.linuxAsi.mapsVa(va) ? kernelSpace : -1;
  }

  /**
   * The ephmap (LinuxAsiSettings.ephmap): each page of the op's `lines` from `va` is mapped CPU-locally,
   * used and torn down (with its remote TLB flush): `costs.ephmap` a page, instead of a fault and an
   * asi_exit.
   */
  private ephmapAccess(va: number, lines: number): void {
    const firstPage = Math.floor(va / pageBytes);
    const lastPage = Math.floor((va + lines * cacheLineBytes - 1) / pageBytes);
    for (let page = firstPage; page <= lastPage; page++) {
      this.linuxAsi.ephmapAccess();
      this.host.spend(this.costs.ephmap);
    }
  }

  /** A fault in the restricted space: `page-fault` (asi_exit, then a retry: 2022 RFC patch 35/47) once the sibling protocol let the thread out. */
  faulted(): void {
    this.pending = { kind: 'page-fault' };
  }

  /**
   * A leave the sibling protocol let through. To the VMM: `enter user` (asi_enter_userspace, RFC v2 patch
   * 25/29) from wherever the handler left the CPU (a relaxed kvm space: direct, with the flushes the user
   * class's policy requires). To `full`: the fault's `page-fault`, or `exit` (asi_exit) if the CPU is
   * still restricted.
   */
  left(toVmm: boolean): void {
    const asi = this.linuxAsi;
    const pending = this.pending;
    this.pending = null;
    if (toVmm) {
      this.execute(asi.raise({ kind: 'enter', asiClass: 'user' }));
      this.host.userRunStarts();
      return;
    }
    if (pending !== null && asi.restricted) this.execute(asi.raise(pending));
    else if (asi.restricted) this.execute(asi.raise({ kind: 'exit' }));
  }

  /** `interrupt` (asi_intr_enter): handled where it lands; its handler faults its way out if it must. */
  interruptArrives(vector: number): boolean {
    this.linuxAsi.raise({ kind: 'interrupt', source: interruptSourceOf(vector) });
    return true;
  }

  /**
   * `interrupt-return` (asi_intr_exit): the outermost return re-enters the target, with the flushes its
   * taints require. True when it did so from the full space: the mode changes in a step of its own
   * (`returnToIsolation`), at the clock the flushes took it to.
   */
  interruptReturns(): boolean {
    const result = this.linuxAsi.raise({ kind: 'interrupt-return' });
    this.execute(result);
    return result.reentered && this.host.mode !== Mode.isolated;
  }

  /**
   * A handler's end: an interrupt exit returns (`interrupt-return`, re-entering the target) and the
   * critical section ends (`relax`); then the action.
   */
  handlerEnds(): boolean {
    const asi = this.linuxAsi;
    while (asi.interruptDepth > 0) if (this.interruptReturns()) return false;
    if (asi.tense) asi.raise({ kind: 'relax' });
    return true;
  }

  /**
   * schedule() to the idle task: a kernel thread on the same mm (lazy TLB), so `context-switch` exits
   * ASI upstream (every switch) and not in Google's version (mm switch only). The critical section
   * asi_enter opened for a return from `full` (the hyperthread's halt rule) ends first (`relax`).
   */
  halts(): void {
    const asi = this.linuxAsi;
    if (asi.tense) asi.raise({ kind: 'relax' });
    this.execute(asi.raise({ kind: 'context-switch', nextMm: asi.state.mm }));
  }

  /**
   * Woken from idle: `context-switch` back to the vCPU task, then asi_enter (`returnToIsolation`) in a
   * step of its own. Interrupts that woke it stay pending and reach the vCPU as exits after the entry.
   */
  wakes(): boolean {
    this.execute(this.linuxAsi.raise({ kind: 'context-switch', nextMm: this.linuxAsi.state.mm }));
    return true;
  }

  /** The VMM ran: it trains the core's predictor as its process's domain. */
  userRuns(): void {
    this.linuxAsi.userRuns();
  }

  /** KVM_RUN: the syscall's entry ends the user class's critical section (`relax`). */
  kvmRun(): void {
    this.execute(this.linuxAsi.raise({ kind: 'relax' }));
  }

  /**
   * `enter` (asi_enter(kvm) just before VM entry, RFC v2 patch 21/29; a host process's
   * asi_enter_userspace on return to user mode): the flushes the taints require, the CR3 write to the
   * restricted space, then the mode the sibling protocol reads (isolated: no secrets mapped). The mode
   * changes after the flush, so a sibling waiting at the barrier finds the core clean. Tense already (an
   * interrupt's outermost return re-entered): only the mode is left.
   */
  returnToIsolation(): boolean {
    const asi = this.linuxAsi;
    const host = this.host;
    if (!asi.tense) {
      this.execute(asi.raise({ kind: 'enter', asiClass: asi.asiClass }));
      // The mode changes in a step of its own, at the clock the flushes took it to: a sibling stepping
      // meanwhile (at an earlier virtual time) still sees this thread where it was.
      if (host.mode !== Mode.isolated && host.mode !== Mode.offline) return false;
    }
    if (host.mode !== Mode.isolated) host.setMode(Mode.isolated);
    if (host.stunHeld) host.setStun(false);
    return true;
  }
}

/** The state machine's interrupt source for a vector. */
function interruptSourceOf(vector: number): 'irq' | 'nmi' | 'exception' {
  return vector === Vector.nmi ? 'nmi' : vector === Vector.machineCheck ? 'exception' : 'irq';
}

/** The exit reasons that are a host interrupt arriving while the guest runs, by their source. */
const interruptExitSources: Readonly<Record<string, 'irq' | 'nmi' | 'exception'>> = {
  EXTERNAL_INTERRUPT: 'irq',
  EXCEPTION_NMI: 'nmi',
  MACHINE_CHECK: 'exception',
};
