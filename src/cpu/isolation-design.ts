import type { Machine } from '../machine.js';
import type { Tlb } from '../paging/tlb.js';
import type { Policy } from '../policy/policy.js';
import type { CostModel } from './costs.js';
import type { CompiledVariant } from './handler-program.js';
import { LinuxAsiCpu } from './linux-asi-cpu.js';
import { LinuxAsiIsolation } from './linux-asi-isolation.js';
import { Rfc2019Isolation } from './rfc2019-isolation.js';

/**
 * The isolation design a hyperthread runs (issue 22 item 2: today's Linux ASI "beside the 2019 modes, not
 * hacked into them"): which address space the host side is in, and what happens to it at the points where
 * the designs differ. The hyperthread (hyperthread.ts) owns the vCPU loop, the modes and the sibling
 * protocol (kick, wait, entry barrier: kick/kicker.ts and the policy's hooks), which both designs share;
 * at each of those points it calls its design, and the design changes address spaces, flushes and counts
 * through its host (`IsolationHost`), never the phase.
 *
 * Two designs:
 * - rfc2019-isolation.ts: the 2019 KVM ASI RFC's `kvm:N`, an allowlist page table: exits land in it,
 *   the host leaves it (CR3 to the kernel's table) after the sibling protocol let it, and comes back
 *   before every entry that left it. A policy without ASI (Policy.usesAsi false: KVM as it is) runs the
 *   same design with the kernel's table throughout.
 * - linux-asi-isolation.ts: today's Linux ASI (Policy.linuxAsi): the state machine of src/linux-asi/
 *   for this logical CPU (cpu/linux-asi-cpu.ts), whose events the design raises at these points and
 *   whose actions (CR3 writes, IBPB, RSB fill, L1D flush, buffer clear) it executes.
 *
 * The points, in the order a vCPU meets them: `start` (its first KVM_RUN), the hot path's (`hotPath`: a
 * guest stretch, a VM exit, a handler's access while `isolated`, a handler's end), `interruptAccessSpace`
 * (an interrupt handler's access while `isolated`) and `faulted` (an access that misses), `left` (the
 * switch out, once the sibling protocol let it), `interruptArrives` / `interruptReturns`, `halts` /
 * `wakes`, `userRuns` / `kvmRun` (the VMM, or a host process's user code), and `returnToIsolation` (back
 * into the restricted space before an entry).
 */
export interface IsolationDesign {
  /** Today's Linux ASI's state for this CPU (the monitor's INV-14 and INV-15 read it), or null. */
  readonly linuxAsi: LinuxAsiCpu | null;
  /**
   * The design's part of the hot path (every guest stretch, exit and handler op), or null where it has
   * none: the 2019 RFC's kvm:N is a page table, which decides a handler's accesses by itself, and its
   * guest stretches, exits and handler ends are the hyperthread's alone. Calls there that do nothing
   * cost the 2019 policies 2.5-5% of a sim step in a process that runs both designs (asi on all-fast
   * and sysbench-cpu, docs/perf-log.md 2026-12-06 "design"), hence null rather than no-ops.
   */
  readonly hotPath: IsolationHotPath | null;
  /**
   * Whether interrupt sources fire during host handling too, so that they land in the critical section
   * an exit opened and nest (today's ASI); the 2019 RFC's paths take them at the next guest stretch.
   */
  readonly interruptsInHost: boolean;
  /**
   * Whether every way back into the guest returns to isolation first (`returnToIsolation`: today's ASI
   * asi_enter()s before every VM entry, after the relax at the handler's end); the 2019 RFC's only when
   * the handler left kvm:N, which the hyperthread knows by its mode.
   */
  readonly entersBeforeEveryEntry: boolean;

