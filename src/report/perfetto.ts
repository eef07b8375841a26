import { assert } from '../assert.js';
import { type ExitReasonSpec, exitCatalogue, exitReasonIndex } from '../cpu/exits.js';
import { Mode, modeNames } from '../cpu/modes.js';
import { EventKind, type LoggedEvent } from '../invariants/event-log.js';
import { invariantIds, invariantTitles, type Violation } from '../invariants/violation.js';
import { Vector } from '../kick/ipi.js';
import { formatVa } from '../paging/va-layout.js';
import { writeFileAtomic } from './atomic-write.js';

/**
 * Perfetto / Chrome trace export (issue 6): the Trace Event Format's JSON object form, which
 * ui.perfetto.dev and chrome://tracing both open.
 *
 * Tracks: one process per core ("core N"), one thread per hyperthread ("htT"). pid = core + 1 and
 * tid = thread + 1, because Perfetto's JSON importer treats pid/tid 0 as the idle task and would fold
 * those tracks together; the names and `args` carry the real numbers.
 *
 * What goes on a hyperthread's track:
 * - its mode as complete slices (`X`: guest, isolated, full, held, idle, vmm), built from the
 *   mode-change events (offline time is left empty);
 * - VM exits, faults (handler, VA), interrupts, L1D flushes / buffer clears, switches to full and
 *   invariant violations as thread-scoped instants (`i`);
 * - kicks as an instant on the kicker, plus a flow arrow (`s` on the kicker, `f` with `bp: 'e'` on the
 *   target's kick exit) for every kick the target took as an exit (see `kickPairs`); a kick never
 *   taken (stale at the target's next entry, or the trace ended first) keeps only its instant.
 * Per core, a counter (`C`) of how many hyperthreads are in the guest, hold secrets (full or vmm) and
 * are held, derived from mode changes; and a counter of the lines in the core's L1D foreign to the VM
 * it runs (INV-2's lines), from the samples the monitor records while a trace is kept.
 *
 * Violations: an unsafe policy breaks invariants at nearly every guest step (none on sysbench-cpu:
 * ~430,000 in 20,000 exits, a 107 MB trace, issue 20). Only the first `violationInstantsPerTrackMax`
 * of each invariant on each hyperthread become instants; every violation is counted on the
 * `violations` process's counter track (cumulative per invariant, at most
 * `violationCounterSamplesMax` samples), and `otherData` says how many instants were left out.
 *
 * Time: the sim backend's virtual cycles become microseconds at `cyclesPerMicrosecond` (3,000: the
 * ~3 GHz core the cost model's defaults are measured on, cpu/costs.ts); the workers backend logs
 * wall-clock nanoseconds since start, divided by 1,000. `otherData.clock` says which.
 */
export interface TraceMeta {
  backend: 'sim' | 'workers';
  /** Hyperthreads of the machine (cores x smt), whether or not each runs a vCPU. */
  threads: number;
  smt: number;
  policy: string;
  mix: string;
  /** What `LoggedEvent.timeCycles` counts: virtual cycles (sim) or nanoseconds since start (workers). */
  timeUnit: 'cycles' | 'ns';
  cyclesPerMicrosecond?: number;
  /** The run's exit catalogue (with its user handlers) to name exit variants; default the built-in one. */
  catalogue?: readonly ExitReasonSpec[];
  /** The run's violation records: their detail is attached to the matching violation instants. */
  violationRecords?: readonly Violation[];
  /** Violation instants kept per invariant and hyperthread (default `violationInstantsPerTrackMax`). */
  violationInstantsPerTrack?: number;
}

export type TracePhase = 'B' | 'E' | 'X' | 'i' | 'I' | 'C' | 'M' | 's' | 't' | 'f';

export interface TraceEvent {
  name: string;
  ph: TracePhase;
  /** Microseconds. Metadata events carry 0. */
  ts: number;
  pid: number;
  tid?: number;
  /** Microseconds, complete (`X`) events only. */
  dur?: number;
  cat?: string;
  /** Instant scope: thread, process or global. */
  s?: 't' | 'p' | 'g';
  /** Flow id (`s`/`t`/`f`). */
  id?: number;
  /** Flow binding point: `e` binds the flow end to the enclosing slice. */
  bp?: 'e';
  /** One of the trace viewer's reserved color names. */
  cname?: string;
  args?: Record<string, unknown>;
}

