import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { exitCatalogue, exitReasonIndex } from '../../src/cpu/exits.js';
import { Mode, modeNames } from '../../src/cpu/modes.js';
import { EventKind, EventLog, type LoggedEvent } from '../../src/invariants/event-log.js';
import { invariantIds } from '../../src/invariants/violation.js';
import { policyByName } from '../../src/policy/index.js';
import {
  buildTrace,
  kickPairs,
  modeSlices,
  type TraceEvent,
  type TraceFile,
  type TraceMeta,
  writeTrace,
} from '../../src/report/perfetto.js';
import { runWithEvents } from './run-with-events.js';

/** Temporary directories of this file, removed after its tests. */
const temporaryDirectories: string[] = [];
function temporaryDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of temporaryDirectories) rmSync(directory, { recursive: true, force: true });
});

/**
 * A schema of the Trace Event Format (the JSON object form chrome://tracing and ui.perfetto.dev read):
 * the phases this exporter may write or a viewer accepts, with each phase's required fields. Strict
 * objects, so a misspelled field fails too.
 */
const microseconds = z.number().finite().min(0);
const id = z.number().int().nonnegative();
const common = {
  name: z.string().min(1),
  ts: microseconds,
  pid: z.number().int().nonnegative(),
  cat: z.string().optional(),
  cname: z.string().optional(),
  args: z.record(z.string(), z.unknown()).optional(),
};
const withThread = { ...common, tid: z.number().int().nonnegative() };
const traceEventSchema = z.discriminatedUnion('ph', [
  z.object({ ...withThread, ph: z.literal('B') }).strict(),
  z.object({ ...withThread, ph: z.literal('E') }).strict(),
  z.object({ ...withThread, ph: z.literal('X'), dur: microseconds }).strict(),
  z.object({ ...withThread, ph: z.literal('i'), s: z.enum(['t', 'p', 'g']).optional() }).strict(),
  z.object({ ...withThread, ph: z.literal('I'), s: z.enum(['t', 'p', 'g']).optional() }).strict(),
  z
    .object({
      ...common,
      ph: z.literal('C'),
      tid: z.number().int().nonnegative().optional(),
      args: z.record(z.string(), z.number().finite()),
    })
    .strict(),
  z
    .object({
      ...common,
      ph: z.literal('M'),
      name: z.enum([
        'process_name',
        'process_labels',
        'process_sort_index',
        'thread_name',
        'thread_sort_index',
      ]),
      tid: z.number().int().nonnegative().optional(),
      args: z.union([
        z.object({ name: z.string() }),
        z.object({ labels: z.string() }),
        z.object({ sort_index: z.number().int() }),
      ]),
    })
    .strict()
    .refine(
      (event) => !event.name.startsWith('thread_') || event.tid !== undefined,
      'thread metadata needs a tid',
    ),
  z.object({ ...withThread, ph: z.literal('s'), cat: z.string(), id }).strict(),
  z
    .object({ ...withThread, ph: z.literal('t'), cat: z.string(), id, bp: z.literal('e').optional() })
    .strict(),
  z
    .object({ ...withThread, ph: z.literal('f'), cat: z.string(), id, bp: z.literal('e').optional() })
    .strict(),
]);
const traceFileSchema = z
  .object({
    traceEvents: z.array(z.unknown()),
    displayTimeUnit: z.enum(['ms', 'ns']).optional(),
    otherData: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  })
  .strict();

/** Validates every event; returns the failures (index, phase, issue) so a failing test says which. */
function schemaFailures(trace: unknown): string[] {
  const file = traceFileSchema.safeParse(trace);
  if (!file.success) return [`file: ${file.error.message}`];
  const failures: string[] = [];
  file.data.traceEvents.forEach((event, index) => {
    const parsed = traceEventSchema.safeParse(event);
    if (!parsed.success)
      failures.push(`event ${index} ${JSON.stringify(event)}: ${parsed.error.issues[0]?.message}`);
  });
  return failures;
}

function metaOf(run: ReturnType<typeof runWithEvents>): TraceMeta {
  return {
    backend: 'sim',
    threads: run.threads,
    smt: run.smt,
    policy: run.result.policy,
    mix: run.result.mix,
    timeUnit: 'cycles',
    violationRecords: run.result.violationRecords,
  };
}

const kickReason = exitReasonIndex('EXTERNAL_INTERRUPT');
const kickVariantIndex = exitCatalogue[kickReason].variants.findIndex((variant) => variant.name === 'kick');

const trackOf = (event: TraceEvent) => `${event.pid}/${event.tid}`;

