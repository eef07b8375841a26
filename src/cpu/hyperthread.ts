import { assert } from '../assert.js';
import { CoreForeignLines } from '../cache/core-buffer.js';
import type { CoreCaches } from '../cache/core-caches.js';
import { smtSpeedupOf, type Workload } from '../config/workload.js';
import { cacheLineBytes, linesPerPage, pageBytes } from '../constants.js';
import { interruptVectors, Mailboxes, Vector } from '../kick/ipi.js';
import { Kicker, type KickerHost, KickWait } from '../kick/kicker.js';
import type { Notifier, WordWait } from '../kick/wait.js';
import type { Machine } from '../machine.js';
import {
  CoreField,
  coreFieldIndex,
  ThreadField,
  ThreadStat,
  threadFieldIndex,
  threadStatIndex,
} from '../memory/layout.js';
import { addWord, andWord, compareExchangeWord, loadWord, orWord } from '../memory/words.js';
import { guestSpace, kernelSpace, kvmSpace } from '../paging/address-space.js';
import { Access } from '../paging/entry-format.js';
import type { Tlb } from '../paging/tlb.js';
import { Flush, type Policy, type PolicyView } from '../policy/policy.js';
import type { GuestDraws, ThreadAccess } from './access-path.js';
import type { ConfidentialWork } from './confidential-work.js';
import type { CostModel } from './costs.js';
import { catalogueVariantCount, ExitStatField, newExitStats } from './exit-breakdown.js';
import { exitCatalogue, exitReasonIndex } from './exits.js';
import { GuestWorkload } from './guest-workload.js';
import {
  type CompiledCatalogue,
  type CompiledVariant,
  compiledCatalogueOf,
  OpKind,
} from './handler-program.js';
import {
  type IsolationDesign,
  type IsolationHost,
  type IsolationHotPath,
  isolationDesignOf,
} from './isolation-design.js';
import type { LinuxAsiCpu } from './linux-asi-cpu.js';
import { mixClassOf, resolveMix } from './mixes.js';
import { Mode, modeNames, modeOf, siblingFieldsMask, stunBit, withMode } from './modes.js';
import { ThreadPolicyView } from './policy-view.js';
import { isBusy, speedPerThread } from './smt-speed.js';

/**
 * The hyperthread state machine (DESIGN.md "The model"; issue 3): the 2019 KVM ASI RFC's vCPU loop and
 * its sibling protocol. One vCPU pinned to one hyperthread runs the vCPU loop:
 *
 *   guest ──exit──▶ isolated (kvm:N) ──handler──▶ [access misses in kvm:N: fault] ──▶ leave isolation
 *     ▲                 │                          (kick? wait? switch to full)  ──▶ full ──▶ isolated
 *     │                 ├──halt──▶ idle ──timer / IPI──▶ isolated
 *     │                 └──vmm───▶ leave isolation ──▶ vmm ──KVM_RUN──▶ full ──▶ isolated
 *     └──── entry: [flush] barrier (held while it says no) ──CAS──▶ [flush] ──▶ guest
 *
 * That is a policy with ASI (Policy.usesAsi). A policy without it is KVM without ASI: the host side is
 * `full` throughout (CR3 never leaves the kernel's table), so an exit goes straight to `full` (through
 * `isolated`, the exit path, only while a kick on exit waits), and "return to isolation" is a no-op:
 *
 *   guest ──exit──▶ [kick on exit: isolated ──siblings out──▶] full ──handler──▶ entry
 *                                                              ├──halt──▶ idle ──▶ full
 *                                                              └──vmm───▶ vmm ──KVM_RUN──▶ full
 *
 * It is written against the machine buffer only and drives no clock of its own: `step()` does one
 * event and returns Step.ran, or Step.wait with the word and value it waits on (wait while the word
 * still holds `waitValue`, until `waitDeadlineCycles`). A backend decides who steps next and how a
 * wait blocks (sim: virtual-time order; workers: spin then Atomics.wait). Nothing here asks which
 * backend drives it.
 *
 * Every mode change is a compare-and-swap of the core-state word (cpu/modes.ts), so a barrier and the
 * entry it guards are one atomic step, and a sibling's mode is always read atomically.
 *
 * Which address space the host side is in, and what happens to it, is the isolation design's
 * (isolation-design.ts), which this loop calls at the points where the designs differ (`this.design`):
 * the 2019 RFC's kvm:N, drawn above (rfc2019-isolation.ts: CR3 into kvm:N at the start and at every
 * return to isolation, out of it once the sibling protocol let the thread leave), or today's Linux ASI
 * (linux-asi-isolation.ts, whose header draws the same loop with the asi_enter / asi_relax / asi_exit
 * events it raises). The modes, the phases, the kicks and the entry barrier are this file's under both.
 *
 * Beside it: what the guest does (exit, working-set and halt draws, interrupt clocks) is
 * guest-workload.ts; the kick protocol (send, wait for siblings out, re-kick, acknowledgements) is
 * kick/kicker.ts; a confidential VM's memory work comes in through confidential-work.ts.
 */
export const Step = { ran: 0, wait: 1 } as const;
/** Step's codes as this module reads them. */
const StepCode = { ran: Step.ran, wait: Step.wait } as const;

/** What a backend gives the state machine: seeded randomness, wake-ups, and how IPI latency shows. */
export interface Environment extends Notifier {
  /** Uniform in [0, 1), from the backend's seeded generator. */
  random(): number;
  /**
   * The same draws as `random`, for a guest stretch's reads in one call of the access path
   * (`ThreadAccess.guestReads`): the generator's batch where the accelerated path can draw from it.
   */
  readonly guestDraws: GuestDraws;
  /**
   * Whether a kick sent to arrive at `deliverAtCycles` is visible to a thread whose clock reads
   * `nowCycles`. The sim models the IPI's latency in virtual time; the workers backend has real latency.
   */
  ipiVisible(nowCycles: number, deliverAtCycles: number): boolean;
}

/** Events a monitor or trace recorder sees. Observers only watch (STYLE.md: checkers hold no logic). */
export interface Observer {
  onModeChange(thread: Hyperthread, from: number, to: number): void;
  /** A guest stretch (or quantum) begins, at `thread.clockCycles`, its memory accesses made. */
  onGuestStep(thread: Hyperthread): void;
  /**
   * The guest stretch that began at the last `onGuestStep` ends, at `thread.clockCycles`; the share of
   * it that was progress is `thread.stretchProgressShare`.
   */
  onGuestStepEnd(thread: Hyperthread): void;
  onEnter(thread: Hyperthread): void;
  onExit(thread: Hyperthread, variant: CompiledVariant): void;
  onKick(thread: Hyperthread, target: number): void;
  onSwitchToFull(thread: Hyperthread, to: number): void;
  /**
   * A handler's access to a line of frame `pfn`, after the cache access was made (one call of the
   * access path), so an observer reads owners and page tables here, never cache state.
   */
  onAccess(thread: Hyperthread, va: number, space: number, pfn: number): void;
  onFault(thread: Hyperthread, va: number, variant: CompiledVariant): void;
  onInterrupt(thread: Hyperthread, vector: number): void;
  onFlush(thread: Hyperthread, bits: number, lines: number): void;
  /** Today's Linux ASI (linux-asi): the VMM starts running on `thread` (the user class's victim). */
  onUserRun?(thread: Hyperthread): void;
}

const Phase = {
  start: 0,
  entry: 1,
  barrier: 2,
  enterCommit: 3,
  guest: 4,
  exitKick: 5,
  exitWait: 6,
  handler: 7,
  leave: 8,
  leaveWait: 9,
  action: 10,
  vmm: 11,
  idle: 12,
  interrupt: 13,
  returnIsolated: 14,
} as const;
export const phaseNames = Object.keys(Phase);

