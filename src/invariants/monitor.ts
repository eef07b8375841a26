import { pageBytes } from '../constants.js';
import { type ExitReasonSpec, exitCatalogue } from '../cpu/exits.js';
import type { CompiledVariant } from '../cpu/handler-program.js';
import type { Hyperthread, Observer } from '../cpu/hyperthread.js';
import { allowedSteering, predictorDomainKernel } from '../cpu/linux-asi-cpu.js';
import {
  describeCoreWord,
  holdsSecrets,
  Mode,
  modeNames,
  modeOf,
  siblingsHoldSecrets,
} from '../cpu/modes.js';
import { Vector } from '../kick/ipi.js';
import type { Machine } from '../machine.js';
import { domainName, isAllowedInKvm, isPrivateDomain } from '../memory/domains.js';
import { ThreadField, threadFieldIndex } from '../memory/layout.js';
import { loadWord } from '../memory/words.js';
import { kvmSpace } from '../paging/address-space.js';
import { formatVa } from '../paging/va-layout.js';
import { CoreTimelines } from './core-timeline.js';
import { describeEvent, EventKind, type EventLog } from './event-log.js';
import {
  type InvariantId,
  invariantNumbers,
  type Violation,
  type ViolationCounts,
  zeroCounts,
} from './violation.js';

/**
 * The invariant monitor (DESIGN.md "Invariants"): checks INV-1, 2, 3, 4, 7, 8 (and INV-10 for host
 * accesses) at the instant of each event, from atomic reads of the machine buffer. INV-9 is the
 * backend's watchdog, reported here through `recordLiveness`. Checkers only watch: nothing here
 * changes the machine (gem5's functional reads; TigerBeetle's checkers).
 *
 * Every violation is counted; the first `recordsPerInvariant` of each id are kept as records with the
 * events that led to them.
 *
 * Each check sits between `// detector INV-n begin` and `// detector INV-n end` comments: `npm run
 * check:detectors` deletes one such region at a time and shows that a test fails (a checker that never
 * fires proves nothing, and one that can be deleted unnoticed is not proven to fire). A region must
 * still compile when emptied.
 */
export interface FaultReport {
  thread: number;
  handler: string;
  va: string;
  timeCycles: number;
}

/** Per page-table pool: for each VM, `entryWrites(kvm:N)` when kvm:N was last found clean (-1: not). */
const kvmCleanAtWrites = new WeakMap<object, Float64Array>();

/** Slots of the INV-7 front cache per VM (a power of two): handler programs touch a few dozen pages. */
const kvmFrontSlots = 256;

