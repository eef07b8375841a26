import { describe, expect, it } from 'vitest';
import { timelineStart } from '../../src/cli/run-outputs.js';
import { EventKind } from '../../src/invariants/event-log.js';
import { invariantIds } from '../../src/invariants/violation.js';
import {
  buildTrace,
  type TraceEvent,
  violationCounterSamplesMax,
  violationInstantsPerTrackMax,
} from '../../src/report/perfetto.js';
import { runWithEvents } from './run-with-events.js';

/**
 * Traces and reports that stay usable (issue 20, item 8): an unsafe policy's violation instants are
 * capped per invariant and hyperthread, every violation still counted on a counter track; the report's
 * timeline opens in the steady state, or where `--timeline-at` says.
 */
describe('violation instants in a trace', () => {
  const unsafe = runWithEvents('none', { run: { exits: 600, seed: 12 } });
  const meta = {
    backend: 'sim' as const,
    threads: unsafe.threads,
    smt: unsafe.smt,
    policy: 'none',
    mix: 'sysbench-cpu',
    timeUnit: 'cycles' as const,
    violationRecords: unsafe.result.violationRecords,
  };
  const total = invariantIds.reduce((sum, id) => sum + unsafe.result.violations[id], 0);
  /** Violations of the run per "INV-n@thread". */
  const perTrack = new Map<string, number>();
  for (const event of unsafe.events) {
    if (event.kind !== EventKind.violation) continue;
    const key = `INV-${event.a}@${event.thread}`;
    perTrack.set(key, (perTrack.get(key) ?? 0) + 1);
  }

  it('keeps the first K per invariant and hyperthread as instants, and says how many it left out', () => {
    const cap = 3;
    expect([...perTrack.values()].some((count) => count > cap)).toBe(true);
    const trace = buildTrace(unsafe.events, { ...meta, violationInstantsPerTrack: cap });
    const instants = trace.traceEvents.filter((event) => event.cat === 'violation');
    const expected = [...perTrack.values()].reduce((sum, count) => sum + Math.min(count, cap), 0);
    expect(instants).toHaveLength(expected);
    const kept = new Map<string, number>();
    for (const instant of instants) {
      const key = `${instant.name}@${(instant.tid ?? 0) - 1}`;
      kept.set(key, (kept.get(key) ?? 0) + 1);
    }
    for (const [key, count] of perTrack) expect(kept.get(key), key).toBe(Math.min(count, cap));
    // The first ones are kept: the earliest violation of each track is among its instants.
    const firstAt = new Map<string, number>();
    for (const event of unsafe.events) {
      const key = `INV-${event.a}@${event.thread}`;
      if (event.kind === EventKind.violation && !firstAt.has(key)) firstAt.set(key, event.timeCycles);
    }
    for (const [key, timeCycles] of firstAt) {
      const ts = Math.round((timeCycles / 3000) * 1e4) / 1e4;
      expect(
        instants.some((instant) => `${instant.name}@${(instant.tid ?? 0) - 1}` === key && instant.ts === ts),
        key,
      ).toBe(true);
    }
    expect(trace.otherData).toMatchObject({
      violations: total,
      violationInstants: expected,
      violationInstantsLeftOut: total - expected,
    });
    expect(trace.otherData.violationInstantsPolicy).toMatch(
      /^the first 3 of each invariant on each hyperthread/,
    );
  });

  it('counts every violation on the violations counter track, cumulative per invariant', () => {
    const trace = buildTrace(unsafe.events, { ...meta, violationInstantsPerTrack: 3 });
    const process = trace.traceEvents.find(
      (event) => event.ph === 'M' && event.name === 'process_name' && event.args?.name === 'violations',
    ) as TraceEvent;
    expect(process.pid).toBe(unsafe.threads / unsafe.smt + 1);
    const counter = trace.traceEvents.filter((event) => event.ph === 'C' && event.pid === process.pid);
    expect(counter.length).toBeGreaterThan(1);
    expect(counter.length).toBeLessThanOrEqual(violationCounterSamplesMax + 1);
    for (let i = 1; i < counter.length; i++) {
      expect(counter[i].ts).toBeGreaterThanOrEqual(counter[i - 1].ts);
      for (const [id, value] of Object.entries(counter[i].args ?? {}))
        expect(value as number).toBeGreaterThanOrEqual(counter[i - 1].args?.[id] as number);
    }
    const last = counter[counter.length - 1].args ?? {};
    for (const id of invariantIds) expect(last[id] ?? 0, id).toBe(unsafe.result.violations[id]);
  });

  it('the default cap is 100, and a run without violations has no counter track', () => {
    expect(violationInstantsPerTrackMax).toBe(100);
    const capped = buildTrace(unsafe.events, meta);
    expect(capped.traceEvents.filter((event) => event.cat === 'violation')).toHaveLength(
      [...perTrack.values()].reduce((sum, count) => sum + Math.min(count, 100), 0),
    );
    const safe = runWithEvents('asi', { run: { exits: 200, seed: 12 } });
    const trace = buildTrace(safe.events, { ...meta, policy: 'asi', violationRecords: [] });
    expect(trace.otherData.violations).toBe(0);
    expect(trace.traceEvents.some((event) => event.ph === 'M' && event.args?.name === 'violations')).toBe(
      false,
    );
  });
});

describe("the report's timeline window", () => {
  const events = [0, 10, 400_000, 600_000, 900_000, 1_200_000].map((timeCycles) => ({ timeCycles }));

  it('opens at the first event halfway through the run by default', () => {
    expect(timelineStart(events, 'sim')).toEqual({
      fromCycles: 600_000,
      note: 'halfway through the run (--timeline-at to choose)',
    });
  });

  it('opens where --timeline-at says (µs since the run began), moved into the run when past it', () => {
    expect(timelineStart(events, 'sim', 100).fromCycles).toBe(300_000); // 100 µs at 3 GHz
    expect(timelineStart(events, 'workers', 100).fromCycles).toBe(100_000); // 100 µs of ns
    const late = timelineStart(events, 'sim', 10_000);
    expect(late.fromCycles).toBe(1_200_000 - 300_000); // the last window of the run
    expect(late.note).toMatch(/moved into the run/);
  });
});