// The statistics a guest step writes.
const statSteps = ThreadStat.steps;
const statClockCycles = ThreadStat.clockCycles;
const statModeCyclesBase = ThreadStat.modeCyclesBase;
const statGuestSteps = ThreadStat.guestSteps;
const statGuestUsefulCycles = ThreadStat.guestUsefulCycles;
const statGuestWorkCycles = ThreadStat.guestWorkCycles;
const retriesMax = 1_000_000;
/** `siblingsOutOrWait` result when the condition holds (distinct from every Step code). */
const satisfied = -1;

export class Hyperthread implements PolicyView, KickerHost, IsolationHost, WordWait {
  readonly thread: number;
  readonly core: number;
  readonly sibling: number;
  /** The siblings' mode fields of the core word (`siblingFieldsMask`). */
  readonly siblingFields: number;
  readonly smt: number;
  readonly vmId: number;
  readonly vcpu: number;

  /** Virtual time of this thread, in cycles. */
  clockCycles = 0;
  /** The mode this thread last set (its nibble of the core word; only this thread writes it). */
  mode: number = Mode.offline;
  phase: number = Phase.start;
  /** Set by `step` when it returns Step.wait. */
  waitIndex = 0;
  waitValue = 0;
  waitDeadlineCycles = Number.POSITIVE_INFINITY;
  /** Steps taken (all phases). */
  steps = 0;
  /** The clock when the current mode's cycles were last charged (at the mode change, or a publish). */
  private modeSinceCycles = 0;
  /** Guest quanta run, and their cycles without the cache stalls (ThreadStat's, published). */
  private guestSteps = 0;
  private guestUsefulCycles = 0;
  /** Guest progress at SMT speed (ThreadStat.guestWorkCycles): the workers backend's quanta only. */
  private guestWorkCycles = 0;
  /** When the guest stretch this thread waits in began (-1: none open). */
  private stretchStartCycles = -1;
  /** The stalls of the open stretch's accesses (not progress). */
  private stretchStallCycles = 0;
  /** Lines of the guest's working set an L1D flush took away that it has not refilled yet. */
  private refillLinesPending = 0;
  /** `stepVmm` spent the VMM's time; its next step returns to the kernel. */
  private vmmRan = false;
  /**
   * The share of the guest step that just ended (`onGuestStepEnd`) that was progress rather than the
   * stalls of its accesses: the timeline weighs the step's work by it.
   */
  stretchProgressShare = 1;

  // PolicyView
  exitReasonName = '';
  switchedToFullSinceEntry = false;
  vmmSinceEntry = false;
  nmiSinceEntry = false;
  interruptSinceEntry = false;
  faultedSinceEntry = false;
  /** KVM's `l1tf_flush_l1d` (PolicyView.l1tfFlushL1d says where it is set); cleared at VM entry. */
  l1tfFlushL1d = false;

  /** The exit being handled. */
  variant: CompiledVariant | null = null;
  private opIndex = 0;
  /** Where `leave` goes (full or vmm) and where it continues afterwards. */
  private leaveTarget: number = Mode.full;
  private leaveContinuation: number = Phase.handler;
  /** Where `returnIsolated` continues. */
  private returnContinuation: number = Phase.entry;
  private interruptVector = 0;
  private interruptContinuation: number = Phase.entry;
  /** Whether this thread holds its stun bit (only this thread sets or clears it). */
  stunHeld = false;
  private entryPathSpent = false;
  /** The interrupt being handled has been taken, and its op to resume at after a fault took it out. */
  private interruptStarted = false;
  private interruptOp = 0;
  /**
   * The isolation design (isolation-design.ts): the 2019 RFC's kvm:N (rfc2019-isolation.ts) or today's
   * Linux ASI (linux-asi-isolation.ts), called at the points where they differ.
   */
  private readonly design: IsolationDesign;
  /** IsolationDesign.hotPath: the design's points at every guest stretch, exit and handler op, or null. */
  private readonly hotPath: IsolationHotPath | null;
  /** Today's Linux ASI's state for this CPU (the design's), which the monitor reads; null under the 2019 RFC. */
  readonly linuxAsi: LinuxAsiCpu | null;
  /** IsolationDesign.interruptsInHost: interrupt sources fire during host handling too. */
  private readonly interruptsInHost: boolean;
  /** IsolationDesign.entersBeforeEveryEntry: every way back into the guest returns to isolation first. */
  private readonly entersBeforeEveryEntry: boolean;
  /**
   * Per exit reason and variant: this thread's counts and exit-to-entry cycles (cpu/exit-breakdown.ts),
   * read when the run is collected. `exitStatBase` is the record of the exit being handled (-1 before
   * the first exit), `exitAtCycles` the clock at that exit, until the entry that ends it times it.
   */
  readonly exitStats: Float64Array;
  private exitStatBase = -1;
  private exitAtCycles = 0;
  private exitTimed = true;

  /** When the guest exits next (drawn at entry), and when a halted vCPU's timer wakes it. */
  private nextExitAtCycles = 0;
  private nextWakeAtCycles = 0;
  private readonly i32: Int32Array;
  /** Machine.concurrent: siblings and monitors in other threads, so shared words need Atomics (memory/words.ts). */
  private readonly atomic: boolean;
  private readonly coreIndex: number;
  private readonly tlb: Tlb;
  /** The core's L1D and fill buffers (their counts, for INV-2's per-step question). */
  private readonly caches: CoreCaches;
  /** INV-2's count for this thread's VM on its core (the monitor and nosmt ask it at every guest step). */
  private readonly foreign: CoreForeignLines;
  /** The guest's address space (touchGuestMemory). */
  private readonly guestSpaceId: number;
  /** What the guest does: its exits, working set, halts and interrupt clocks (guest-workload.ts). */
  private readonly guest: GuestWorkload;
  /**
   * Lines the guest refills after an L1D flush: its working set, as far as the L1D holds it. A real
   * guest touches its working set many times over between two exits (a stretch is ~17k cycles even at
   * 150k exits/s), so at entry it holds all of it; the sim samples a few dozen of those accesses per
   * stretch (`guestAccessesPerStretchMax`), too few to stand for the refill (issue 19, calibration).
   */
  declare private readonly refillLinesAfterFlush: number;
  /** This thread's hot memory path (Machine.access): guest reads, handler lines, flushes. */
  private readonly access: ThreadAccess;
  /**
   * This thread's statistics record in the machine buffer (ThreadStat), as its own view: a stat is then
   * a constant index, where an offset into the whole buffer cost an add and its overflow check at
   * every count (a guest step counts five times).
   */
  private readonly stats: Float64Array;
  private readonly mailboxes: Mailboxes;
  /** The kick protocol's both sides for this thread (kick/kicker.ts). */
  private readonly kicker: Kicker;
  /** This thread's mailbox word (`Mailboxes.index`): polled at every guest and handler step. */
  private readonly mailboxIndex: number;
  private readonly catalogue: CompiledCatalogue;
  private readonly kickVariant: CompiledVariant;
  private readonly nmiVariant: CompiledVariant;
  private readonly machineCheckVariant: CompiledVariant;
  private readonly irqVariant: CompiledVariant;
  private readonly guestPages: number;
  /** The workload's guest quantum and accesses per quantum, read at every guest step. */
  private readonly guestQuantumCycles: number;
  private readonly guestAccessesPerQuantum: number;
  private readonly guestAccessesPerStretchMax: number;
  /**
   * Longest guest step, in cycles: the backend's choice. The sim runs a guest stretch as one wait on
   * the mailbox with the next exit as its deadline (+Infinity here); the workers backend, whose threads
   * poll their mailboxes in real time, steps it in quanta.
   */
  private readonly guestStepCyclesMax: number;
  /** This thread's speed by how many of its core's threads are busy (core-timeline.ts speedPerThread). */
  private readonly speedByBusy: Float64Array;
  private readonly siblingThreads: number[];
  /**
   * The positions of this core's other siblings that run a vCPU (`runningThreads`). None of them may
   * still be `offline` when this thread enters the guest: each starts into the host (its first KVM_RUN,
   * `stepStart`), the full kernel under a policy without ASI, by a mode change that no barrier guards.
   * Entering beside a running sibling still offline let that sibling come up in `full` beside guest code
   * (INV-1; seen on the workers backend, where each thread starts on its own). Set to empty once all of
   * them were seen started: no hyperthread returns to offline.
   */
  private unstartedSiblings: number[];