export class Monitor implements Observer {
  readonly counts: ViolationCounts = zeroCounts();
  readonly records: Violation[] = [];
  readonly faults: FaultReport[] = [];
  /**
   * The window an unsafe policy leaves: with a timeline (the sim), guest intervals that overlapped a
   * sibling holding secrets and the overlap in virtual cycles (`finishTime` fills them in); without one
   * (the workers backend), guest steps that began beside one and their quanta.
   */
  exposureGuestSteps = 0;
  exposureCycles = 0;
  /** The sim's per-core timelines (guest work, exposure in virtual time), or null (`trackTime`). */
  timeline: CoreTimelines | null = null;
  /** VM exits other than those a kick caused: what a run's exit budget counts. */
  workloadExits = 0;
  /** Records kept per id (a plain record, not a Map: `counted` reads it at every violation). */
  private readonly recordsKept: ViolationCounts = zeroCounts();
  /**
   * INV-7 answers per VM: the VA pages kvm:N maps, valid while kvm:N's TLB generation stands (an unmap
   * moves it). Only "mapped" is kept: a map needs no TLB shootdown, so the generation stays when kvm:N
   * maps a page it did not, and a kept "unmapped" would then report a mapped page. An access kvm:N does
   * not map is INV-7's violation, rare: it walks every time.
   */
  private readonly kvmMapped: Set<number>[] = [];
  /** Per VM, the generation `kvmMapped` holds answers for (NaN: none yet). */
  private readonly kvmMappedGeneration: Float64Array;
  /**
   * Fault reports' addresses as text, by VA: a handler faults at the same few addresses run after run,
   * and formatting each took ~1.5% of a sim run's time (CPU profile, asi / sysbench-cpu, 200 reports).
   */
  private readonly vaTexts = new Map<number, string>();
  /**
   * A direct-mapped front of `kvmMapped`: VM v's slot for a page is v x kvmFrontSlots + page mod
   * kvmFrontSlots, and holds a page of the Set, or NaN (equal to nothing). Kernel VA pages are past 2^30,
   * so a Set lookup allocates its key; the front answers repeated handler accesses without one, in one
   * load. It only ever copies the Set and is cleared with it, so the answers are the Set's.
   */
  private readonly kvmFront: Float64Array;
  /**
   * The address a front miss hands to `mappedInKvmSet`, through this field rather than as an argument
   * (as an argument it cost an allocation per handler access, taken or not: docs/perf-log.md).
   */
  private missedVa: number;
  private readonly smt: number;
  /** Whether foreign-line samples are recorded: only when the log keeps every event (traces). */
  private readonly sampling: boolean;
  /** Per core, the foreign-line count last sampled (-1: none yet). */
  private readonly lastForeignLines: Int32Array;

  private readonly machine: Machine;
  private readonly log: EventLog | null;
  private readonly recordsPerInvariant: number;
  private readonly faultsKept: number;
  /** The run's exit catalogue (with its user handlers), for naming exits in violation records. */
  private readonly catalogue: readonly ExitReasonSpec[];

  constructor(
    machine: Machine,
    log: EventLog | null,
    catalogue: readonly ExitReasonSpec[] = exitCatalogue,
    recordsPerInvariant = 20,
    faultsKept = 200,
  ) {
    this.machine = machine;
    this.log = log;
    this.catalogue = catalogue;
    this.recordsPerInvariant = recordsPerInvariant;
    this.faultsKept = faultsKept;
    this.smt = machine.config.smt;
    this.sampling = log?.keepsAll ?? false;
    this.lastForeignLines = new Int32Array(machine.config.cores).fill(-1);
    const vms = machine.config.vms.length;
    for (let vmId = 0; vmId < vms; vmId++) this.kvmMapped.push(new Set());
    this.kvmMappedGeneration = new Float64Array(vms).fill(Number.NaN);
    this.kvmFront = new Float64Array(vms * kvmFrontSlots).fill(Number.NaN);
    this.missedVa = Number.NaN;
  }

  /**
   * Follows every core in virtual time (core-timeline.ts): guest work at `smtSpeedup`, exposure as the
   * overlap of guest and secret-holding intervals, and INV-1 where such an overlap begins. The sim
   * calls it before the run and sets `timeline.frontierCycles` at every step; `finishTime` at the end.
   */
  trackTime(smtSpeedup: number): CoreTimelines {
    const { cores, smt } = this.machine.config;
    this.timeline = new CoreTimelines(cores, smt, smtSpeedup, (guest, secret, mode, timeCycles, step) =>
      this.overlapStarted(guest, secret, mode, timeCycles, step),
    );
    return this.timeline;
  }

  /** The run's end (sim): every core swept to `endCycles`; exposure read from the timeline. */
  finishTime(endCycles: number): void {
    const timeline = this.timeline;
    if (timeline === null) return;
    timeline.finish(endCycles);
    this.exposureGuestSteps = timeline.exposedIntervals;
    this.exposureCycles = timeline.exposureCycles.reduce((sum, cycles) => sum + cycles, 0);
  }

