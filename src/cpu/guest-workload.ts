import { assert } from '../assert.js';
import type { Workload } from '../config/workload.js';
import { linesPerPage } from '../constants.js';
import { type Mailboxes, Vector } from '../kick/ipi.js';
import type { Notifier } from '../kick/wait.js';
import type { CompiledCatalogue, CompiledVariant } from './handler-program.js';
import type { ResolvedMix } from './mixes.js';

/** The backend's seeded draws and wake-ups (the part of hyperthread.ts `Environment` a workload uses). */
export interface WorkloadRandom extends Notifier {
  /** Uniform in [0, 1), from the backend's seeded generator. */
  random(): number;
  /**
   * Optional: the draw that picks one of several entries whose cumulative weights are `cumulative` (an
   * exit's reason, then its variant), for a backend that makes it a branch (the explorer, src/explore/).
   * Absent (the sim, the workers): `random()`, so the stream and every trace are unchanged.
   */
  drawChoice?(cumulative: ArrayLike<number>): number;
}

/**
 * The guest line a draw `u` in [0, 1) picks in a working set of `pages` guest pages from `firstPage`: one
 * draw picks both the page and the line in it. Returns the guest line number (page x 64 + line in the
 * page). A guest access's draw (`GuestWorkload.drawAccess`, and a stretch's in `ThreadAccess.guestReads`).
 */
export function guestLineOf(u: number, firstPage: number, pages: number): number {
  const draw = u * pages;
  const page = firstPage + Math.floor(draw);
  return page * linesPerPage + Math.floor((draw - Math.floor(draw)) * linesPerPage);
}

/**
 * What one vCPU's guest does, drawn from the backend's seeded generator (issue 21 item 5): which exit
 * ends a guest stretch and when, which lines of its working set it touches, how long it stays halted,
 * which peer vCPU it sends an IPI, and when interrupts (NMI, #MC, device IRQ, and the workload's
 * injections) arrive at its hyperthread. The state machine (hyperthread.ts) asks; it holds no state of
 * the guest's own.
 *
 * Every draw is one `random()` call, made when the state machine asks for it: the sim's trace follows
 * the order of those calls, so a change here that adds, drops or reorders a draw changes every trace.
 */
export class GuestWorkload {
  /**
   * The earliest time any interrupt source (an injection, the NMI, #MC or IRQ clocks) fires: before it,
   * `arriveInterrupts` has nothing to do. Recomputed whenever one of them moves.
   */
  nextArrivalAtCycles = 0;
  private nextNmiAtCycles = Number.POSITIVE_INFINITY;
  private nextMachineCheckAtCycles = Number.POSITIVE_INFINITY;
  private nextIrqAtCycles = Number.POSITIVE_INFINITY;
  private injectionCursor = 0;
  private readonly injections: { atCycles: number; vector: number }[];

  /** The guest's working set: `workingSetPages` pages from `firstWorkingPage` (guest page numbers). */
  readonly workingSetPages: number;
  readonly firstWorkingPage: number;
  /** Mean guest cycles between two exits (RunConfig's, resolved from the exit rate by the backend). */
  private readonly exitIntervalCycles: number;

  constructor(
    private readonly workload: Workload,
    private readonly random: WorkloadRandom,
    private readonly mailboxes: Mailboxes,
    /** The hyperthread whose mailbox the interrupts arrive in. */
    private readonly thread: number,
    private readonly mix: ResolvedMix,
    private readonly catalogue: CompiledCatalogue,
    /** The vCPU (its index in the VM) and the VM's memory, in pages: where the working set lies. */
    vcpu: number,
    guestPages: number,
    /** Threads running other vCPUs of this VM (wake-IPI targets). */
    private readonly peers: readonly number[],
  ) {
    assert(
      workload.exitIntervalCycles !== undefined,
      'the backend resolves the exit interval before it builds hyperthreads (backend/sim/exit-interval.ts)',
    );
    this.exitIntervalCycles = workload.exitIntervalCycles;
    this.workingSetPages = Math.min(workload.guestWorkingSetPages, guestPages);
    this.firstWorkingPage = (vcpu * this.workingSetPages) % (guestPages - this.workingSetPages + 1);
    const vectorOf = { nmi: Vector.nmi, mc: Vector.machineCheck, irq: Vector.irq } as const;
    this.injections = workload.injections
      .filter((injection) => injection.thread === thread)
      .map((injection) => ({ atCycles: injection.atCycles, vector: vectorOf[injection.vector] }))
      .sort((a, b) => a.atCycles - b.atCycles);
    // The interrupt clocks' first draws, in this order.
    if (workload.nmiIntervalCycles > 0) this.nextNmiAtCycles = this.exponential(workload.nmiIntervalCycles);
    if (workload.machineCheckIntervalCycles > 0)
      this.nextMachineCheckAtCycles = this.exponential(workload.machineCheckIntervalCycles);
    if (workload.irqIntervalCycles > 0) this.nextIrqAtCycles = this.exponential(workload.irqIntervalCycles);
    this.updateNextArrival();
  }