  readonly machine: Machine;
  readonly policy: Policy;
  /** Policy.usesAsi: whether the host side runs in kvm:N (ASI) or in the full kernel (the baselines). */
  private readonly usesAsi: boolean;
  /**
   * A host process runs here instead of a vCPU (the run's mix is a user mix, issue 22 item 4): its
   * "guest" stretches are user-mode work, its exits are kernel entries (cpu/exits.ts
   * `kernelEntryCatalogue`), and under today's ASI it enters the user class.
   */
  readonly process: boolean;
  /** Half a round trip into the host and back: a VM exit's, or a syscall's for a process. */
  private readonly halfRoundTripCycles: number;
  /** MachineConfig.kpti: a CR3 write on the way to the VMM and another on the way back. */
  private readonly kpti: boolean;
  /** What the policy's hooks see of this thread: read-only (policy-view.ts says why). */
  private readonly view: ThreadPolicyView;
  readonly costs: CostModel;
  readonly workload: Workload;
  readonly observer: Observer;
  readonly env: Environment;
  /** The confidential VM's memory work (the VMM side implements it), or null. */
  readonly confidential: ConfidentialWork | null;
  /** `env.random` as a function, for the confidential work's draws. */
  private readonly draw: () => number;

  constructor(
    machine: Machine,
    thread: number,
    policy: Policy,
    costs: CostModel,
    workload: Workload,
    observer: Observer,
    env: Environment,
    runningThreads: ReadonlySet<number>,
    /** The VM's confidential-memory work when it is a confidential VM (sim backend), else null. */
    confidential: ConfidentialWork | null = null,
    /** Longest guest step (`guestStepCyclesMax`): the sim's default, one event per stretch. */
    guestStepCyclesMax = Number.POSITIVE_INFINITY,
  ) {
    this.machine = machine;
    this.policy = policy;
    this.usesAsi = policy.usesAsi;
    this.process = mixClassOf(workload.mix) === 'user';
    this.halfRoundTripCycles = (this.process ? costs.syscallRoundTrip : costs.exitRoundTrip) / 2;
    this.kpti = machine.config.kpti;
    this.view = new ThreadPolicyView(this);
    this.costs = costs;
    this.workload = workload;
    this.observer = observer;
    this.env = env;
    this.confidential = confidential;
    this.draw = () => env.random();
    const { config, layout } = machine;
    assert(thread >= 0 && thread < layout.threadCount, `thread ${thread} out of range`);
    this.thread = thread;
    this.smt = config.smt;
    this.core = Math.floor(thread / config.smt);
    this.sibling = thread % config.smt;
    this.siblingFields = siblingFieldsMask(this.sibling, config.smt);
    this.i32 = machine.i32;
    this.atomic = machine.concurrent;
    this.coreIndex = coreFieldIndex(layout, this.core, CoreField.state);
    this.tlb = machine.tlbs[thread];
    this.caches = machine.caches[this.core];
    this.access = machine.access.thread(thread);
    const statBase = threadStatIndex(layout, thread, 0);
    this.stats = machine.f64.subarray(statBase, statBase + ThreadStat.count);
    this.mailboxes = new Mailboxes(machine.i32, machine.f64, layout, machine.concurrent);
    this.mailboxIndex = this.mailboxes.index(thread);
    let vmId = -1;
    let vcpu = -1;
    machine.pinning.forEach((pins, vm) => {
      const index = pins.indexOf(thread);
      if (index >= 0) {
        vmId = vm;
        vcpu = index;
      }
    });
    assert(vmId >= 0, `thread ${thread} runs no vCPU`);
    this.vmId = vmId;
    this.vcpu = vcpu;
    this.foreign = new CoreForeignLines(
      this.caches.l1d.countsView(),
      this.caches.fillBuffers.countsView(),
      vmId,
      machine.concurrent,
    );
    Atomics.store(this.i32, threadFieldIndex(layout, thread, ThreadField.vmId), vmId);
    Atomics.store(this.i32, threadFieldIndex(layout, thread, ThreadField.vcpu), vcpu);
    this.catalogue = compiledCatalogueOf(machine, thread, vmId, vcpu, workload.catalogue);
    this.exitStats = newExitStats(catalogueVariantCount(workload.catalogue));
    const variantOf = (reason: string, variant: string) => {
      const reasonIndex = exitReasonIndex(reason);
      const found = this.catalogue.variants[reasonIndex].find(
        (candidate) => candidate.name === `${reason}:${variant}`,
      );
      assert(found !== undefined, `catalogue has ${reason}:${variant}`);
      return found;
    };
    this.kickVariant = variantOf('EXTERNAL_INTERRUPT', 'kick');
    this.nmiVariant = variantOf('EXCEPTION_NMI', 'host-nmi');
    this.machineCheckVariant = variantOf('MACHINE_CHECK', 'mce');
    this.irqVariant = variantOf('EXTERNAL_INTERRUPT', 'device');
    this.guestPages = config.vms[vmId].guestMemoryMiB * ((1024 * 1024) / pageBytes);
    this.guestSpaceId = guestSpace(vmId);
    // Guest pages go to the TLB as page numbers below 2^30 (`translatePage`); memory is at most 8 TiB.
    assert(this.guestPages <= 2 ** 30, 'guest page numbers fit translatePage');
    this.guestQuantumCycles = workload.guestQuantumCycles;
    this.guestAccessesPerQuantum = workload.guestAccessesPerQuantum;
    this.guestAccessesPerStretchMax = workload.guestAccessesPerStretchMax;
    assert(guestStepCyclesMax >= 1, 'a guest step runs at least a cycle');
    this.guestStepCyclesMax = guestStepCyclesMax;
    const speedup = smtSpeedupOf(workload, config.smt);
    this.speedByBusy = new Float64Array(config.smt + 1);
    for (let busy = 0; busy <= config.smt; busy++)
      this.speedByBusy[busy] = speedPerThread(busy, config.smt, speedup);
    this.siblingThreads = [];
    for (let sibling = 0; sibling < this.smt; sibling++)
      this.siblingThreads.push(this.core * this.smt + sibling);
    this.unstartedSiblings = [];
    for (let sibling = 0; sibling < this.smt; sibling++) {
      if (sibling !== this.sibling && runningThreads.has(this.siblingThreads[sibling]))
        this.unstartedSiblings.push(sibling);
    }
    this.kicker = new Kicker(
      {
        i32: machine.i32,
        layout,
        atomic: machine.concurrent,
        mailboxes: this.mailboxes,
        notifier: env,
        thread,
        sibling: this.sibling,
        siblingThreads: this.siblingThreads,
        coreI32Index: this.coreIndex,
        ipiSendCycles: costs.ipiSend,
        ipiDeliveryCycles: costs.ipiDelivery,
      },
      policy,
      this.view,
      this,
    );
    assert(
      ThreadStat.faultsByReasonBase + exitCatalogue.length <= ThreadStat.count,
      'fault counters fit the stats record',
    );
    // The guest's draws begin here (the interrupt clocks' first arrivals): after every other setup.
    this.guest = new GuestWorkload(
      workload,
      env,
      this.mailboxes,
      thread,
      resolveMix(workload.mix, 'workload.mix', workload.catalogue),
      this.catalogue,
      vcpu,
      this.guestPages,
      machine.pinning[vmId].filter((other) => other !== thread && runningThreads.has(other)),
    );
    this.design = isolationDesignOf(policy, {
      host: this,
      machine,
      tlb: this.tlb,
      core: this.core,
      sibling: this.sibling,
      vmId,
      process: this.process,
      costs,
    });
    this.linuxAsi = this.design.linuxAsi;
    this.hotPath = this.design.hotPath;
    this.interruptsInHost = this.design.interruptsInHost;
    this.entersBeforeEveryEntry = this.design.entersBeforeEveryEntry;
    this.refillLinesAfterFlush = Math.min(
      this.guest.workingSetPages * (pageBytes / cacheLineBytes),
      config.l1d.sets * config.l1d.ways,
    );
  }