export interface TraceFile {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms' | 'ns';
  otherData: Record<string, string | number>;
}

/** ~3 GHz: the clock of the server core the cost model's defaults come from (cpu/costs.ts). */
export const defaultCyclesPerMicrosecond = 3000;

/**
 * Violation instants kept per invariant and hyperthread: enough to see where and how a violation
 * repeats (the first come with their records' detail); the counter track counts every one. At ~200
 * bytes an instant, a 2 x 2 machine breaking three invariants keeps ~240 KB of them.
 */
export const violationInstantsPerTrackMax = 100;
/** Samples of the violation counter track, at most (one per 1/1,000 of the violations' time span). */
export const violationCounterSamplesMax = 1000;

/** A stretch of time a hyperthread spent in one mode, in the log's time unit. */
export interface ModeSlice {
  thread: number;
  mode: number;
  startCycles: number;
  endCycles: number;
}

/**
 * The mode slices of every hyperthread, from the mode-change events. A thread's slice starts at its
 * previous mode change (or at time 0, in the first event's `from` mode) and ends at the next, or at
 * `endCycles` (default: the last event's time) for the mode it is left in. Offline stretches are left
 * out. Slices of one thread never overlap: a thread's events are sorted by time first (its own clock
 * never runs backwards, but the log interleaves threads in step order, not time order).
 */
export function modeSlices(events: readonly LoggedEvent[], threads: number, endCycles?: number): ModeSlice[] {
  const end = endCycles ?? events.reduce((latest, event) => Math.max(latest, event.timeCycles), 0);
  const perThread: LoggedEvent[][] = Array.from({ length: threads }, () => []);
  for (const event of events) {
    if (event.kind !== EventKind.mode) continue;
    assert(
      event.thread >= 0 && event.thread < threads,
      `mode event of ht${event.thread} outside 0..${threads - 1}`,
    );
    perThread[event.thread].push(event);
  }
  const slices: ModeSlice[] = [];
  perThread.forEach((changes, thread) => {
    if (changes.length === 0) return;
    changes.sort((a, b) => a.timeCycles - b.timeCycles);
    let mode = changes[0].a;
    let since = 0;
    const close = (at: number) => {
      const until = Math.min(at, end);
      if (mode !== Mode.offline && until > since)
        slices.push({ thread, mode, startCycles: since, endCycles: until });
    };
    for (const change of changes) {
      close(change.timeCycles);
      mode = change.b;
      since = Math.max(since, change.timeCycles);
    }
    close(end);
  });
  return slices;
}

/** Trace viewer colors for modes (chrome://tracing's reserved names; Perfetto colors by name). */
const modeColors: Record<string, string> = {
  guest: 'thread_state_running',
  isolated: 'thread_state_runnable',
  full: 'terrible',
  held: 'thread_state_iowait',
  idle: 'thread_state_sleeping',
  vmm: 'bad',
};

const vectorNames: Record<number, string> = {
  [Vector.kick]: 'kick',
  [Vector.wake]: 'wake',
  [Vector.nmi]: 'NMI',
  [Vector.machineCheck]: '#MC',
  [Vector.irq]: 'IRQ',
};

const kickReason = exitReasonIndex('EXTERNAL_INTERRUPT');
const kickVariant = exitCatalogue[kickReason]?.variants.findIndex((variant) => variant.name === 'kick') ?? -1;
assert(kickReason >= 0 && kickVariant >= 0, 'the exit catalogue has EXTERNAL_INTERRUPT:kick');

function isKickExit(event: LoggedEvent): boolean {
  return event.kind === EventKind.exit && event.a === kickReason && event.b === kickVariant;
}