  /** The first KVM_RUN: the host's first address space and its mode (from `offline`). */
  start(): void;
  /**
   * The address space an interrupt handler's access at `va` is made through while `isolated`, or -1
   * when the restricted space does not map it: a fault, which the hyperthread reports.
   */
  interruptAccessSpace(va: number): number;
  /** An access faulted in isolation: the leave that follows (`left`) is the fault's. */
  faulted(): void;
  /**
   * The sibling protocol let this thread leave isolation, to `full` or, `toVmm`, to the VMM: the switch
   * out of the restricted space (the hyperthread has set the mode).
   */
  left(toVmm: boolean): void;
  /**
   * An interrupt (`vector`) arrives in the host. True when it is handled where it lands; false when its
   * handler runs in `full` only (INV-8), which the hyperthread leaves isolation for first.
   */
  interruptArrives(vector: number): boolean;
  /**
   * An interrupt handler returns. True when the return goes back into isolation first, as a step of its
   * own (`returnToIsolation`); false when the thread continues where the interrupt landed.
   */
  interruptReturns(): boolean;
  /** The thread halts (goes idle), from isolation. */
  halts(): void;
  /**
   * Woken from idle. True when the thread returns to isolation in a step of its own (interrupts that
   * woke it stay pending and reach the vCPU as exits after the entry); false when it is back in the
   * host's mode now and takes them at once.
   */
  wakes(): boolean;
  /** The VMM (or a host process's user code) ran on this thread. */
  userRuns(): void;
  /** KVM_RUN again after the VMM: back in the kernel (mode `full`). */
  kvmRun(): void;
  /**
   * Back into the restricted space before an entry (or a halt, or an interrupt's continuation). False
   * when the mode changes in a later step, at the clock the flushes took this thread to.
   */
  returnToIsolation(): boolean;
}

/** A design's points on the hot path (IsolationDesign.hotPath). */
export interface IsolationHotPath {
  /** A guest stretch (or a host process's user-mode stretch) begins on this thread. */
  guestRuns(): void;
  /** A VM exit landed in the host (`vector`: the interrupt that caused it, or 0). */
  exited(vector: number, variant: CompiledVariant): void;
  /**
   * The address space a handler's access of `lines` lines from `va` is made through while `isolated`,
   * or -1 when the restricted space does not map it: a fault (INV-7), which the hyperthread reports.
   */
  handlerAccessSpace(va: number, lines: number): number;
  /**
   * A handler's end, before its action. False when the thread must return to isolation first (a step of
   * its own) and then run the action again.
   */
  handlerEnds(): boolean;
}

/** What an isolation design may do to its hyperthread: its clock, mode, stun bit, flushes and counts. */
export interface IsolationHost {
  /** The mode this thread last set (cpu/modes.ts). */
  readonly mode: number;
  /** Whether this thread holds its stun bit (asi-stun, and linux-asi's stun protocol). */
  readonly stunHeld: boolean;
  /** Advances this thread's clock. */
  spend(cycles: number): void;
  /** Counts one of this thread's statistics (memory/layout.ts ThreadStat). */
  count(stat: number): void;
  /** Sets this thread's mode whatever the siblings do (one CAS of the core word). */
  setMode(to: number): void;
  setStun(on: boolean): void;
  /** Flushes the core's L1D and/or fill buffers (policy.ts `Flush` bits), charged and counted. */
  flush(bits: number): void;
  /** The flush the policy asks for before an entry (Policy.flushBeforeEntry), made. */
  flushBeforeEntry(): void;
  /** One CR3 write's cycles (with PCID or without: costs.ts). */
  cr3WriteCycles(): number;
  /** The VMM (the user class's victim) starts running here: the observer hears it (INV-15). */
  userRunStarts(): void;
}

/** Where a design runs: its hyperthread, and that thread's place in the machine. */
export interface IsolationPlace {
  readonly host: IsolationHost;
  readonly machine: Machine;
  /** The hyperthread's TLB, whose tag is CR3 (paging/tlb.ts). */
  readonly tlb: Tlb;
  readonly core: number;
  readonly sibling: number;
  readonly vmId: number;
  /** A host process runs on the thread instead of a vCPU (a user mix): today's ASI's user class. */
  readonly process: boolean;
  readonly costs: CostModel;
}

/** The policy's isolation design: today's Linux ASI where it carries `linuxAsi`, else the 2019 RFC's. */
export function isolationDesignOf(policy: Policy, place: IsolationPlace): IsolationDesign {
  const { host, machine, tlb, vmId } = place;
  const kpti = machine.config.kpti;
  if (policy.linuxAsi === undefined) return new Rfc2019Isolation(host, tlb, vmId, policy.usesAsi, kpti);
  const cpu = new LinuxAsiCpu(
    machine,
    policy.linuxAsi,
    place.sibling,
    place.core,
    vmId,
    place.process ? 'user' : 'kvm',
  );
  return new LinuxAsiIsolation(host, tlb, cpu, vmId, place.costs, kpti);
}