  // ---- PolicyView ---------------------------------------------------------------------------------------

  coreWord(): number {
    return loadWord(this.i32, this.coreIndex, this.atomic);
  }

  foreignLines(): number {
    return this.foreign.count();
  }

  /** This thread's pending vectors (`Mailboxes.pending` of its own mailbox, its index kept). */
  private ownPending(): number {
    return this.mailboxes.pendingAt(this.mailboxIndex);
  }

  // ---- statistics ---------------------------------------------------------------------------------------

  /** Counts one of this thread's statistics (ThreadStat). */
  count(stat: number): void {
    this.stats[stat]++;
  }

  /** Counts `field` (ExitStatField) for the exit being handled. */
  private countExit(field: number): void {
    if (this.exitStatBase >= 0) this.exitStats[this.exitStatBase + field]++;
  }

  /** The VM entry that ends the exit being handled: its cycles from exit to entry (perf kvm stat's time). */
  private timeExit(): void {
    if (this.exitTimed) return;
    this.exitTimed = true;
    const stats = this.exitStats;
    const base = this.exitStatBase;
    const cycles = this.clockCycles - this.exitAtCycles;
    stats[base + ExitStatField.timed]++;
    stats[base + ExitStatField.cycles] += cycles;
    if (cycles < stats[base + ExitStatField.minCycles]) stats[base + ExitStatField.minCycles] = cycles;
    if (cycles > stats[base + ExitStatField.maxCycles]) stats[base + ExitStatField.maxCycles] = cycles;
  }

  /**
   * Advances this thread's clock. The cycles are charged to the current mode when it changes (`casMode`)
   * or the counters are published, and the clock's word in the buffer is written by `publishCounters`.
   */
  spend(cycles: number): void {
    this.clockCycles += cycles;
  }

  /** Charges the cycles since the last charge to the current mode (ThreadStat's cycles per mode). */
  private chargeMode(): void {
    this.stats[statModeCyclesBase + this.mode] += this.clockCycles - this.modeSinceCycles;
    this.modeSinceCycles = this.clockCycles;
  }

  /**
   * Writes the counters a step moves every time to this thread's stats in the buffer (`ThreadStat`'s
   * clockCycles, steps, guestSteps, guestUsefulCycles) and charges the current mode's cycles, where
   * other threads, the workers' controller and a run's result read them. The backend calls it where
   * such a reader may look: the sim at the end of a run (nothing reads the words during one), the
   * workers after every step and wait and before every wake. Written as they changed instead (the clock
   * and the mode's cycles at every `spend`, the rest at every step), they cost ~6% of a sim step
   * (docs/perf-log.md).
   */
  publishCounters(): void {
    this.chargeMode();
    const stats = this.stats;
    stats[statClockCycles] = this.clockCycles;
    stats[statSteps] = this.steps;
    stats[statGuestSteps] = this.guestSteps;
    stats[statGuestUsefulCycles] = this.guestUsefulCycles;
    if (this.guestWorkCycles > 0) stats[statGuestWorkCycles] = this.guestWorkCycles;
  }

  /** The backend moves the clock forward after a wait (to the waker's time, or the deadline). */
  advanceTo(cycles: number): void {
    if (cycles > this.clockCycles) this.spend(cycles - this.clockCycles);
  }

  // ---- KickerHost: what the kicker counts --------------------------------------------------------------

  kickSent(target: number, rekick: boolean): void {
    if (rekick) this.count(ThreadStat.kickRetries);
    this.count(ThreadStat.kicksSent);
    this.countExit(ExitStatField.kicksSent);
    this.observer.onKick(this, target);
  }

  interruptInKickWait(): void {
    this.count(ThreadStat.interruptsDuringKickWait);
  }

  // ---- mode changes: every one a CAS of the core word ------------------------------------------------------

  /** Sets this thread's mode if `allowed(word)` holds for the word it replaces; returns success. */
  private casMode(to: number, expectedWord: number): boolean {
    const next = withMode(expectedWord, this.sibling, to);
    if (compareExchangeWord(this.i32, this.coreIndex, expectedWord, next, this.atomic) !== expectedWord)
      return false;
    const from = this.mode;
    this.chargeMode();
    this.mode = to;
    this.env.notify(this.coreIndex, this.clockCycles);
    this.observer.onModeChange(this, from, to);
    return true;
  }

  /** Sets this thread's mode whatever the siblings do (the CAS only keeps their nibbles intact). */
  setMode(to: number): void {
    for (let attempt = 0; attempt < retriesMax; attempt++) {
      if (this.casMode(to, this.coreWord())) return;
    }
    assert(false, `thread ${this.thread}: core word never settled`);
  }

  setStun(on: boolean): void {
    const bit = stunBit(this.sibling);
    if (on) orWord(this.i32, this.coreIndex, bit, this.atomic);
    else andWord(this.i32, this.coreIndex, ~bit, this.atomic);
    this.stunHeld = on;
    this.env.notify(this.coreIndex, this.clockCycles);
  }

  private wait(index: number, value: number, deadlineCycles = Number.POSITIVE_INFINITY): number {
    this.waitIndex = index;
    this.waitValue = value;
    this.waitDeadlineCycles = deadlineCycles;
    return StepCode.wait;
  }

  // ---- the step ----------------------------------------------------------------------------------------

  step(): number {
    this.steps++;
    // The commonest phases first: the cases compare in order (two out of three steps are guest quanta).
    switch (this.phase) {
      case Phase.guest:
        return this.stepGuest();
      case Phase.handler:
        return this.stepHandler();
      case Phase.start:
        return this.stepStart();
      case Phase.entry:
        return this.stepEntry();
      case Phase.barrier:
        return this.stepBarrier();
      case Phase.enterCommit:
        return this.stepEnterCommit();
      case Phase.exitKick:
        return this.stepExitKick();
      case Phase.exitWait:
        return this.stepExitWait();
      case Phase.leave:
        return this.stepLeave();
      case Phase.leaveWait:
        return this.stepLeaveWait();
      case Phase.action:
        return this.stepAction();
      case Phase.vmm:
        return this.stepVmm();
      case Phase.idle:
        return this.stepIdle();
      case Phase.interrupt:
        return this.stepInterrupt();
      case Phase.returnIsolated:
        return this.stepReturnIsolated();
    }
    assert(false, `thread ${this.thread}: unknown phase ${this.phase}`);
  }

  private stepStart(): number {
    // Into the host's first address space and mode: kvm:N and isolated under ASI, the kernel and full
    // without (today's ASI: asi_enter at once).
    this.design.start();
    // The first KVM_RUN: `vcpu_run` (arch/x86/kvm/x86.c) sets l1tf_flush_l1d.
    this.l1tfFlushL1d = true;
    this.phase = Phase.entry;
    return StepCode.ran;
  }