  /**
   * INV-1 from the timeline: guest code on `guestThread` overlaps, for a positive stretch of virtual
   * time from `timeCycles`, sibling `secretThread` holding secrets. A guest stretch is one event in the
   * sim, so a sibling parked in the guest would not look at the core again before its stretch ends;
   * and step order is not time order, so the overlap is decided in virtual time. One violation per
   * overlap and sibling.
   */
  private overlapStarted(
    guestThread: number,
    secretThread: number,
    secretMode: number,
    timeCycles: number,
    step: number,
  ): void {
    // detector INV-1 (overlap in virtual time) begin
    this.counts['INV-1']++;
    if (this.logged(1, this.recordsKept['INV-1'], timeCycles, guestThread)) {
      this.keep({
        id: 'INV-1',
        threads: [guestThread, secretThread],
        modes: ['guest', modeNames[secretMode]],
        detail: `guest code runs while sibling ht${secretThread} is in ${modeNames[secretMode]}`,
        timeCycles,
        step,
      });
    }
    // detector INV-1 (overlap in virtual time) end
  }

  /** Violations of every invariant so far (kept as a running count: the sim reads it every step). */
  total = 0;

  /**
   * INV-5 isolated contents: every frame `kvm:N` maps belongs to a domain the isolated space may hold
   * (public, kvm, vm:N: `isAllowedInKvm`). kvm:N is built when the machine is, by copying VA ranges
   * from `kernel` (RFC patches 09-18), and runs do not change it, so the backends check it once at the
   * start of each run rather than at every event. One record per offending page, naming the frame, its
   * owner and its address. The walk of kvm:N's leaves costs ~190 us (default machine), a few percent of
   * a fuzz case, so a kvm:N found clean is not walked again until software writes its tables again
   * (`entryWrites`, which every map, unmap and copy moves).
   */
  checkIsolatedContents(timeCycles = 0, step = 0): void {
    const tables = this.machine.pageTables;
    const vms = this.machine.config.vms.length;
    let cleanAt = kvmCleanAtWrites.get(tables);
    if (cleanAt === undefined) {
      cleanAt = new Float64Array(vms).fill(-1);
      kvmCleanAtWrites.set(tables, cleanAt);
    }
    for (let vmId = 0; vmId < vms; vmId++) {
      const writes = tables.entryWrites(kvmSpace(vmId));
      if (cleanAt[vmId] === writes) continue;
      const countBefore = this.counts['INV-5'];
      for (const range of tables.listMapped(kvmSpace(vmId))) {
        for (let page = 0; page < range.pages; page++) {
          const pfn = range.pfnStart + page;
          const owner = this.machine.frames.ownerOf(pfn);
          // detector INV-5 begin
          if (!isAllowedInKvm(owner, vmId)) {
            this.record({
              id: 'INV-5',
              threads: [],
              modes: [],
              detail: `kvm:${vmId} maps frame ${pfn} of ${domainName(owner)} (${this.machine.frames.regionOf(pfn).name})`,
              address: formatVa(range.vaStart + page * pageBytes),
              timeCycles,
              step,
            });
          }
          // detector INV-5 end
        }
      }
      cleanAt[vmId] = this.counts['INV-5'] === countBefore ? writes : -1;
    }
  }

  /** Records a violation (also for the backend's INV-9 watchdog and other checkers). */
  record(violation: Violation): void {
    if (this.counted(violation.id, violation.timeCycles, violation.threads[0] ?? -1)) this.keep(violation);
  }

  /**
   * Counts a violation; true while records of this id are still kept (the caller then builds one).
   * Unsafe policies break INV-1/INV-2 at every guest step: counting must stay cheap.
   */
  private counted(id: InvariantId, timeCycles: number, thread: number): boolean {
    this.counts[id]++;
    return this.logged(invariantNumbers[id], this.recordsKept[id], timeCycles, thread);
  }