export function buildTrace(events: readonly LoggedEvent[], meta: TraceMeta): TraceFile {
  assert(meta.smt >= 1 && Number.isInteger(meta.smt), `smt ${meta.smt} is a positive integer`);
  assert(meta.threads >= 1 && meta.threads % meta.smt === 0, `threads ${meta.threads} is a multiple of smt`);
  const cyclesPerMicrosecond = meta.cyclesPerMicrosecond ?? defaultCyclesPerMicrosecond;
  assert(cyclesPerMicrosecond > 0, 'cyclesPerMicrosecond > 0');
  const microsecondsPerUnit = meta.timeUnit === 'cycles' ? 1 / cyclesPerMicrosecond : 1 / 1000;
  // Rounded to 0.1 ns: finer than any cost in the model, and it halves the file's digits.
  const toMicroseconds = (time: number) => Math.round(time * microsecondsPerUnit * 1e4) / 1e4;
  const instantsPerTrack = meta.violationInstantsPerTrack ?? violationInstantsPerTrackMax;
  assert(Number.isInteger(instantsPerTrack) && instantsPerTrack >= 0, 'violation instants per track >= 0');
  const cores = meta.threads / meta.smt;
  const pidOf = (thread: number) => Math.floor(thread / meta.smt) + 1;
  const tidOf = (thread: number) => thread + 1;

  const metadata: TraceEvent[] = [];
  for (let core = 0; core < cores; core++) {
    metadata.push(
      { name: 'process_name', ph: 'M', ts: 0, pid: core + 1, args: { name: `core ${core}` } },
      { name: 'process_sort_index', ph: 'M', ts: 0, pid: core + 1, args: { sort_index: core } },
    );
  }
  for (let thread = 0; thread < meta.threads; thread++) {
    const pid = pidOf(thread);
    const tid = tidOf(thread);
    metadata.push(
      { name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name: `ht${thread}` } },
      { name: 'thread_sort_index', ph: 'M', ts: 0, pid, tid, args: { sort_index: thread } },
    );
  }

  const timed: TraceEvent[] = [];
  const slices = modeSlices(events, meta.threads);
  for (const slice of slices) {
    const name = modeNames[slice.mode] ?? `mode ${slice.mode}`;
    const ts = toMicroseconds(slice.startCycles);
    timed.push({
      name,
      cat: 'mode',
      ph: 'X',
      ts,
      dur: Math.round((toMicroseconds(slice.endCycles) - ts) * 1e4) / 1e4,
      pid: pidOf(slice.thread),
      tid: tidOf(slice.thread),
      cname: modeColors[name],
      args: { thread: slice.thread },
    });
  }
  timed.push(...coreCounters(slices, meta.smt, cores, toMicroseconds));
  for (const event of events) {
    if (event.kind !== EventKind.foreignLines) continue;
    timed.push({
      name: `core ${event.a} foreign L1D lines`,
      ph: 'C',
      ts: toMicroseconds(event.timeCycles),
      pid: event.a + 1,
      args: { lines: event.b },
    });
  }

  const records = new Map<string, Violation>();
  for (const record of meta.violationRecords ?? []) {
    records.set(`${record.id}@${record.threads[0] ?? -1}@${record.timeCycles}`, record);
  }
  // Violation instants kept so far per invariant and hyperthread ("INV-2@1"); those past the cap are
  // only counted (the counter track below counts every violation).
  const instantsKept = new Map<string, number>();
  let violations = 0;
  let instantsDropped = 0;
  const keepInstant = (event: LoggedEvent) => {
    violations++;
    const key = `${event.a}@${event.thread}`;
    const kept = instantsKept.get(key) ?? 0;
    if (kept >= instantsPerTrack) {
      instantsDropped++;
      return false;
    }
    instantsKept.set(key, kept + 1);
    return true;
  };
  for (const event of events) {
    if (event.thread < 0) {
      if (event.kind === EventKind.violation && keepInstant(event))
        timed.push(violationInstant(event, -1, -1, toMicroseconds, records));
      continue;
    }
    assert(event.thread < meta.threads, `event of ht${event.thread} outside 0..${meta.threads - 1}`);
    const pid = pidOf(event.thread);
    const tid = tidOf(event.thread);
    const at = { ph: 'i' as const, s: 't' as const, ts: toMicroseconds(event.timeCycles), pid, tid };
    switch (event.kind) {
      case EventKind.exit: {
        const spec = (meta.catalogue ?? exitCatalogue)[event.a];
        const reason = spec?.name ?? `reason ${event.a}`;
        timed.push({
          ...at,
          name: `exit ${reason}`,
          cat: 'exit',
          args: { reason, variant: spec?.variants[event.b]?.name ?? event.b },
        });
        break;
      }
      case EventKind.kick:
        assert(
          event.a >= 0 && event.a < meta.threads,
          `kick target ht${event.a} outside 0..${meta.threads - 1}`,
        );
        timed.push({ ...at, name: `kick ht${event.a}`, cat: 'kick', args: { target: event.a } });
        break;
      case EventKind.fault:
        timed.push({
          ...at,
          name: 'fault',
          cat: 'fault',
          cname: 'bad',
          args: {
            va: formatVa(event.a),
            handler: (meta.catalogue ?? exitCatalogue)[event.b]?.name ?? event.b,
          },
        });
        break;
      case EventKind.interrupt:
        timed.push({
          ...at,
          name: `interrupt ${vectorNames[event.a] ?? event.a}`,
          cat: 'interrupt',
          args: { vector: vectorNames[event.a] ?? event.a, mode: modeNames[event.b] ?? event.b },
        });
        break;
      case EventKind.flush:
        timed.push({
          ...at,
          name: event.a & 1 ? 'L1D flush' : 'buffer clear',
          cat: 'flush',
          args: { l1d: (event.a & 1) !== 0, buffers: (event.a & 2) !== 0, lines: event.b },
        });
        break;
      case EventKind.switchToFull:
        timed.push({ ...at, name: `switch to ${modeNames[event.a] ?? event.a}`, cat: 'switch' });
        break;
      case EventKind.violation:
        if (keepInstant(event)) timed.push(violationInstant(event, pid, tid, toMicroseconds, records));
        break;
      default:
        // mode (slices above), enter (the guest slice shows it), guest steps: no instant of their own.
        break;
    }
  }
  // Flow arrows: `s` on the kicker, `f` bound to the enclosing slice of the target's kick exit.
  kickPairs(events, meta.threads).forEach((pair, index) => {
    const common = { name: 'kick', cat: 'kick', id: index + 1 };
    timed.push(
      {
        ...common,
        ph: 's',
        ts: toMicroseconds(pair.sentCycles),
        pid: pidOf(pair.fromThread),
        tid: tidOf(pair.fromThread),
      },
      {
        ...common,
        ph: 'f',
        bp: 'e',
        ts: toMicroseconds(pair.takenCycles),
        pid: pidOf(pair.toThread),
        tid: tidOf(pair.toThread),
      },
    );
  });
  if (violations > 0) {
    const pid = cores + 1;
    metadata.push(
      { name: 'process_name', ph: 'M', ts: 0, pid, args: { name: 'violations' } },
      { name: 'process_sort_index', ph: 'M', ts: 0, pid, args: { sort_index: cores } },
    );
    timed.push(...violationCounter(events, pid, toMicroseconds));
  }
  timed.sort((a, b) => a.ts - b.ts);

  return {
    traceEvents: [...metadata, ...timed],
    displayTimeUnit: 'ns',
    otherData: {
      producer: 'asi-emu',
      backend: meta.backend,
      policy: meta.policy,
      mix: meta.mix,
      cores,
      smt: meta.smt,
      threads: meta.threads,
      clock:
        meta.timeUnit === 'cycles'
          ? `sim virtual time: cycles / ${cyclesPerMicrosecond} = microseconds (a ${cyclesPerMicrosecond / 1000} GHz core)`
          : 'workers wall-clock time: nanoseconds since start / 1000 = microseconds',
      cyclesPerMicrosecond: meta.timeUnit === 'cycles' ? cyclesPerMicrosecond : 0,
      tracks: 'process = core (pid = core + 1), thread = hyperthread (tid = ht + 1)',
      violations,
      violationInstants: violations - instantsDropped,
      violationInstantsLeftOut: instantsDropped,
      violationInstantsPolicy: `the first ${instantsPerTrack} of each invariant on each hyperthread are instants; every violation is counted on the "violations" process's counter track (cumulative per invariant, at most ${violationCounterSamplesMax} samples)`,
    },
  };
}