  // ---- entry ------------------------------------------------------------------------------------------

  private stepEntry(): number {
    if (this.policy.plantedBugs.flushPoint === 'before-barrier')
      this.flush(this.policy.flushBeforeEntry(this.view));
    this.phase = Phase.barrier;
    return this.stepBarrier();
  }

  private stepBarrier(): number {
    const word = this.coreWord();
    if (this.siblingsStarted(word) && this.policy.mayEnter(word, this.view)) {
      if (!this.policy.plantedBugs.atomicEntry) {
        // Planted race: the barrier said yes; the entry path runs (half an exit round trip, as in
        // `entered`) and commits in a later step, unchecked.
        this.spend(this.halfRoundTripCycles);
        this.entryPathSpent = true;
        this.phase = Phase.enterCommit;
        return StepCode.ran;
      }
      if (this.casMode(Mode.guest, word)) return this.entered();
      return StepCode.ran; // the word moved: look again
    }
    if (this.mode !== Mode.held) {
      this.casMode(Mode.held, word);
      return StepCode.ran;
    }
    return this.wait(this.coreIndex, word);
  }

  /**
   * Whether every running sibling has made its first step into the host in `word` (`unstartedSiblings`
   * says why the entry barrier asks). Part of the barrier: checked on the word the entry's CAS expects,
   * so a sibling cannot start between the check and the entry. The sim steps every thread's start before
   * any other step (run-sim.ts), so there it always holds; the workers' threads start on their own.
   */
  private siblingsStarted(word: number): boolean {
    const unstarted = this.unstartedSiblings;
    if (unstarted.length === 0) return true;
    for (const sibling of unstarted) if (modeOf(word, sibling) === Mode.offline) return false;
    this.unstartedSiblings = [];
    return true;
  }

  private stepEnterCommit(): number {
    this.setMode(Mode.guest);
    return this.entered();
  }

  /** The entry is committed (mode is guest): flush, then VM entry. */
  private entered(): number {
    if (this.policy.plantedBugs.flushPoint === 'after-barrier')
      this.flush(this.policy.flushBeforeEntry(this.view));
    // A kick still pending from before this entry is stale (Kicker.dropStaleKick says why).
    if (this.kicker.dropStaleKick()) this.count(ThreadStat.kicksWhileOut);
    if (!this.entryPathSpent) this.spend(this.halfRoundTripCycles);
    this.entryPathSpent = false;
    this.count(ThreadStat.entries);
    this.timeExit();
    this.switchedToFullSinceEntry = false;
    this.vmmSinceEntry = false;
    this.nmiSinceEntry = false;
    this.interruptSinceEntry = false;
    this.faultedSinceEntry = false;
    // `vmx_l1d_flush` clears the vCPU's flag and the CPU's at every entry, flushing or not.
    this.l1tfFlushL1d = false;
    this.nextExitAtCycles = this.guest.exitAfter(this.clockCycles);
    this.phase = Phase.guest;
    this.observer.onEnter(this);
    return StepCode.ran;
  }

  flush(bits: number): void {
    if (bits === Flush.none) return;
    let lines = 0;
    if (bits & Flush.l1d) {
      lines += this.access.flushL1d();
      this.spend(this.costs.l1dFlush);
      // The guest's lines come back from L2 as it touches them again: stalls of its next stretches.
      this.refillLinesPending = this.refillLinesAfterFlush;
      this.count(ThreadStat.l1dFlushes);
      addWord(this.i32, coreFieldIndex(this.machine.layout, this.core, CoreField.flushCount), 1, this.atomic);
    }
    if (bits & Flush.buffers) {
      lines += this.access.flushFillBuffers();
      this.spend(this.costs.bufferClear);
      this.count(ThreadStat.bufferClears);
    }
    this.observer.onFlush(this, bits, lines);
  }

  /** The flush the policy asks for before an entry (Policy.flushBeforeEntry), made. */
  flushBeforeEntry(): void {
    this.flush(this.policy.flushBeforeEntry(this.view));
  }

  /** Today's Linux ASI: the VMM (the user class's victim) starts running on this thread. */
  userRunStarts(): void {
    this.observer.onUserRun?.(this);
  }

  // ---- the guest ----------------------------------------------------------------------------------------

  /**
   * A guest stretch, or the exit that ends the guest's run. A stretch runs until the next event that
   * can end it: the next exit, the next interrupt arrival, a kick becoming visible (its IPI latency).
   * In the sim it is one wait on this thread's mailbox with that time as the deadline, so a kick or an
   * IPI sent meanwhile wakes it at the sender's clock and it looks again; the workers backend steps it
   * in pieces of `guestStepCyclesMax`. The rare paths (interrupt sources firing, a pending mailbox) are
   * methods of their own.
   */
  private stepGuest(): number {
    if (this.stretchStartCycles >= 0) this.endStretch();
    if (this.clockCycles >= this.guest.nextArrivalAtCycles) this.guest.arriveInterrupts(this.clockCycles);
    const pending = this.ownPending();
    if (pending !== 0 && this.exitForPending(pending)) return StepCode.ran;
    if (this.clockCycles >= this.nextExitAtCycles) return this.takeExit(this.guest.drawExit(), 0);
    let endCycles = Math.min(this.nextExitAtCycles, this.guest.nextArrivalAtCycles);
    if (pending & Vector.kick) endCycles = this.kickVisibleBy(endCycles);
    const cycles = Math.max(1, Math.min(this.guestStepCyclesMax, endCycles - this.clockCycles));
    // The stretch's own accesses first (their stalls are guest time, not guest progress).
    const quanta = Math.ceil(cycles / this.guestQuantumCycles);
    const accesses = Math.min(this.guestAccessesPerStretchMax, quanta * this.guestAccessesPerQuantum);
    // The stretch's accesses are made at its start (their lines are in the L1D from then on); their
    // stalls are guest time without progress, taken out of the stretch's progress at its end.
    let stallCycles = this.touchGuestMemory(accesses);
    if (this.refillLinesPending > 0) stallCycles += this.refillAfterFlush(cycles, accesses);
    this.guestSteps++;
    if (this.hotPath !== null) this.hotPath.guestRuns();
    this.observer.onGuestStep(this);
    if (this.guestStepCyclesMax === Number.POSITIVE_INFINITY) {
      this.stretchStartCycles = this.clockCycles;
      this.stretchStallCycles = stallCycles;
      return this.wait(this.mailboxIndex, this.ownPending(), endCycles);
    }
    this.spend(stallCycles + cycles);
    this.guestUsefulCycles += cycles;
    this.guestWorkCycles += cycles * this.speedNow();
    this.stretchProgressShare = cycles / (stallCycles + cycles);
    this.observer.onGuestStepEnd(this);
    return StepCode.ran;
  }

  /**
   * The stall of refilling, in a stretch of `cycles`, the guest's lines an L1D flush took away; the
   * stretch's own `accesses` already paid for theirs (as misses). A stretch refills at most what fits in
   * it; the rest waits for the next (or the next flush starts over).
   */
  private refillAfterFlush(cycles: number, accesses: number): number {
    const cost = this.costs.l1dRefillLine;
    const pending = Math.max(0, this.refillLinesPending - accesses);
    const lines = cost > 0 ? Math.min(pending, Math.ceil(cycles / cost)) : pending;
    this.refillLinesPending = pending - lines;
    return lines * cost;
  }