describe('Perfetto trace export', () => {
  const coschedule = runWithEvents('coschedule', { run: { exits: 400, seed: 11 } });
  const unsafe = runWithEvents('none', { run: { exits: 300, seed: 12 } });
  const slow = runWithEvents('asi', { workload: { mix: 'all-slow' }, run: { exits: 200, seed: 13 } });
  const runs = { coschedule, none: unsafe, 'asi on all-slow': slow };

  it('the runs kept their events (the capture works)', () => {
    for (const run of Object.values(runs)) expect(run.events.length).toBeGreaterThan(100);
  });

  for (const [label, run] of Object.entries(runs)) {
    it(`every event of the ${label} trace passes the Trace Event Format schema`, () => {
      const trace = buildTrace(run.events, metaOf(run));
      // Round-trip through JSON: what a viewer reads is the serialized form.
      expect(schemaFailures(JSON.parse(JSON.stringify(trace)))).toEqual([]);
      expect(trace.traceEvents.filter((event) => event.ph === 'X').length).toBeGreaterThan(10);
    });

    it(`slices on one track never overlap (${label})`, () => {
      const trace = buildTrace(run.events, metaOf(run));
      const tracks = new Map<string, TraceEvent[]>();
      for (const event of trace.traceEvents) {
        if (event.ph !== 'X') continue;
        const list = tracks.get(trackOf(event)) ?? [];
        list.push(event);
        tracks.set(trackOf(event), list);
      }
      expect(tracks.size).toBe(run.result.perThread.length);
      for (const slices of tracks.values()) {
        slices.sort((a, b) => a.ts - b.ts);
        for (let i = 1; i < slices.length; i++) {
          const previousEnd = slices[i - 1].ts + (slices[i - 1].dur ?? 0);
          expect(previousEnd, `slice ${i - 1} ends after slice ${i} starts`).toBeLessThanOrEqual(
            slices[i].ts + 1e-6,
          );
        }
      }
    });
  }

  it('the schema check can fail: an X without dur, a flow without id, a string ts', () => {
    const base = { name: 'guest', pid: 1, tid: 1, ts: 0 };
    const bad: TraceFile = {
      traceEvents: [
        { ...base, ph: 'X' },
        { ...base, ph: 's', cat: 'kick' },
        { ...base, ph: 'i', ts: '3' as unknown as number },
      ],
      displayTimeUnit: 'ns',
      otherData: {},
    };
    expect(schemaFailures(bad)).toHaveLength(3);
    expect(schemaFailures({ events: [] })).toHaveLength(1);
  });

  it('kick flows pair up: one s and one f per id, f on the target kick exit, never before its s', () => {
    const trace = buildTrace(coschedule.events, metaOf(coschedule));
    const starts = trace.traceEvents.filter((event) => event.ph === 's');
    const finishes = trace.traceEvents.filter((event) => event.ph === 'f');
    expect(starts.length).toBeGreaterThan(10);
    expect(finishes.length).toBe(starts.length);
    const finishById = new Map(finishes.map((event) => [event.id, event]));
    expect(finishById.size).toBe(finishes.length);
    const kickExitAt = new Set(
      trace.traceEvents
        .filter((event) => event.name === 'exit EXTERNAL_INTERRUPT' && event.args?.variant === 'kick')
        .map((event) => `${trackOf(event)}@${event.ts}`),
    );
    for (const start of starts) {
      const finish = finishById.get(start.id);
      expect(finish, `flow ${start.id} has no end`).toBeDefined();
      if (!finish) continue;
      expect([finish.cat, finish.name, finish.bp]).toEqual([start.cat, start.name, 'e']);
      expect(finish.ts).toBeGreaterThanOrEqual(start.ts);
      expect(trackOf(finish)).not.toBe(trackOf(start));
      expect(kickExitAt.has(`${trackOf(finish)}@${finish.ts}`)).toBe(true);
    }
    // Every kick is an instant on its sender; flows never outnumber kicks.
    const kicks = trace.traceEvents.filter((event) => event.cat === 'kick' && event.ph === 'i');
    expect(kicks.length).toBe(coschedule.events.filter((event) => event.kind === EventKind.kick).length);
    expect(starts.length).toBeLessThanOrEqual(kicks.length);
  });

  it('no kick arrow spans a VM entry of its target (a kick pending at entry is stale and dropped)', () => {
    const pairs = kickPairs(coschedule.events, coschedule.threads);
    expect(pairs.length).toBeGreaterThan(10);
    const entries = coschedule.events.filter(
      (event) => event.kind === EventKind.mode && event.b === Mode.guest,
    );
    for (const pair of pairs) {
      const spanned = entries.filter(
        (entry) =>
          entry.thread === pair.toThread &&
          entry.timeCycles > pair.sentCycles &&
          entry.timeCycles < pair.takenCycles,
      );
      expect(spanned, `kick ht${pair.fromThread}->ht${pair.toThread} at ${pair.sentCycles}`).toEqual([]);
      // Kicks go to siblings: same core.
      expect(Math.floor(pair.toThread / coschedule.smt)).toBe(Math.floor(pair.fromThread / coschedule.smt));
    }
    // Hand-made: a kick lands while the target is already out; it enters again, later takes a new kick.
    const hand: LoggedEvent[] = [
      { timeCycles: 0, thread: 1, kind: EventKind.mode, a: Mode.offline, b: Mode.guest },
      { timeCycles: 100, thread: 0, kind: EventKind.kick, a: 1, b: 0 },
      { timeCycles: 150, thread: 1, kind: EventKind.mode, a: Mode.guest, b: Mode.isolated },
      { timeCycles: 300, thread: 1, kind: EventKind.mode, a: Mode.isolated, b: Mode.guest },
      { timeCycles: 500, thread: 0, kind: EventKind.kick, a: 1, b: 0 },
      { timeCycles: 900, thread: 1, kind: EventKind.exit, a: kickReason, b: kickVariantIndex },
    ];
    expect(kickPairs(hand, 2)).toEqual([{ fromThread: 0, toThread: 1, sentCycles: 500, takenCycles: 900 }]);
  });

  it('mode slices add up to the per-thread mode cycles the run counted (a differential check)', () => {
    for (const run of Object.values(runs)) {
      for (const stats of run.result.perThread) {
        const slices = modeSlices(
          run.events.filter((event) => event.thread === stats.thread),
          run.threads,
          stats.clockCycles,
        );
        const total = (mode: number) =>
          slices
            .filter((slice) => slice.mode === mode)
            .reduce((sum, slice) => sum + slice.endCycles - slice.startCycles, 0);
        expect(total(Mode.guest)).toBeCloseTo(stats.guestCycles, 3);
        expect(total(Mode.isolated)).toBeCloseTo(stats.isolatedCycles, 3);
        expect(total(Mode.full)).toBeCloseTo(stats.fullCycles, 3);
        expect(total(Mode.held)).toBeCloseTo(stats.heldCycles, 3);
        expect(total(Mode.idle)).toBeCloseTo(stats.idleCycles, 3);
      }
    }
  });

  it('every violation is an instant with its invariant id (no cap), and kept records add their detail', () => {
    const trace = buildTrace(unsafe.events, {
      ...metaOf(unsafe),
      violationInstantsPerTrack: Number.MAX_SAFE_INTEGER,
    });
    const instants = trace.traceEvents.filter((event) => event.cat === 'violation');
    const total = invariantIds.reduce((sum, id) => sum + unsafe.result.violations[id], 0);
    expect(total).toBeGreaterThan(0);
    expect(instants.length).toBe(total);
    for (const instant of instants) {
      expect(instant).toMatchObject({ ph: 'i', s: 't', cname: 'terrible' });
      expect(instant.name).toMatch(/^INV-\d+$/);
    }
    const detailed = instants.filter((instant) => typeof instant.args?.detail === 'string');
    expect(detailed.length).toBeGreaterThanOrEqual(Math.min(unsafe.result.violationRecords.length, 1));
    expect(detailed[0].args).toMatchObject({ id: detailed[0].name, modes: expect.any(String) });
  });

  it('faults carry the VA and handler; exits carry reason and variant; flushes their lines', () => {
    const trace = buildTrace(slow.events, metaOf(slow));
    const faults = trace.traceEvents.filter((event) => event.cat === 'fault');
    expect(faults.length).toBeGreaterThan(0);
    for (const fault of faults)
      expect(fault.args).toMatchObject({
        va: expect.stringMatching(/^0x[0-9a-f]+$/),
        handler: expect.any(String),
      });
    const exits = trace.traceEvents.filter((event) => event.cat === 'exit');
    expect(exits.length).toBe(slow.events.filter((event) => event.kind === EventKind.exit).length);
    expect(exits[0].args).toMatchObject({ reason: expect.any(String), variant: expect.any(String) });
    const flushes = trace.traceEvents.filter((event) => event.cat === 'flush');
    expect(flushes.length).toBe(slow.events.filter((event) => event.kind === EventKind.flush).length);
  });

  it('one process per core and one named thread per hyperthread; counters stay within 0..smt', () => {
    const trace = buildTrace(coschedule.events, metaOf(coschedule));
    const names = trace.traceEvents.filter((event) => event.ph === 'M' && event.name === 'thread_name');
    expect(names.map((event) => event.args?.name)).toEqual(['ht0', 'ht1', 'ht2', 'ht3']);
    expect(names.map((event) => event.pid)).toEqual([1, 1, 2, 2]);
    const counters = trace.traceEvents.filter(
      (event) => event.ph === 'C' && event.name.endsWith(' hyperthreads'),
    );
    expect(new Set(counters.map((event) => event.pid))).toEqual(new Set([1, 2]));
    for (const counter of counters) {
      for (const value of Object.values(counter.args ?? {}))
        expect(value as number).toBeGreaterThanOrEqual(0);
      for (const value of Object.values(counter.args ?? {})) expect(value as number).toBeLessThanOrEqual(2);
    }
    // Somewhere a core had both hyperthreads in the guest.
    expect(counters.some((counter) => counter.args?.guest === 2)).toBe(true);
  });

  it("counts each core's L1D lines foreign to its VM: they rise beside an unsafe policy's full-kernel sibling and fall to 0 at a flush", () => {
    const foreign = (run: ReturnType<typeof runWithEvents>) =>
      buildTrace(run.events, metaOf(run)).traceEvents.filter(
        (event) => event.ph === 'C' && /^core \d foreign L1D lines$/.test(event.name),
      );
    const capacity = 64 * 12; // the default L1D: 64 sets x 12 ways
    for (const run of [unsafe, slow]) {
      const counters = foreign(run);
      expect(new Set(counters.map((event) => event.pid))).toEqual(new Set([1, 2]));
      for (const counter of counters) {
        expect(counter.args?.lines as number).toBeGreaterThanOrEqual(0);
        expect(counter.args?.lines as number).toBeLessThanOrEqual(capacity);
      }
      expect(counters.some((counter) => (counter.args?.lines as number) > 0)).toBe(true);
    }
    // asi flushes before the guest runs again: its foreign lines go back to 0.
    expect(foreign(slow).some((counter) => counter.args?.lines === 0)).toBe(true);
  });

  it('the samples change neither the trace hash nor the violation records of a run', () => {
    const config = parseRunConfig({
      machine: { cores: 2, smt: 2, memoryMiB: 64, vms: [{ vcpus: 4, guestMemoryMiB: 1 }] },
      run: { exits: 300, seed: 12 },
    });
    const traced = runSim(config, policyByName('none'), { log: new EventLog(64, true) });
    const plain = runSim(config, policyByName('none'));
    expect(traced.traceHash).toBe(plain.traceHash);
    expect(traced.violationRecords).toEqual(plain.violationRecords);
  });

  it('sim time is cycles at 3 GHz; workers time is nanoseconds; metadata says which', () => {
    const events: LoggedEvent[] = [
      { timeCycles: 0, thread: 0, kind: EventKind.mode, a: Mode.offline, b: Mode.guest },
      { timeCycles: 3000, thread: 0, kind: EventKind.mode, a: Mode.guest, b: Mode.isolated },
      { timeCycles: 9000, thread: 0, kind: EventKind.mode, a: Mode.isolated, b: Mode.guest },
    ];
    const meta: TraceMeta = {
      backend: 'sim',
      threads: 2,
      smt: 2,
      policy: 'asi',
      mix: 'm',
      timeUnit: 'cycles',
    };
    const sim = buildTrace(events, meta).traceEvents.filter((event) => event.ph === 'X');
    expect(sim.map((event) => [event.name, event.ts, event.dur])).toEqual([
      [modeNames[Mode.guest], 0, 1],
      [modeNames[Mode.isolated], 1, 2],
    ]);
    expect(buildTrace(events, meta).otherData.clock).toMatch(/3000 = microseconds.*3 GHz/);
    const workers = buildTrace(events, { ...meta, backend: 'workers', timeUnit: 'ns' });
    expect(
      workers.traceEvents.filter((event) => event.ph === 'X').map((event) => [event.ts, event.dur]),
    ).toEqual([
      [0, 3],
      [3, 6],
    ]);
    expect(workers.otherData.clock).toMatch(/wall-clock/);
  });

  it('rejects an event on a hyperthread the machine does not have', () => {
    const events: LoggedEvent[] = [{ timeCycles: 1, thread: 5, kind: EventKind.exit, a: 0, b: 0 }];
    expect(() =>
      buildTrace(events, { backend: 'sim', threads: 4, smt: 2, policy: 'p', mix: 'm', timeUnit: 'cycles' }),
    ).toThrow(/ht5/);
  });

  it('writeTrace writes the JSON atomically (no temporary file left behind)', () => {
    const directory = temporaryDirectory('asi-trace-');
    const path = join(directory, 'run.trace.json');
    const trace = buildTrace(coschedule.events, metaOf(coschedule));
    writeTrace(path, trace);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(JSON.parse(JSON.stringify(trace)));
    expect(readdirSync(directory)).toEqual(['run.trace.json']);
  });
});