  /**
   * `counted` after the count itself: the guest-step checks (INV-1, INV-2, at every step of an unsafe
   * policy) bump `counts` by a literal name: one keyed update shared by every id cost ~5% of a `none`
   * run (measured).
   */
  private logged(invariantNumber: number, recordsKept: number, timeCycles: number, thread: number): boolean {
    this.total++;
    this.log?.record(timeCycles, thread, EventKind.violation, invariantNumber, 0);
    return recordsKept < this.recordsPerInvariant;
  }

  private keep(violation: Violation): void {
    this.recordsKept[violation.id]++;
    violation.recentEvents = this.log
      ? this.log.recent(16).map((event) => describeEvent(event, this.catalogue))
      : [];
    this.records.push(violation);
  }

  recordLiveness(thread: Hyperthread, detail: string, timeCycles: number): void {
    // detector INV-9 begin
    this.record({
      id: 'INV-9',
      threads: [thread.thread],
      modes: [modeNames[thread.mode]],
      detail: `${detail} (phase ${thread.phaseName}; core ${describeCoreWord(thread.coreWord(), this.smt)})`,
      timeCycles,
      step: thread.steps,
    });
    // detector INV-9 end
  }

  private siblingThread(thread: Hyperthread, sibling: number): number {
    return thread.core * this.smt + sibling;
  }

  private violation(
    id: InvariantId,
    thread: Hyperthread,
    word: number,
    sibling: number,
    detail: string,
  ): Violation {
    const threads = [thread.thread];
    const modes = [modeNames[modeOf(word, thread.sibling)]];
    if (sibling >= 0) {
      threads.push(this.siblingThread(thread, sibling));
      modes.push(modeNames[modeOf(word, sibling)]);
    }
    return { id, threads, modes, detail, timeCycles: thread.clockCycles, step: thread.steps };
  }

  /** VM of the thread running as sibling `sibling` of `thread`'s core, or -1. */
  private vmOfSibling(thread: Hyperthread, sibling: number): number {
    return loadWord(
      this.machine.i32,
      threadFieldIndex(this.machine.layout, this.siblingThread(thread, sibling), ThreadField.vmId),
      this.machine.concurrent,
    );
  }

  /**
   * INV-1 and INV-2 while guest code runs on `thread` (at a guest step and at entry). Small on purpose:
   * the counting of a failed check is out of line.
   */
  private checkGuestRuns(thread: Hyperthread, at: string): void {
    const word = thread.coreWord();
    // detector INV-1 begin
    if (siblingsHoldSecrets(word, thread.siblingFields)) this.countSiblingExposures(thread, word, at);
    // detector INV-1 end
    // Today's ASI (linux-asi) has its own notion of a secret, the denylist's: INV-14 judges its guests.
    if (thread.linuxAsi) {
      // detector INV-14 begin
      if (thread.foreignLines() !== 0) this.checkSensitiveLines(thread, word, at);
      // detector INV-14 end
      return;
    }
    // detector INV-2 begin
    if (thread.foreignLines() !== 0) this.countForeignLines(thread, word, at);
    // detector INV-2 end
  }

  /**
   * INV-14 for a guest of today's ASI: its core's L1D and fill buffers hold no line of a frame its class
   * protects (sensitive under the denylist and not the guest's own: linux-asi-cpu.ts
   * `sensitiveToKvmClass`). Such a line got there by code that ran unrestricted (KERNEL_DATA), by the
   * VMM (USER_DATA) or by another mm, and the class policy's L1D flush should have taken it. Sensitive
   * frames are all foreign to the VM (host or another VM's), so the caller asks only when the core holds
   * foreign lines, and the scan runs for linux-asi threads only.
   */
  private checkSensitiveLines(thread: Hyperthread, word: number, at: string): void {
    const line = this.firstSensitiveLine(thread);
    if (line === null) return;
    const who = thread.process ? `user code of process vm:${thread.vmId}` : `guest code of vm:${thread.vmId}`;
    const violation = this.violation(
      'INV-14',
      thread,
      word,
      -1,
      `${who} ${at} while core ${thread.core} holds sensitive data of ${this.machine.frames.regionOf(line.pfn).name} (no flush since it came)`,
    );
    violation.line = { pfn: line.pfn, lineInPage: line.lineInPage, domain: domainName(line.domain) };
    this.record(violation);
  }