  private exponential(meanCycles: number): number {
    return -Math.log(1 - this.random.random()) * meanCycles;
  }

  // ---- exits and halts ----------------------------------------------------------------------------------

  /** When the guest entered at `nowCycles` exits next (one draw; at least a cycle later). */
  exitAfter(nowCycles: number): number {
    return nowCycles + Math.max(1, this.exponential(this.exitIntervalCycles));
  }

  /** Which exit ends the stretch: a reason from the mix, then (where the mix leaves it open) a variant. */
  drawExit(): CompiledVariant {
    const { cumulative, reasons, variants } = this.mix;
    const u = this.choiceDraw(cumulative);
    let i = 0;
    while (i < cumulative.length - 1 && u >= cumulative[i]) i++;
    const reason = reasons[i];
    let variant = variants[i];
    if (variant < 0) {
      const weights = this.catalogue.variantCumulative[reason];
      const v = this.choiceDraw(weights);
      variant = 0;
      while (variant < weights.length - 1 && v >= weights[variant]) variant++;
    }
    return this.catalogue.variants[reason][variant];
  }

  /** A draw that picks an entry of `cumulative`: the backend's branch where it has one, else `random()`. */
  private choiceDraw(cumulative: ArrayLike<number>): number {
    const random = this.random;
    return random.drawChoice === undefined ? random.random() : random.drawChoice(cumulative);
  }

  /** When a vCPU halted at `nowCycles` wakes on its timer, if no IPI comes first (one draw). */
  wakeAfter(nowCycles: number): number {
    return nowCycles + Math.max(1, this.exponential(this.workload.idleCycles));
  }

  /** The peer vCPU's thread a guest IPI goes to (one draw), or -1 when the VM runs no other. */
  drawPeer(): number {
    if (this.peers.length === 0) return -1;
    return this.peers[Math.floor(this.random.random() * this.peers.length)];
  }

  // ---- the working set ----------------------------------------------------------------------------------

  /**
   * One guest access: one draw picks both the page and the line in it. Returns the guest line number
   * (page x 64 + line in the page).
   */
  drawAccess(): number {
    return guestLineOf(this.random.random(), this.firstWorkingPage, this.workingSetPages);
  }

  // ---- interrupt clocks ---------------------------------------------------------------------------------

  /**
   * Raises the interrupts whose time has come by `nowCycles` into this thread's own mailbox: the
   * injections in time order, then the NMI, #MC and IRQ clocks (each drawing its next arrival). Callers
   * skip it before `nextArrivalAtCycles`, when none has.
   */
  arriveInterrupts(nowCycles: number): void {
    const now = nowCycles;
    while (
      this.injectionCursor < this.injections.length &&
      this.injections[this.injectionCursor].atCycles <= now
    ) {
      this.mailboxes.send(this.thread, this.injections[this.injectionCursor].vector, now, this.random);
      this.injectionCursor++;
    }
    if (now >= this.nextNmiAtCycles) {
      this.mailboxes.send(this.thread, Vector.nmi, now, this.random);
      this.nextNmiAtCycles = now + this.exponential(this.workload.nmiIntervalCycles);
    }
    if (now >= this.nextMachineCheckAtCycles) {
      this.mailboxes.send(this.thread, Vector.machineCheck, now, this.random);
      this.nextMachineCheckAtCycles = now + this.exponential(this.workload.machineCheckIntervalCycles);
    }
    if (now >= this.nextIrqAtCycles) {
      this.mailboxes.send(this.thread, Vector.irq, now, this.random);
      this.nextIrqAtCycles = now + this.exponential(this.workload.irqIntervalCycles);
    }
    this.updateNextArrival();
  }

  private updateNextArrival(): void {
    const injection =
      this.injectionCursor < this.injections.length
        ? this.injections[this.injectionCursor].atCycles
        : Number.POSITIVE_INFINITY;
    this.nextArrivalAtCycles = Math.min(
      injection,
      this.nextNmiAtCycles,
      this.nextMachineCheckAtCycles,
      this.nextIrqAtCycles,
    );
  }
}
