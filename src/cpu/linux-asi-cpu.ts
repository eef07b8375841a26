import { assert } from '../assert.js';
import { BranchPredictor, predictorDomainCountMax, predictorEntriesDefault } from '../linux-asi/predictor.js';
import { restrictedMapping } from '../linux-asi/sensitivity.js';
import { asiMachineConfigOf, type LinuxAsiSettings } from '../linux-asi/settings.js';
import {
  type AsiCpuState,
  type AsiEvent,
  type AsiMachineConfig,
  type AsiStep,
  initialAsiState,
  stateName,
  step,
} from '../linux-asi/state.js';
import type { Machine } from '../machine.js';
import { kernelSpace } from '../paging/address-space.js';

/**
 * Today's Linux ASI on one hyperthread (issue 22): the state machine of src/linux-asi/state.ts for this
 * logical CPU, the core's branch predictor, and the restricted address space's denylist. It decides and
 * keeps state; the hyperthread (hyperthread.ts) raises the events and executes the actions (CR3 writes,
 * IBPB, RSB fill, L1D flush, buffer clear), as docs/linux-asi.md "Wiring" says.
 *
 * The restricted address space. RFC v2's is a denylist: it maps everything not allocated sensitive
 * (linux-asi/sensitivity.ts `restrictedMapping`). The model does not build page tables of its own for
 * it: CR3 (the TLB's tag) holds kvm:N while restricted, and whether an address is mapped is decided by
 * the denylist from the region of the frame it reaches in the kernel's table; a mapped access is then
 * made through the kernel's table. What differs from real restricted tables: (1) no page-table pages of
 * its own (nothing in the buffer is written for it; INV-5/INV-6 still judge kvm:N, which the 2019
 * policies use); (2) TLB entries are tagged kvm:N / kernel, not the restricted PCIDs the state machine
 * computes (`pcidOf`: its CR3 actions carry them, and each is charged as a CR3 write with PCID); (3) the
 * denylist is decided per 4 KiB page of the handler's VA, with the kvm class's view (guest RAM unmapped,
 * kernel data, per-CPU data and keys mapped).
 *
 * Predictor domains (predictor.ts): 0 the kernel, 1 + 2v the guest of VM v, 2 + 2v VM v's VMM process
 * (its mm). An mm is a VM's process: mm = vmId (state.ts allows six).
 */

export const predictorDomainKernel = 0;
export function predictorDomainGuest(vmId: number): number {
  return 1 + 2 * vmId;
}
export function predictorDomainUser(vmId: number): number {
  return 2 + 2 * vmId;
}

/** The predictor domains a class's code on VM `vmId` may be steered by, per its posted policy. */
export function allowedSteering(asiClass: 'kvm' | 'user', vmId: number): number {
  // kvm: prevent_control = OTHER_MM_CONTROL only (its own VMM and the kernel may steer it).
  // user: prevent_control = GUEST_CONTROL | OTHER_MM_CONTROL (no guest, not even its own).
  const own = (1 << predictorDomainKernel) | (1 << predictorDomainUser(vmId));
  return asiClass === 'kvm' ? own | (1 << predictorDomainGuest(vmId)) : own;
}

/** Per machine, one predictor per core (siblings share it, spectre.rst). */
const predictorsByMachine = new WeakMap<Machine, BranchPredictor[]>();

function corePredictor(machine: Machine, core: number): BranchPredictor {
  let predictors = predictorsByMachine.get(machine);
  if (predictors === undefined) {
    predictors = [];
    for (let index = 0; index < machine.config.cores; index++) {
      predictors.push(
        new BranchPredictor({
          threadsPerCore: machine.config.smt,
          entryCount: predictorEntriesDefault,
          siblingsShare: true,
        }),
      );
    }
    predictorsByMachine.set(machine, predictors);
  }
  return predictors[core];
}

