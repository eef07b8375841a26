import { kernelSpace, kvmSpace, vmmSpace } from '../paging/address-space.js';
import type { Tlb } from '../paging/tlb.js';
import type { IsolationDesign, IsolationHost } from './isolation-design.js';
import { Mode } from './modes.js';

/**
 * The 2019 KVM ASI RFC's isolation (Alexandre Chartre, Liran Alon; DESIGN.md "Where the idea comes from"),
 * as an isolation design (isolation-design.ts). `kvm:N` is a page table of its own, built by copying the
 * ranges KVM needs (an allowlist): the VMCS host CR3 is kvm:N, so an exit lands there (hyperthread.ts
 * `takeExit`); a handler's access is walked in it, and one it does not map faults (patch 24); the host
 * leaves it for the kernel's table only after the sibling protocol let it, and returns to it before the
 * next entry (`isolated` again). Interrupts are handled in `full` (INV-8).
 *
 * A policy without ASI (Policy.usesAsi false) is KVM as it is: the host runs in the kernel's table
 * throughout (`full`), and "returning to isolation" is staying there.
 *
 * The rest of the 2019 protocol (kick, wait for siblings out, the entry barrier, the stun bit) is the
 * hyperthread's, which today's Linux ASI shares (linux-asi-isolation.ts).
 */
export class Rfc2019Isolation implements IsolationDesign {
  readonly linuxAsi = null;
  /** None: kvm:N's page table decides a handler's accesses (walked in CR3), the rest is the hyperthread's. */
  readonly hotPath = null;
  readonly interruptsInHost = false;
  /** Only when the handler left kvm:N (the hyperthread's mode says so). */
  readonly entersBeforeEveryEntry = false;
  private readonly kvmSpaceId: number;
  private readonly vmmSpaceId: number;

  constructor(
    private readonly host: IsolationHost,
    private readonly tlb: Tlb,
    vmId: number,
    /** Policy.usesAsi: the host side runs in kvm:N, or in the full kernel (the baselines). */
    private readonly usesAsi: boolean,
    /** MachineConfig.kpti: a CR3 write on the way to the VMM and another on the way back. */
    private readonly kpti: boolean,
  ) {
    this.kvmSpaceId = kvmSpace(vmId);
    this.vmmSpaceId = vmmSpace(vmId);
  }

  start(): void {
    if (this.usesAsi) {
      this.tlb.switchTo(this.kvmSpaceId);
      this.host.setMode(Mode.isolated);
    } else {
      this.tlb.switchTo(kernelSpace);
      this.host.setMode(Mode.full);
    }
  }

  /** Never asked: interrupts are handled in `full` (INV-8); the current CR3 if it were. */
  interruptAccessSpace(): number {
    return this.tlb.cr3;
  }

  faulted(): void {}

  left(toVmm: boolean): void {
    const kpti = toVmm && this.kpti;
    // Without KPTI the VMM runs on its process's page table, which maps the kernel too (the model's
    // `kernel`): a return to user space writes no CR3. Only KPTI switches to the user copy (vmm:N).
    const space = kpti ? this.vmmSpaceId : kernelSpace;
    // CR3 writes: ASI's own, leaving kvm:N (asi_exit), and KPTI's on the return to user space.
    const writes = (this.tlb.cr3 === this.kvmSpaceId ? 1 : 0) + (kpti ? 1 : 0);
    if (this.tlb.cr3 !== space) this.tlb.switchTo(space);
    if (writes > 0) this.host.spend(writes * this.host.cr3WriteCycles());
  }

  /** In `full` only: the hyperthread leaves isolation (kicking its siblings) first. */
  interruptArrives(): boolean {
    return false;
  }

  /** Back to isolation (the handler ran in `full`), then on where the interrupt landed. */
  interruptReturns(): boolean {
    return true;
  }

  halts(): void {}

  /** Woken by an interrupt (the timer, a peer's wake IPI): back in the host's mode at once. */
  wakes(): boolean {
    this.host.setMode(this.usesAsi ? Mode.isolated : Mode.full);
    return false;
  }

  userRuns(): void {}

  kvmRun(): void {}

  returnToIsolation(): boolean {
    if (!this.usesAsi) {
      // Without ASI there is no isolation to return to: the host stays in the full kernel.
      if (this.host.mode !== Mode.full) this.host.setMode(Mode.full);
      return true;
    }
    this.host.setMode(Mode.isolated);
    this.tlb.switchTo(this.kvmSpaceId);
    this.host.spend(this.host.cr3WriteCycles());
    if (this.host.stunHeld) {
      // asi-stun: flush what the full-kernel episode left, then let the siblings back in.
      this.host.flushBeforeEntry();
      this.host.setStun(false);
    }
    return true;
  }
}