/**
 * Every violation counted, per invariant, cumulative: one sample at 0, then at most
 * `violationCounterSamplesMax`, each at the last violation of its 1/1,000 of the violations' span.
 */
function violationCounter(
  events: readonly LoggedEvent[],
  pid: number,
  toMicroseconds: (time: number) => number,
): TraceEvent[] {
  const violations = events
    .filter((event) => event.kind === EventKind.violation)
    .sort((a, b) => a.timeCycles - b.timeCycles);
  assert(violations.length > 0, 'a violation counter counts violations');
  const first = violations[0].timeCycles;
  const span = violations[violations.length - 1].timeCycles - first;
  const bucketOf = (time: number) =>
    span > 0
      ? Math.min(
          violationCounterSamplesMax - 1,
          Math.floor(((time - first) / span) * violationCounterSamplesMax),
        )
      : 0;
  const counts: Record<string, number> = {};
  for (const event of violations) counts[`INV-${event.a}`] = 0;
  const name = 'violations (cumulative, per invariant)';
  const samples: TraceEvent[] = [{ name, ph: 'C', ts: 0, pid, args: { ...counts } }];
  violations.forEach((event, index) => {
    counts[`INV-${event.a}`]++;
    const next = violations[index + 1];
    if (next === undefined || bucketOf(next.timeCycles) !== bucketOf(event.timeCycles))
      samples.push({ name, ph: 'C', ts: toMicroseconds(event.timeCycles), pid, args: { ...counts } });
  });
  assert(samples.length <= violationCounterSamplesMax + 1, 'the violation counter stays within its samples');
  return samples;
}