  /**
   * The first line of the core that the thread's class protects (LinuxAsiCpu.sensitive: the kvm class's
   * view for a vCPU, the user class's for a host process). Only the buffers a CPU bug of the policy's
   * CPU leaks are judged (LinuxAsiSettings.cpuBugs): the L1D where L1TF applies, the fill buffers where
   * MDS does, as the posted data flush is "On CPUs with L1TF, flush L1D" (RFC v2 patch 27/29).
   */
  private firstSensitiveLine(
    thread: Hyperthread,
  ): { pfn: number; lineInPage: number; domain: number } | null {
    const asi = thread.linuxAsi;
    if (asi === null) return null;
    const bugs = asi.settings.cpuBugs;
    if (bugs.l1tf) {
      const l1d = this.machine.l1d[thread.core];
      for (let set = 0; set < l1d.sets; set++) {
        for (const way of l1d.peek(set)) {
          if (way.valid && asi.sensitive(way.pfn)) return way;
        }
      }
    }
    if (bugs.mds) {
      for (const line of this.machine.fillBuffers[thread.core].peek()) {
        if (asi.sensitive(line.pfn)) return line;
      }
    }
    return null;
  }

  /**
   * INV-15: a victim of today's ASI starts running (a guest at entry: the kvm class; the VMM: the user
   * class) and the core's branch predictor holds entries, or its return stack addresses, of a domain its
   * class must be protected from (linux-asi-cpu.ts `allowedSteering`, from the posted class policies:
   * the kvm class from other mms, the user class from every guest and other mms) with no IBPB / RSB fill
   * on this thread since they were trained.
   */
  private checkSteering(thread: Hyperthread, asiClass: 'kvm' | 'user'): void {
    const asi = thread.linuxAsi;
    if (!asi) return;
    const foreign = asi.steeringMask() & ~allowedSteering(asiClass, thread.vmId);
    // detector INV-15 begin
    if (foreign !== 0) {
      this.record(
        this.violation(
          'INV-15',
          thread,
          thread.coreWord(),
          -1,
          `${asiClass === 'kvm' ? `guest of vm:${thread.vmId}` : thread.process ? `process of vm:${thread.vmId}` : `VMM of vm:${thread.vmId}`} runs with predictor state trained by ${describeSteering(foreign)} (no IBPB since)`,
        ),
      );
    }
    // detector INV-15 end
  }

  onUserRun(thread: Hyperthread): void {
    this.checkSteering(thread, 'user');
  }

  /**
   * One INV-1 violation per sibling holding secrets, but one exposed guest step (and its quantum of
   * cycles) however many siblings hold them: exposure is the time this thread's guest code overlaps
   * secrets on its core (DESIGN.md "Exposure is time"), which two siblings do not double.
   */
  private countSiblingExposures(thread: Hyperthread, word: number, at: string): void {
    if (this.timeline === null) {
      this.exposureGuestSteps++;
      this.exposureCycles += thread.workload.guestQuantumCycles;
    }
    for (let sibling = 0; sibling < this.smt; sibling++) {
      if (sibling !== thread.sibling && holdsSecrets(modeOf(word, sibling)))
        this.countSiblingExposure(thread, word, sibling, at);
    }
  }

  private countSiblingExposure(thread: Hyperthread, word: number, sibling: number, at: string): void {
    this.counts['INV-1']++;
    if (this.logged(1, this.recordsKept['INV-1'], thread.clockCycles, thread.thread)) {
      this.keepSiblingExposure(thread, word, sibling, at);
    }
  }

