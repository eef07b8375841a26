import { assert } from '../assert.js';
import { BranchPredictor, predictorDomainCountMax, predictorEntriesDefault } from '../linux-asi/predictor.js';
import { restrictedMapping } from '../linux-asi/sensitivity.js';
import { asiMachineConfigOf, type LinuxAsiSettings } from '../linux-asi/settings.js';
import {
  type AsiAction,
  type AsiCpuState,
  type AsiEvent,
  type AsiMachineConfig,
  type AsiStep,
  initialAsiState,
  stateName,
  step,
} from '../linux-asi/state.js';
import { type AsiClass, taintKernelData } from '../linux-asi/taints.js';
import type { Machine } from '../machine.js';
import { corePredictorIndex } from '../memory/layout.js';
import { predictorI32s } from '../memory/sub-layouts.js';
import { kernelSpace } from '../paging/address-space.js';

/**
 * Today's Linux ASI on one hyperthread (issue 22): the state machine of src/linux-asi/state.ts for this
 * logical CPU, the core's branch predictor, and the restricted address space's denylist. It decides and
 * keeps state; the isolation design of today's ASI (linux-asi-isolation.ts) raises the events at the
 * hyperthread's points and executes the actions (CR3 writes, IBPB, RSB fill, L1D flush, buffer clear),
 * as docs/linux-asi.md "Wiring" says.
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

/**
 * Per machine, one predictor per core (siblings share it, spectre.rst), over the core's record in the
 * machine buffer (memory/layout.ts `corePredictorIndex`): every view of the machine (each worker's)
 * sees one predictor per core, and a machine reset (`Machine.resetDynamicState`) clears it with the
 * caches, so no training crosses from one run (or fuzz case) to the next. The objects are views, kept
 * per machine object only to build them once.
 */
const predictorsByMachine = new WeakMap<Machine, BranchPredictor[]>();