function violationInstant(
  event: LoggedEvent,
  pid: number,
  tid: number,
  toMicroseconds: (time: number) => number,
  records: Map<string, Violation>,
): TraceEvent {
  const id = `INV-${event.a}`;
  const known = (invariantIds as readonly string[]).includes(id);
  const record = records.get(`${id}@${event.thread}@${event.timeCycles}`);
  const args: Record<string, unknown> = {
    id,
    invariant: known ? invariantTitles[id as keyof typeof invariantTitles] : 'unknown invariant',
  };
  if (record) {
    args.detail = record.detail;
    args.threads = record.threads.map((thread) => `ht${thread}`).join(',');
    args.modes = record.modes.join(',');
    args.step = record.step;
    if (record.address) args.address = record.address;
    if (record.line)
      args.line = `pfn ${record.line.pfn} line ${record.line.lineInPage} (${record.line.domain})`;
  }
  const ts = toMicroseconds(event.timeCycles);
  // A violation no thread owns (thread -1) goes on the global track.
  if (pid < 0)
    return { name: id, cat: 'violation', ph: 'i', s: 'g', ts, pid: 1, tid: 1, cname: 'terrible', args };
  return { name: id, cat: 'violation', ph: 'i', s: 't', ts, pid, tid, cname: 'terrible', args };
}

/** A kick and the exit on its target that took it. */
export interface KickPair {
  fromThread: number;
  toThread: number;
  sentCycles: number;
  takenCycles: number;
}

/**
 * Pairs every kick with the kick exit on its target that took it. A kick exit takes every kick sent
 * to that thread since the thread last entered the guest (the mailbox holds one kick bit, so kicks
 * sent while one is pending are taken together). A kick still pending at a VM entry is dropped there
 * as stale (cpu/hyperthread.ts `entered`: its kicker waited for the target to leave the guest, and it
 * did), so kicks sent before the target's last entry are left out, as are kicks no exit took before
 * the trace ended.
 */