  private countForeignLines(thread: Hyperthread, word: number, at: string): void {
    this.counts['INV-2']++;
    if (this.logged(2, this.recordsKept['INV-2'], thread.clockCycles, thread.thread)) {
      this.keepForeignLine(thread, word, at);
    }
  }

  // The records of a failed check are built out of line; the checks run at every guest step.

  private keepSiblingExposure(thread: Hyperthread, word: number, sibling: number, at: string): void {
    const mode = modeOf(word, sibling);
    this.keep(
      this.violation(
        'INV-1',
        thread,
        word,
        sibling,
        `guest code ${at} while sibling ht${this.siblingThread(thread, sibling)} is in ${modeNames[mode]}`,
      ),
    );
  }

  private keepForeignLine(thread: Hyperthread, word: number, at: string): void {
    const line =
      this.machine.l1d[thread.core].firstForeignLine(thread.vmId) ??
      this.machine.fillBuffers[thread.core].firstForeignLine(thread.vmId);
    const violation = this.violation(
      'INV-2',
      thread,
      word,
      -1,
      `guest code of vm:${thread.vmId} ${at} while core ${thread.core} holds a foreign line`,
    );
    if (line)
      violation.line = { pfn: line.pfn, lineInPage: line.lineInPage, domain: domainName(line.domain) };
    this.keep(violation);
  }

  // ---- Observer ------------------------------------------------------------------------------------------