  /**
   * This thread's speed now, from how many of its core's threads are busy in the core word (its own
   * mode counts: it is running). What a host compute op takes, and a workers guest quantum's work; the
   * sim's guest stretches are weighed in virtual time by its timeline instead.
   */
  private speedNow(): number {
    const word = this.coreWord();
    let busy = 0;
    for (let sibling = 0; sibling < this.smt; sibling++) if (isBusy(modeOf(word, sibling))) busy++;
    return this.speedByBusy[Math.max(1, busy)];
  }

  /**
   * The stretch this thread waited in is over (woken, or at its deadline): its cycles were guest
   * progress, less the stalls of its accesses.
   */
  private endStretch(): void {
    const cycles = this.clockCycles - this.stretchStartCycles;
    const useful = Math.max(0, cycles - this.stretchStallCycles);
    this.guestUsefulCycles += useful;
    this.stretchProgressShare = cycles > 0 ? useful / cycles : 0;
    this.stretchStartCycles = -1;
    this.observer.onGuestStepEnd(this);
  }

  /**
   * The end of a stretch with a kick pending: when the kick becomes visible (sent + IPI latency), if
   * that is still ahead. A kick already visible that did not make the guest exit (the policy's
   * `exitOnKick` said no) ends nothing.
   */
  private kickVisibleBy(endCycles: number): number {
    const visibleAt = this.kicker.kickVisibleAtCycles();
    return visibleAt > this.clockCycles && visibleAt < endCycles ? visibleAt : endCycles;
  }

  /**
   * The end of a run (sim): a stretch still open is closed at `endCycles` (or its deadline, if
   * sooner), so its guest time counts up to where the run stopped.
   */
  closeStretch(endCycles: number): void {
    if (this.stretchStartCycles < 0) return;
    this.advanceTo(Math.min(endCycles, this.waitDeadlineCycles));
    this.endStretch();
  }

  /** Takes the exit a pending vector causes in the guest; false when none does (the guest runs on). */
  private exitForPending(pending: number): boolean {
    if (pending & Vector.nmi) {
      this.takeExit(this.nmiVariant, Vector.nmi);
      return true;
    }
    if (pending & Vector.machineCheck) {
      this.takeExit(this.machineCheckVariant, Vector.machineCheck);
      return true;
    }
    if (pending & Vector.irq) {
      this.takeExit(this.irqVariant, Vector.irq);
      return true;
    }
    if (
      pending & Vector.kick &&
      this.env.ipiVisible(this.clockCycles, this.kicker.kickVisibleAtCycles()) &&
      this.policy.exitOnKick(this.view)
    ) {
      this.count(ThreadStat.kicksReceived);
      this.takeExit(this.kickVariant, Vector.kick);
      return true;
    }
    // A wake IPI for a running vCPU is a posted interrupt: no exit.
    if (pending & Vector.wake) this.mailboxes.take(this.thread, Vector.wake);
    return false;
  }

  /**
   * `accesses` of the guest's memory accesses; returns the cycles they took, which the caller spends
   * (one clock update per guest step instead of one per access).
   */
  private touchGuestMemory(accesses: number): number {
    if (this.confidential !== null) {
      let cycles = 0;
      for (let i = 0; i < accesses; i++) cycles += this.touchGuestAccess(cycles);
      return cycles;
    }
    // Each access draws its page and line of the working set, then reads it: in one call of the access
    // path for the whole stretch.
    return this.access.guestReads(
      this.guestSpaceId,
      this.guest.firstWorkingPage,
      this.guest.workingSetPages,
      accesses,
      this.costs.cacheHit,
      this.costs.cacheMiss,
      this.env.guestDraws,
    );
  }

  /**
   * One guest access of a confidential VM's stretch, whose memory work is told of each access at its time;
   * `cycles`: what its earlier accesses took. Returns what it took.
   */
  private touchGuestAccess(cycles: number): number {
    const guestLine = this.guest.drawAccess();
    const page = Math.floor(guestLine / linesPerPage);
    const line = guestLine - page * linesPerPage;
    // The time of this access: the quantum's earlier accesses are not spent yet.
    if (this.confidential !== null) this.confidential.guestTouch(page, this.clockCycles + cycles);
    // The translation, the frame's owner and the cache access in one call of the access path.
    const done = this.access.guestRead(this.guestSpaceId, page, line);
    // An unmapped GPA (-1) would be an EPT violation; the mix draws those.
    if (done < 0) return 0;
    return done === 1 ? this.costs.cacheHit : this.costs.cacheMiss;
  }

  /** The cost of a line access the access path answered (pfn x 2 + 1 for an L1D hit). */
  private lineCycles(done: number): number {
    return (done & 1) === 1 ? this.costs.cacheHit : this.costs.cacheMiss;
  }

  // ---- exits and handlers ---------------------------------------------------------------------------------

  private takeExit(variant: CompiledVariant, vector: number): number {
    this.variant = variant;
    this.exitReasonName = variant.reasonName;
    this.exitStatBase = variant.slot * ExitStatField.count;
    this.exitAtCycles = this.clockCycles;
    this.exitTimed = false;
    this.exitStats[this.exitStatBase + ExitStatField.exits]++;
    // Without ASI the exit path runs in the full kernel; a kick on exit goes out from the exit path
    // first, which touches only the vCPU's state (mode isolated) until the siblings are out.
    const kickFirst = !this.usesAsi && this.policy.kickOnExit(this.view);
    this.setMode(this.usesAsi || kickFirst ? Mode.isolated : Mode.full);
    if (vector !== 0) this.mailboxes.take(this.thread, vector);
    if (vector === Vector.kick) this.kicker.acknowledge(this.clockCycles);
    if (vector === Vector.nmi) this.nmiSinceEntry = true;
    // An exit for an interrupt runs its handler (`kvm_before_interrupt`: the CPU's l1tf_flush_l1d); a
    // handler outside KVM's confined set sets the vCPU's (PolicyView.l1tfFlushL1d).
    if (vector !== 0) {
      this.interruptSinceEntry = true;
      this.l1tfFlushL1d = true;
    }
    if (!variant.confined) this.l1tfFlushL1d = true;
    // The VMCS host CR3 is kvm:N under ASI: the exit lands in the isolated address space. Without ASI it
    // is the kernel's, where this thread's CR3 already is.
    if (this.usesAsi) this.tlb.switchTo(kvmSpace(this.vmId));
    this.spend(this.halfRoundTripCycles);
    this.count(ThreadStat.exits);
    this.opIndex = 0;
    this.observer.onExit(this, variant);
    if (this.hotPath !== null) this.hotPath.exited(vector, variant);
    const kick = this.usesAsi ? this.policy.kickOnExit(this.view) : kickFirst;
    this.phase = kick ? Phase.exitKick : Phase.handler;
    return StepCode.ran;
  }

  private stepExitKick(): number {
    this.kicker.kick();
    this.kicker.beginWait();
    if (this.policy.waitForSiblingsOut(this.view)) {
      this.phase = Phase.exitWait;
      return StepCode.ran;
    }
    if (!this.usesAsi) this.setMode(Mode.full);
    this.phase = Phase.handler;
    return StepCode.ran;
  }

  /**
   * The kicker's wait (Kicker.waitForSiblings): `satisfied` when the policy's condition holds, else a
   * Step code (ran after a re-kick; wait on the word the kicker names).
   */
  private siblingsOutOrWait(): number {
    const outcome = this.kicker.waitForSiblings();
    if (outcome === KickWait.out) return satisfied;
    if (outcome === KickWait.rekicked) return StepCode.ran;
    return this.wait(this.kicker.waitIndex, this.kicker.waitValue);
  }