export function kickPairs(events: readonly LoggedEvent[], threads: number): KickPair[] {
  const kicks: LoggedEvent[][] = Array.from({ length: threads }, () => []);
  const exits: LoggedEvent[][] = Array.from({ length: threads }, () => []);
  const entries: number[][] = Array.from({ length: threads }, () => []);
  for (const event of events) {
    if (event.kind === EventKind.kick) {
      assert(event.a >= 0 && event.a < threads, `kick target ht${event.a} outside 0..${threads - 1}`);
      kicks[event.a].push(event);
    } else if (isKickExit(event)) {
      exits[event.thread].push(event);
    } else if (event.kind === EventKind.mode && event.b === Mode.guest) {
      entries[event.thread].push(event.timeCycles);
    }
  }
  const byTime = (a: LoggedEvent, b: LoggedEvent) => a.timeCycles - b.timeCycles;
  const pairs: KickPair[] = [];
  kicks.forEach((toTarget, target) => {
    toTarget.sort(byTime);
    exits[target].sort(byTime);
    const entered = entries[target].sort((a, b) => a - b);
    let next = 0;
    let entry = 0;
    for (const exit of exits[target]) {
      while (entry + 1 < entered.length && entered[entry + 1] <= exit.timeCycles) entry++;
      const lastEntry = entered.length > 0 && entered[entry] <= exit.timeCycles ? entered[entry] : 0;
      while (next < toTarget.length && toTarget[next].timeCycles <= exit.timeCycles) {
        const kick = toTarget[next++];
        if (kick.timeCycles < lastEntry) continue; // stale: dropped at that entry
        pairs.push({
          fromThread: kick.thread,
          toThread: target,
          sentCycles: kick.timeCycles,
          takenCycles: exit.timeCycles,
        });
      }
    }
  });
  return pairs;
}

/** Per core: hyperthreads in the guest, holding secrets (full or vmm) and held, at every change. */
function coreCounters(
  slices: readonly ModeSlice[],
  smt: number,
  cores: number,
  toMicroseconds: (time: number) => number,
): TraceEvent[] {
  const counters: TraceEvent[] = [];
  for (let core = 0; core < cores; core++) {
    // +1 at a slice's start, -1 at its end, per counted mode; ends sort before starts at one instant.
    const steps: { time: number; delta: number; series: 'guest' | 'secrets' | 'held' }[] = [];
    for (const slice of slices) {
      if (Math.floor(slice.thread / smt) !== core) continue;
      const series =
        slice.mode === Mode.guest
          ? 'guest'
          : slice.mode === Mode.full || slice.mode === Mode.vmm
            ? 'secrets'
            : slice.mode === Mode.held
              ? 'held'
              : null;
      if (series === null) continue;
      steps.push({ time: slice.startCycles, delta: 1, series }, { time: slice.endCycles, delta: -1, series });
    }
    steps.sort((a, b) => a.time - b.time || a.delta - b.delta);
    const value = { guest: 0, secrets: 0, held: 0 };
    const name = `core ${core} hyperthreads`;
    const emit = (time: number) =>
      counters.push({ name, ph: 'C', ts: toMicroseconds(time), pid: core + 1, args: { ...value } });
    emit(0);
    for (let i = 0; i < steps.length; i++) {
      value[steps[i].series] += steps[i].delta;
      assert(
        value[steps[i].series] >= 0 && value[steps[i].series] <= smt,
        'a core counter stays within 0..smt',
      );
      // One sample per instant, after every change at that instant.
      if (i + 1 === steps.length || steps[i + 1].time !== steps[i].time) emit(steps[i].time);
    }
  }
  return counters;
}

/** Writes the trace as JSON, atomically (open it in ui.perfetto.dev or chrome://tracing). */
export function writeTrace(path: string, trace: TraceFile): void {
  writeFileAtomic(path, traceJson(trace), '--trace');
}

/** The trace as the JSON a trace file holds. */
export function traceJson(trace: TraceFile): string {
  assert(Array.isArray(trace.traceEvents), 'a trace has a traceEvents array');
  return JSON.stringify(trace);
}