/** Per machine: the denylist's answer per kernel VA page for the kvm class (true: mapped). */
const denylistByMachine = new WeakMap<Machine, Map<number, boolean>>();

/** Whether the kvm class's restricted space maps kernel VA `va` (RFC v2 patch 14/29's denylist). */
export function kvmClassMapsVa(machine: Machine, va: number): boolean {
  let pages = denylistByMachine.get(machine);
  if (pages === undefined) {
    pages = new Map();
    denylistByMachine.set(machine, pages);
  }
  const page = Math.floor(va / 4096);
  let mapped = pages.get(page);
  if (mapped === undefined) {
    const pfn = machine.pageTables.walk(kernelSpace, va, 0, false);
    mapped = pfn >= 0 && restrictedMapping(machine.frames.regionOf(pfn).kind, 'kvm') === 'mapped';
    pages.set(page, mapped);
  }
  return mapped;
}

/**
 * Whether frame `pfn` holds data the kvm class of VM `vmId` must not see without a flush (INV-14): a
 * sensitive frame (unmapped from the restricted space: the page cache, other processes, the VMM's
 * memory, free frames) other than this VM's own guest RAM (its own data: no posted class protects
 * GUEST_DATA, docs/linux-asi.md "Where the sources differ" 3).
 */
export function sensitiveToKvmClass(machine: Machine, pfn: number, vmId: number): boolean {
  const region = machine.frames.regionOf(pfn);
  if (region.kind === 'guest-memory' && region.vmId === vmId) return false;
  return restrictedMapping(region.kind, 'kvm') === 'unmapped';
}

export class LinuxAsiCpu {
  readonly settings: LinuxAsiSettings;
  readonly config: AsiMachineConfig;
  readonly predictor: BranchPredictor;
  readonly guestDomain: number;
  readonly userDomain: number;
  state: AsiCpuState;
  /** A training slot: moves at every training so that entries rotate through the table. */
  private slot = 0;

  constructor(
    readonly machine: Machine,
    settings: LinuxAsiSettings,
    readonly sibling: number,
    core: number,
    readonly vmId: number,
  ) {
    assert(
      predictorDomainUser(vmId) < predictorDomainCountMax,
      `linux-asi models at most ${Math.floor((predictorDomainCountMax - 1) / 2)} VMs (predictor domains)`,
    );
    this.settings = settings;
    this.config = asiMachineConfigOf(settings);
    this.predictor = corePredictor(machine, core);
    this.predictor.setStibp(sibling, settings.stibp);
    this.guestDomain = predictorDomainGuest(vmId);
    this.userDomain = predictorDomainUser(vmId);
    this.state = initialAsiState(vmId);
  }

  /** One event: the step's actions for the hyperthread to execute. A refusal is a model bug here. */
  raise(event: AsiEvent): AsiStep & { ok: true } {
    const result = step(this.state, event, this.config);
    if (!result.ok) {
      assert(
        false,
        `linux-asi: ${result.rejection.event} refused in ${result.rejection.state}: ${result.rejection.reason}`,
      );
    }
    this.state = result.state;
    return result;
  }

  get restricted(): boolean {
    return this.state.current !== null;
  }

  get tense(): boolean {
    return this.state.target !== null;
  }

  get interruptDepth(): number {
    return this.state.interruptDepth;
  }

  get stateName(): string {
    return stateName(this.state);
  }

  /** Guest code ran on this thread: it trains the core's predictor (and this thread's return stack). */
  guestRuns(): void {
    this.predictor.train(this.sibling, this.guestDomain, this.slot++);
  }

  /** The VMM ran on this thread. */
  userRuns(): void {
    this.predictor.train(this.sibling, this.userDomain, this.slot++);
  }

  /** The predictor domains that can steer this thread now. */
  steeringMask(): number {
    return (
      this.predictor.indirectSteeringMask(this.sibling) | this.predictor.returnSteeringMask(this.sibling)
    );
  }
}