  private stepExitWait(): number {
    const result = this.siblingsOutOrWait();
    if (result !== satisfied) return result;
    if (!this.usesAsi) {
      // The siblings are out: the handler runs in the full kernel. No CR3 write: CR3 never left it. The
      // mode changes only if the word that satisfied the wait still stands (one CAS), as in leaveWait.
      const word = this.coreWord();
      const stands = this.policy.plantedBugs.waitFor === 'ack' || this.policy.siblingsOut(word, this.view);
      if (!stands || !this.casMode(Mode.full, word)) return StepCode.ran;
    }
    this.phase = Phase.handler;
    return StepCode.ran;
  }

  private stepHandler(): number {
    const variant = this.variant;
    assert(variant !== null, 'a handler runs for an exit');
    // Today's ASI: interrupt sources fire during host handling too, so that they land in the critical
    // section an interrupt exit opened and nest (the 2019 paths take them at the next guest stretch).
    if (this.interruptsInHost && this.clockCycles >= this.guest.nextArrivalAtCycles)
      this.guest.arriveInterrupts(this.clockCycles);
    const pending = this.ownPending();
    if (pending & interruptVectors) return this.beginInterrupt(pending, Phase.handler);
    if (this.opIndex >= variant.kinds.length) {
      // An exit to the VMM leaves isolation too (its action runs next), though its handler did not.
      const stayed =
        !this.switchedToFullSinceEntry && this.mode === Mode.isolated && variant.action !== 'vmm';
      if (!variant.isKick) this.count(stayed ? ThreadStat.exitsIsolatedOnly : ThreadStat.exitsLeftIsolation);
      this.countExit(ExitStatField.handled);
      if (stayed) this.countExit(ExitStatField.isolated);
      this.phase = Phase.action;
      return StepCode.ran;
    }
    const op = this.opIndex;
    if (variant.kinds[op] === OpKind.compute) {
      // Host code shares the core as guest code does: slower beside a busy sibling.
      this.spend(variant.amounts[op] / this.speedNow());
      this.opIndex++;
      return StepCode.ran;
    }
    let space = this.tlb.cr3;
    const access = variant.writes[op] ? Access.write : Access.read;
    const firstVa = variant.vas[op];
    if (this.hotPath !== null && this.mode === Mode.isolated) {
      // The design's restricted space decides (today's ASI: its denylist, or its ephmap). Without one,
      // kvm:N's tables decide as the access is walked in CR3 below.
      space = this.hotPath.handlerAccessSpace(firstVa, variant.amounts[op]);
      if (space < 0) return this.handlerFault(variant, firstVa);
    }
    for (let line = 0; line < variant.amounts[op]; line++) {
      const va = firstVa + line * cacheLineBytes;
      // The translation, the frame's owner and the cache access in one call of the access path. The
      // monitor sees the access after it was made: it reads owners and page tables, not caches.
      const done = this.access.lineAccess(space, va, access);
      if (done < 0) return this.handlerFault(variant, va);
      this.observer.onAccess(this, va, space, done >>> 1);
      this.spend(this.lineCycles(done));
    }
    this.opIndex++;
    return StepCode.ran;
  }

  /**
   * A handler access missed in kvm:N (INV-7): reported (handler, VA) and handled by a switch to the
   * full address space; the op is retried there. The rare path, out of `stepHandler`.
   */
  private handlerFault(variant: CompiledVariant, va: number): number {
    // In the full kernel address space nothing is left to switch to: the handler cannot run (a write to
    // read-only memory, say). An error naming it, not a retry that would loop forever.
    if (this.mode !== Mode.isolated) this.handlerCannotRun(variant, va);
    this.count(ThreadStat.faults);
    this.count(ThreadStat.faultsByReasonBase + variant.reason);
    this.faultedSinceEntry = true;
    this.spend(this.costs.pageFault);
    this.observer.onFault(this, va, variant);
    this.design.faulted();
    return this.beginLeave(Mode.full, Phase.handler);
  }

  private handlerCannotRun(variant: CompiledVariant, va: number): never {
    assert(
      false,
      `thread ${this.thread}: handler ${variant.name} faulted at 0x${va.toString(16)} in ${modeNames[this.mode]} mode: it cannot run in any address space`,
    );
  }

  // ---- leaving isolation --------------------------------------------------------------------------------

  private beginLeave(target: number, continuation: number): number {
    this.leaveTarget = target;
    this.leaveContinuation = continuation;
    this.phase = Phase.leave;
    return StepCode.ran;
  }

  private stepLeave(): number {
    if (this.mode !== Mode.isolated) {
      // Already out of isolation (full, after a fault): no sibling can be in the guest under a policy
      // that waited; move on to the target.
      if (this.mode !== this.leaveTarget) this.setMode(this.leaveTarget);
      return this.switched(false);
    }
    if (this.policy.stun && !this.stunHeld) this.setStun(true);
    if (this.policy.kickBeforeFull(this.view)) this.kicker.kick();
    this.kicker.beginWait();
    if (this.policy.waitForSiblingsOut(this.view)) {
      this.phase = Phase.leaveWait;
      return StepCode.ran;
    }
    this.setMode(this.leaveTarget);
    return this.switched(true);
  }

  private stepLeaveWait(): number {
    const result = this.siblingsOutOrWait();
    if (result !== satisfied) return result;
    if (this.policy.plantedBugs.waitFor === 'ack') {
      this.setMode(this.leaveTarget);
      return this.switched(true);
    }
    // Switch only if the word that satisfied the condition still stands (one CAS).
    const word = this.coreWord();
    if (!this.policy.siblingsOut(word, this.view) || !this.casMode(this.leaveTarget, word))
      return StepCode.ran;
    return this.switched(true);
  }

  /** The leave is let through (the mode is set): out of the restricted space, then on. */
  private switched(fromIsolated: boolean): number {
    this.design.left(this.leaveTarget === Mode.vmm);
    if (this.leaveTarget === Mode.full) {
      if (fromIsolated) {
        this.count(ThreadStat.switchesToFull);
        this.countExit(ExitStatField.switchesToFull);
      }
      this.switchedToFullSinceEntry = true;
    } else {
      this.vmmSinceEntry = true;
    }
    if (fromIsolated) this.observer.onSwitchToFull(this, this.leaveTarget);
    if (fromIsolated && this.policy.kickAfterFull(this.view)) this.kicker.kick();
    this.phase = this.leaveContinuation;
    return StepCode.ran;
  }

  // ---- interrupts arriving in isolation (INV-8) -------------------------------------------------------------

  private beginInterrupt(pending: number, continuation: number): number {
    this.interruptVector =
      pending & Vector.nmi ? Vector.nmi : pending & Vector.machineCheck ? Vector.machineCheck : Vector.irq;
    this.interruptContinuation = continuation;
    this.interruptStarted = false;
    this.interruptOp = 0;
    // Handled where it lands (today's ASI), or in full only (2019: leave isolation first, kicking).
    if (this.design.interruptArrives(this.interruptVector) || this.mode === Mode.full) {
      this.phase = Phase.interrupt;
      return StepCode.ran;
    }
    return this.beginLeave(Mode.full, Phase.interrupt);
  }