function corePredictor(machine: Machine, core: number): BranchPredictor {
  let predictors = predictorsByMachine.get(machine);
  if (predictors === undefined) {
    predictors = [];
    const length = predictorI32s(predictorEntriesDefault, machine.config.smt);
    for (let index = 0; index < machine.config.cores; index++) {
      const at = corePredictorIndex(machine.layout, index);
      predictors.push(
        new BranchPredictor({
          threadsPerCore: machine.config.smt,
          entryCount: predictorEntriesDefault,
          siblingsShare: true,
          words: machine.i32.subarray(at, at + length),
          concurrent: machine.concurrent,
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
 * Per machine and VM: the user class's denylist answer per kernel VA page (true: mapped), for the
 * process of VM `vmId`'s threads (a user mix: issue 22 item 4).
 */
const userDenylistByMachine = new WeakMap<Machine, Map<number, Map<number, boolean>>>();

/**
 * Whether the user class's restricted space of the process `vmId` stands for maps kernel VA `va`, as
 * the process catalogue reaches it (cpu/exits.ts `kernelEntryCatalogue`): everything nonsensitive, and
 * the process's own user buffers (`vmm-heap` of its VM, reached through its user mapping: "the entire
 * userspace address region", RFC v2 patch 25/29). Its own anonymous pages reached through the direct
 * map (`guest-memory`: zeroing, copy-on-write) are not: "the task's own memory is still missing from the
 * direct map" (ibid.); nor the page cache, other processes, or another process's memory.
 */
export function userClassMapsVa(machine: Machine, va: number, vmId: number): boolean {
  let byVm = userDenylistByMachine.get(machine);
  if (byVm === undefined) {
    byVm = new Map();
    userDenylistByMachine.set(machine, byVm);
  }
  let pages = byVm.get(vmId);
  if (pages === undefined) {
    pages = new Map();
    byVm.set(vmId, pages);
  }
  const page = Math.floor(va / 4096);
  let mapped = pages.get(page);
  if (mapped === undefined) {
    const pfn = machine.pageTables.walk(kernelSpace, va, 0, false);
    if (pfn < 0) mapped = false;
    else {
      const region = machine.frames.regionOf(pfn);
      mapped =
        restrictedMapping(region.kind, 'kvm') === 'mapped' ||
        (region.kind === 'vmm-heap' && region.vmId === vmId);
    }
    pages.set(page, mapped);
  }
  return mapped;
}

/** Whether kernel VA `va` reaches the page cache: what the ephmap maps for one access. */
export function pageCacheVa(machine: Machine, va: number): boolean {
  const pfn = machine.pageTables.walk(kernelSpace, va, 0, false);
  return pfn >= 0 && machine.frames.regionOf(pfn).kind === 'page-cache';
}

/**
 * Whether frame `pfn` holds data the user class of process `vmId` must not see without a flush
 * (INV-14 for a host process): its protect_data is KERNEL_DATA | OTHER_MM_DATA (RFC v2 patch 25/29),
 * so every sensitive frame (the page cache, other processes, free frames, another VM's memory) but the
 * process's own memory (its `vmm-heap` and `guest-memory`: "the guest trusts its VMM", and a process
 * trusts itself).
 */
export function sensitiveToUserClass(machine: Machine, pfn: number, vmId: number): boolean {
  const region = machine.frames.regionOf(pfn);
  if ((region.kind === 'guest-memory' || region.kind === 'vmm-heap') && region.vmId === vmId) return false;
  return restrictedMapping(region.kind, 'kvm') === 'unmapped';
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
  /** Pages mapped through the ephmap (settings.ephmap) on this CPU. */
  ephmaps = 0;
  /** A training slot: moves at every training so that entries rotate through the table. */
  private slot = 0;

  constructor(
    readonly machine: Machine,
    settings: LinuxAsiSettings,
    readonly sibling: number,
    core: number,
    readonly vmId: number,
    /**
     * The class this CPU's task enters: `kvm` for a vCPU thread, `user` for a host process (a user mix,
     * issue 22 item 4), whose user-mode code is the victim (and the attacker) in place of a guest.
     */
    readonly asiClass: AsiClass = 'kvm',
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
    const wasRestricted = this.state.current !== null;
    const result = step(this.state, event, this.config);
    if (!result.ok) {
      assert(
        false,
        `linux-asi: ${result.rejection.event} refused in ${result.rejection.state}: ${result.rejection.reason}`,
      );
    }
    this.state = result.state;
    if (this.settings.ibpbOnExit && wasRestricted && result.state.current === null)
      return withIbpbOnExit(result);
    return result;
  }

  /** Whether the restricted space of this CPU's class maps kernel VA `va` (its denylist). */
  mapsVa(va: number): boolean {
    return this.asiClass === 'kvm'
      ? kvmClassMapsVa(this.machine, va)
      : userClassMapsVa(this.machine, va, this.vmId);
  }

  /** Whether an access to `va` the denylist leaves out is served through the ephmap instead. */
  ephmapServes(va: number): boolean {
    return this.settings.ephmap && pageCacheVa(this.machine, va);
  }

  /**
   * A page mapped through the ephmap for an access, and torn down after it. The CPU touched sensitive
   * data while restricted: it is tainted KERNEL_DATA, as asi_exit taints it (asi.c: "Tainting first makes
   * reentrancy easier to reason about"), so the next entry flushes what the class protects. The posted
   * text read does not say how the ephmap taints: this is the model's choice, the conservative one
   * (without it INV-14 reports the page-cache lines an ephmap read leaves on an L1TF part).
   */
  ephmapAccess(): void {
    this.ephmaps++;
    this.state = { ...this.state, taints: this.state.taints | taintKernelData };
  }

  /** Whether frame `pfn` holds data this CPU's class protects (INV-14), other than its own. */
  sensitive(pfn: number): boolean {
    return this.asiClass === 'kvm'
      ? sensitiveToKvmClass(this.machine, pfn, this.vmId)
      : sensitiveToUserClass(this.machine, pfn, this.vmId);
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

  /**
   * Guest code ran on this thread: it trains the core's predictor (and this thread's return stack). For
   * a host process (the user class) the code that ran is the process's own, its user domain.
   */
  guestRuns(): void {
    this.predictor.train(
      this.sibling,
      this.asiClass === 'user' ? this.userDomain : this.guestDomain,
      this.slot++,
    );
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

/**
 * `setcpuid=retbleed` (settings.ibpbOnExit): an IBPB and an RSB fill on an asi_exit that left the
 * restricted space, unless the control taints already asked for them (asi.c `maybe_flush_control`);
 * they come first, as maybe_flush_control's do.
 */
function withIbpbOnExit(result: AsiStep & { ok: true }): AsiStep & { ok: true } {
  if (result.actions.some((action) => action.kind === 'ibpb')) return result;
  const actions: AsiAction[] = [{ kind: 'ibpb' }, { kind: 'rsb-fill' }, ...result.actions];
  return { ...result, actions };
}