  onModeChange(thread: Hyperthread, from: number, to: number): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.mode, from, to);
    this.timeline?.mode(thread.thread, to, thread.clockCycles, thread.steps);
    if (this.sampling) this.sampleForeignLines(thread);
  }

  onGuestStepEnd(thread: Hyperthread): void {
    this.timeline?.endRun(thread.thread, thread.stretchProgressShare, thread.clockCycles, thread.steps);
  }

  onGuestStep(thread: Hyperthread): void {
    this.timeline?.beginRun(thread.thread, thread.clockCycles, thread.steps);
    this.log?.recordGuestStep(thread.clockCycles, thread.thread);
    this.checkGuestRuns(thread, 'runs');
    if (this.sampling) this.sampleForeignLines(thread);
  }

  /**
   * For traces: the lines in the thread's core L1D foreign to its VM, recorded when they changed since
   * the core's last sample (at mode changes, guest steps and flushes: where they matter to INV-2).
   */
  private sampleForeignLines(thread: Hyperthread): void {
    const lines = this.machine.l1d[thread.core].foreignLines(thread.vmId);
    if (this.lastForeignLines[thread.core] === lines) return;
    this.lastForeignLines[thread.core] = lines;
    this.log?.recordSample(thread.clockCycles, thread.thread, EventKind.foreignLines, thread.core, lines);
  }

  onEnter(thread: Hyperthread): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.enter, thread.vmId, 0);
    const word = thread.coreWord();
    // INV-3: every sibling in guest/isolated of this VM, held, idle (or offline). The two checks are
    // separate statements (their conditions exclude each other) so that check:detectors can delete
    // each one alone and show a test notices.
    for (let sibling = 0; sibling < this.smt; sibling++) {
      if (sibling === thread.sibling) continue;
      const mode = modeOf(word, sibling);
      // detector INV-3 (sibling holds secrets) begin
      if (mode === Mode.full || mode === Mode.vmm) {
        this.record(
          this.violation(
            'INV-3',
            thread,
            word,
            sibling,
            `entered the guest while sibling ht${this.siblingThread(thread, sibling)} is in ${modeNames[mode]}`,
          ),
        );
      }
      // detector INV-3 (sibling holds secrets) end
      // detector INV-3 (sibling runs another VM) begin
      if (
        (mode === Mode.guest || mode === Mode.isolated) &&
        this.vmOfSibling(thread, sibling) !== thread.vmId
      ) {
        this.record(
          this.violation(
            'INV-3',
            thread,
            word,
            sibling,
            `entered vm:${thread.vmId} while the sibling runs vm:${this.vmOfSibling(thread, sibling)}`,
          ),
        );
      }
      // detector INV-3 (sibling runs another VM) end
    }
    this.checkGuestRuns(thread, 'enters');
    // A vCPU's guest is the kvm class's victim; a host process's user code the user class's.
    this.checkSteering(thread, thread.process ? 'user' : 'kvm');
  }

  onExit(thread: Hyperthread, variant: CompiledVariant): void {
    if (!variant.isKick) this.workloadExits++;
    this.log?.record(thread.clockCycles, thread.thread, EventKind.exit, variant.reason, variant.variant);
  }

  onKick(thread: Hyperthread, target: number): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.kick, target, 0);
  }

  onSwitchToFull(thread: Hyperthread, to: number): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.switchToFull, to, 0);
    // detector INV-4 begin
    this.checkKicked(thread, 'INV-4', `switched to ${modeNames[to]}`);
    // detector INV-4 end
  }

  /** Every sibling still in the guest must have a kick pending (it was kicked and has not left yet). */
  private checkKicked(thread: Hyperthread, id: InvariantId, what: string): void {
    const word = thread.coreWord();
    for (let sibling = 0; sibling < this.smt; sibling++) {
      if (sibling === thread.sibling || modeOf(word, sibling) !== Mode.guest) continue;
      const target = this.siblingThread(thread, sibling);
      const pending = loadWord(
        this.machine.i32,
        threadFieldIndex(this.machine.layout, target, ThreadField.mailbox),
        this.machine.concurrent,
      );
      if ((pending & Vector.kick) === 0) {
        this.record(
          this.violation(
            id,
            thread,
            word,
            sibling,
            `${what} with sibling ht${target} in the guest and not kicked`,
          ),
        );
      }
    }
  }

  onAccess(thread: Hyperthread, va: number, space: number, pfn: number): void {
    // detector INV-10 (monitor) begin
    const owner = this.machine.frames.ownerOf(pfn);
    if (isPrivateDomain(owner)) this.recordPrivateReached(thread, va, space, pfn, owner);
    // detector INV-10 (monitor) end
    // detector INV-7 begin
    if (thread.mode !== Mode.isolated) return;
    // INV-7: an access served in isolation must be one kvm:N maps (a functional walk, no A/D change);
    // under today's ASI, one its restricted space's denylist maps.
    if (thread.linuxAsi) {
      // Its class's denylist, or a page-cache page the ephmap mapped for the access.
      if (!thread.linuxAsi.mapsVa(va) && !thread.linuxAsi.ephmapServes(va))
        this.recordSilentAccess(thread, va, pfn);
      return;
    }
    if (!this.mappedInKvm(thread.vmId, va)) this.recordSilentAccess(thread, va, pfn);
    // detector INV-7 end
  }

  // Out of line, as the guest-step records: onAccess runs at every line a handler touches.

  private recordPrivateReached(
    thread: Hyperthread,
    va: number,
    space: number,
    pfn: number,
    owner: number,
  ): void {
    const violation = this.violation(
      'INV-10',
      thread,
      thread.coreWord(),
      -1,
      `host access in address space ${space} reached guest-private frame ${pfn} (${domainName(owner)})`,
    );
    violation.address = formatVa(va);
    this.record(violation);
  }

  private recordSilentAccess(thread: Hyperthread, va: number, pfn: number): void {
    const violation = this.violation(
      'INV-7',
      thread,
      thread.coreWord(),
      -1,
      `access in isolation to ${formatVa(va)} (unmapped in kvm:${thread.vmId}) was served silently from frame ${pfn}`,
    );
    violation.address = formatVa(va);
    this.record(violation);
  }

  private mappedInKvm(vmId: number, va: number): boolean {
    const generation = this.machine.pageTables.tlbGeneration(kvmSpace(vmId));
    if (this.kvmMappedGeneration[vmId] !== generation) this.forgetKvmMapped(vmId, generation);
    const page = Math.floor(va / 4096);
    // `page & mask` takes the low 32 bits of an exact integer: a valid slot for pages past 2^32 too.
    const slot = vmId * kvmFrontSlots + (page & (kvmFrontSlots - 1));
    if (this.kvmFront[slot] === page) return true;
    this.missedVa = va;
    return this.mappedInKvmSet(vmId, slot);
  }

  /** kvm:N's page tables changed (its TLB generation moved): every answer for it is dropped. */
  private forgetKvmMapped(vmId: number, generation: number): void {
    this.kvmMapped[vmId].clear();
    this.kvmMappedGeneration[vmId] = generation;
    this.kvmFront.fill(Number.NaN, vmId * kvmFrontSlots, (vmId + 1) * kvmFrontSlots);
  }

  /**
   * `mappedInKvm` past its front for `missedVa`: the Set's answer, else a walk; a mapped page goes into
   * both.
   */
  private mappedInKvmSet(vmId: number, slot: number): boolean {
    const va = this.missedVa;
    const page = Math.floor(va / 4096);
    const mapped = this.kvmMapped[vmId];
    if (!mapped.has(page)) {
      if (this.machine.pageTables.walk(kvmSpace(vmId), va, 0, false) < 0) return false;
      mapped.add(page);
    }
    this.kvmFront[slot] = page;
    return true;
  }

  onFault(thread: Hyperthread, va: number, variant: CompiledVariant): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.fault, va, variant.reason);
    if (this.faults.length < this.faultsKept) {
      this.faults.push({
        thread: thread.thread,
        handler: variant.name,
        va: this.vaText(va),
        timeCycles: thread.clockCycles,
      });
    }
  }

  private vaText(va: number): string {
    let text = this.vaTexts.get(va);
    if (text === undefined) {
      text = formatVa(va);
      this.vaTexts.set(va, text);
    }
    return text;
  }

  onInterrupt(thread: Hyperthread, vector: number): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.interrupt, vector, thread.mode);
    // Today's ASI handles an interrupt where it lands (asi_intr_enter; a handler faults its way out, which
    // INV-4 and INV-7 judge): INV-8 asks only that a handler in the full space has its siblings kicked.
    if (thread.linuxAsi) {
      if (thread.mode === Mode.full) this.checkKicked(thread, 'INV-8', 'handled an interrupt in full');
      return;
    }
    // detector INV-8 (handled outside full) begin
    if (thread.mode !== Mode.full) {
      this.record(
        this.violation(
          'INV-8',
          thread,
          thread.coreWord(),
          -1,
          `interrupt (vector ${vector}) handled in ${modeNames[thread.mode]}, not full`,
        ),
      );
      return;
    }
    // detector INV-8 (handled outside full) end
    // detector INV-8 (siblings not kicked) begin
    this.checkKicked(thread, 'INV-8', 'handled an interrupt in full');
    // detector INV-8 (siblings not kicked) end
  }

  onFlush(thread: Hyperthread, bits: number, lines: number): void {
    this.log?.record(thread.clockCycles, thread.thread, EventKind.flush, bits, lines);
    if (this.sampling) this.sampleForeignLines(thread);
  }
}

/** "guest of vm:1, VMM of vm:2" for a predictor-domain mask (linux-asi-cpu.ts numbering). */
function describeSteering(mask: number): string {
  const names: string[] = [];
  for (let domain = 0; domain < 31; domain++) {
    if ((mask & (1 << domain)) === 0) continue;
    if (domain === predictorDomainKernel) names.push('the kernel');
    else if (domain % 2 === 1) names.push(`guest of vm:${(domain - 1) / 2}`);
    else names.push(`VMM of vm:${(domain - 2) / 2}`);
  }
  return names.join(', ');
}