  /**
   * Runs the interrupt's handler, then its return (back to isolation under the 2019 RFC, where today's
   * ASI's outermost return re-enters) and continues. An access the restricted space does not map (today's
   * ASI: the handler runs where it landed) faults out through the sibling protocol, and the handler
   * resumes at that op in full.
   */
  private stepInterrupt(): number {
    const vector = this.interruptVector;
    const variant =
      vector === Vector.nmi
        ? this.nmiVariant
        : vector === Vector.machineCheck
          ? this.machineCheckVariant
          : this.irqVariant;
    if (!this.interruptStarted) {
      this.interruptStarted = true;
      this.mailboxes.take(this.thread, vector);
      this.observer.onInterrupt(this, vector);
      this.count(ThreadStat.interruptsHandled);
      if (vector === Vector.nmi) this.nmiSinceEntry = true;
      this.interruptSinceEntry = true;
      // `irq_enter` / the NMI entry set the CPU's l1tf_flush_l1d (kvm_set_cpu_l1tf_flush_l1d).
      this.l1tfFlushL1d = true;
    }
    for (let op = this.interruptOp; op < variant.kinds.length; op++) {
      if (variant.kinds[op] === OpKind.compute) {
        this.spend(variant.amounts[op] / this.speedNow());
        continue;
      }
      let space = this.tlb.cr3;
      if (this.mode === Mode.isolated) {
        space = this.design.interruptAccessSpace(variant.vas[op]);
        if (space < 0) return this.interruptFault(variant, op);
      }
      for (let line = 0; line < variant.amounts[op]; line++) {
        const va = variant.vas[op] + line * cacheLineBytes;
        const done = this.access.lineAccess(space, va, variant.writes[op] ? Access.write : Access.read);
        if (done < 0) assert(false, `thread ${this.thread}: interrupt handler access faulted in ${space}`);
        this.observer.onAccess(this, va, space, done >>> 1);
        this.spend(this.lineCycles(done));
      }
    }
    this.interruptOp = 0;
    this.interruptStarted = false;
    if (this.design.interruptReturns()) {
      this.returnContinuation = this.interruptContinuation;
      this.phase = Phase.returnIsolated;
      return StepCode.ran;
    }
    this.phase = this.interruptContinuation;
    return StepCode.ran;
  }

  /** An interrupt handler's access at `op` missed in isolation: reported, and out to full to resume there. */
  private interruptFault(variant: CompiledVariant, op: number): number {
    this.interruptOp = op;
    this.count(ThreadStat.faults);
    this.spend(this.costs.pageFault);
    this.observer.onFault(this, variant.vas[op], variant);
    this.design.faulted();
    return this.beginLeave(Mode.full, Phase.interrupt);
  }

  // ---- the end of a handler ---------------------------------------------------------------------------------

  /** The `halt` action's end: the thread goes idle until its next wake-up (the mix draws when). */
  private halt(): number {
    this.count(ThreadStat.halts);
    this.setMode(Mode.idle);
    this.nextWakeAtCycles = this.guest.wakeAfter(this.clockCycles);
    this.phase = Phase.idle;
    return StepCode.ran;
  }

  /** The `resume` action: a confidential VM's page accepted where the variant converts one. */
  private resumeAction(variant: CompiledVariant): void {
    if (variant.conversion === 'accept' && this.confidential !== null) {
      this.confidential.accept(this.draw, this.clockCycles);
    }
  }

  /** The `ipi` action: a wake IPI to the peer vCPU the mix draws (none when it draws none). */
  private sendPeerWake(): void {
    const target = this.guest.drawPeer();
    if (target >= 0) {
      this.spend(this.costs.ipiSend);
      this.mailboxes.send(target, Vector.wake, this.clockCycles, this.env);
    }
  }

  /**
   * The end of a handler: the design's (today's ASI: the interrupt exit's return, asi_relax), then the
   * action. A halt from `full` returns to isolation first (the rule the siblings waiting at the barrier
   * rely on: a thread leaves `full` only by returning to isolation; the idle loop holds no secrets, but
   * the core's L1D would), and the action runs again from there.
   */
  private stepAction(): number {
    const variant = this.variant;
    assert(variant !== null, 'an action ends a handler');
    if (this.hotPath !== null && !this.hotPath.handlerEnds()) {
      this.returnContinuation = Phase.action;
      this.phase = Phase.returnIsolated;
      return StepCode.ran;
    }
    switch (variant.action) {
      case 'resume':
        this.resumeAction(variant);
        break;
      case 'ipi':
        this.sendPeerWake();
        break;
      case 'halt':
        if (this.mode === Mode.full && this.usesAsi) {
          this.returnContinuation = Phase.action;
          this.phase = Phase.returnIsolated;
          return StepCode.ran;
        }
        this.design.halts();
        return this.halt();
      case 'vmm':
        this.count(ThreadStat.vmmExits);
        return this.beginLeave(Mode.vmm, Phase.vmm);
    }
    if ((this.mode === Mode.full && this.usesAsi) || this.entersBeforeEveryEntry) {
      this.returnContinuation = Phase.entry;
      this.phase = Phase.returnIsolated;
      return StepCode.ran;
    }
    this.phase = Phase.entry;
    return StepCode.ran;
  }

  /** One CR3 write: with PCID and the no-flush bit, or without PCID (costs.ts has both sources). */
  cr3WriteCycles(): number {
    return this.machine.config.pcid ? this.costs.cr3WithPcid : this.costs.cr3WithoutPcid;
  }

  private stepVmm(): number {
    const variant = this.variant;
    assert(variant !== null && this.mode === Mode.vmm, 'the VMM runs for an exit');
    if (!this.vmmRan) {
      // The VMM's time, then KVM_RUN in a later step: a sibling that steps meanwhile (at a time within
      // the VMM's) sees this thread in vmm, as it is in virtual time, not already back in the kernel.
      this.spend(variant.vmmCycles / this.speedNow());
      this.design.userRuns();
      if (this.confidential !== null)
        this.confidential.vmmExit(variant.conversion, this.draw, this.clockCycles);
      this.vmmRan = true;
      return StepCode.ran;
    }
    this.vmmRan = false;
    // KVM_RUN again: back into the kernel (a CR3 write only under KPTI), then into isolation. `vcpu_run`
    // (arch/x86/kvm/x86.c) sets l1tf_flush_l1d: userspace ran on this CPU.
    this.setMode(Mode.full);
    this.l1tfFlushL1d = true;
    this.design.kvmRun();
    if (this.kpti) {
      this.tlb.switchTo(kernelSpace);
      this.spend(this.cr3WriteCycles());
    }
    this.returnContinuation = Phase.entry;
    this.phase = Phase.returnIsolated;
    return StepCode.ran;
  }

  /** Back into the restricted space (the design's), then on; or the same step again for the mode. */
  private stepReturnIsolated(): number {
    if (!this.design.returnToIsolation()) return StepCode.ran;
    this.phase = this.returnContinuation;
    return StepCode.ran;
  }

  // ---- idle --------------------------------------------------------------------------------------------

  private stepIdle(): number {
    if (this.clockCycles >= this.guest.nextArrivalAtCycles) this.guest.arriveInterrupts(this.clockCycles);
    const pending = this.ownPending();
    if (pending & Vector.kick) {
      // Not in the guest: nothing to leave.
      this.kicker.dropStaleKick();
      this.count(ThreadStat.kicksWhileOut);
    }
    const woken =
      (pending & (Vector.wake | interruptVectors)) !== 0 || this.clockCycles >= this.nextWakeAtCycles;
    if (!woken) return this.wait(this.mailboxIndex, this.ownPending(), this.nextWakeAtCycles);
    this.mailboxes.take(this.thread, Vector.wake);
    const throughIsolation = this.design.wakes();
    // The wake-up is an interrupt on this CPU (the timer, or a peer's wake IPI): `irq_enter` sets the
    // CPU's l1tf_flush_l1d (kvm_set_cpu_l1tf_flush_l1d).
    this.l1tfFlushL1d = true;
    this.spend(this.halfRoundTripCycles);
    if (throughIsolation) {
      this.returnContinuation = Phase.entry;
      this.phase = Phase.returnIsolated;
      return StepCode.ran;
    }
    if (pending & interruptVectors) return this.beginInterrupt(pending, Phase.entry);
    this.phase = Phase.entry;
    return StepCode.ran;
  }

  /** Name of the current phase (for traces and watchdog reports). */
  get phaseName(): string {
    return phaseNames[this.phase] ?? String(this.phase);
  }
}
