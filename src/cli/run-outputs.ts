import type { RunResult } from '../backend/result.js';
import type { RunConfig } from '../config/run-config.js';
import { UsageError } from '../errors.js';
import type { RunEvents } from '../report/comparison.js';
import { safeFileNamePart } from '../report/file-names.js';
import { renderHtmlReport } from '../report/html.js';
import type { OutputFile } from '../report/output-files.js';
import { buildTrace, traceJson } from '../report/perfetto.js';

/** `bench --trace` and `--report`, for runs of either backend. */

/** What the trace and report writers need of a comparison, from either backend. */
export interface RunOutputs {
  results: readonly RunResult[];
  /**
   * Each run's kept events, parallel to `results` (null where none were kept): with repeats, the
   * first repeat's (its seed is the run seed).
   */
  logs: readonly (RunEvents | null)[];
  backend: 'sim' | 'workers';
}

/**
 * The mode timeline of the HTML report shows ~100 µs: 300,000 virtual cycles at 3 GHz (sim), or
 * 100,000 ns of wall time (workers). By default the window starts halfway through the run's events,
 * in the steady state: the first 100 µs show only the start-up (on the workers backend every thread
 * still isolated, issue 20); `bench --timeline-at MICROSECONDS` puts it elsewhere.
 */
const timelineWindow = {
  sim: { units: 300_000, perMicrosecond: 3000 },
  workers: { units: 100_000, perMicrosecond: 1000 },
};

/** A run as the trace names know it. */
export interface RunName {
  policy: string;
  mix: string;
}

/**
 * Each run's trace path: `path` itself for one run, else FILE.<policy>.<mix>.json beside it. The
 * policy and mix names are data (a config file's `workload.mix.name`): made safe, they never lead
 * out of the trace's directory. Standard output (`-`) holds one trace only.
 */
export function tracePaths(path: string, runs: readonly RunName[]): string[] {
  if (runs.length <= 1) return [path];
  if (path === '-') {
    throw new UsageError(
      '--trace',
      'a file path when several runs are traced (one file per run: FILE.<policy>.<mix>.json); - for one run only',
      path,
    );
  }
  return runs.map(
    (run) =>
      `${path.replace(/(\.json)?$/, '')}.${safeFileNamePart(run.policy)}.${safeFileNamePart(run.mix)}.json`,
  );
}

/** The trace outputs (`--trace`), one per run, rendered when written. */
export function traceOutputs(path: string, outputs: RunOutputs, config: RunConfig): OutputFile[] {
  const paths = tracePaths(path, outputs.results);
  return outputs.results.map((result, index) => ({
    flag: '--trace',
    path: paths[index],
    contents: () =>
      traceJson(
        buildTrace(outputs.logs[index]?.events() ?? [], {
          backend: outputs.backend,
          threads: config.machine.cores * config.machine.smt,
          smt: config.machine.smt,
          policy: result.policy,
          mix: result.mix,
          timeUnit: outputs.backend === 'sim' ? 'cycles' : 'ns',
          catalogue: config.workload.catalogue,
          violationRecords: result.violationRecords,
        }),
      ),
  }));
}

/**
 * Where the report's timeline window starts, in the log's time unit: at `atMicroseconds` since the
 * run's start if given, else at the first event halfway through the events or later; never past the
 * last event's window, never before the first event (a moved `--timeline-at` is said in `note`).
 */
export function timelineStart(
  events: readonly { timeCycles: number }[],
  backend: 'sim' | 'workers',
  atMicroseconds?: number,
): { fromCycles: number; note: string } {
  const window = timelineWindow[backend];
  if (events.length === 0) return { fromCycles: 0, note: '' };
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const event of events) {
    first = Math.min(first, event.timeCycles);
    last = Math.max(last, event.timeCycles);
  }
  const latest = Math.max(first, last - window.units);
  if (atMicroseconds === undefined) {
    // At the first event from halfway on, so the window opens on something happening.
    const halfway = first + (last - first) / 2;
    let next = last;
    for (const event of events) if (event.timeCycles >= halfway) next = Math.min(next, event.timeCycles);
    return {
      fromCycles: Math.min(latest, next),
      note: 'halfway through the run (--timeline-at to choose)',
    };
  }
  const asked = atMicroseconds * window.perMicrosecond;
  const fromCycles = Math.min(latest, Math.max(first, asked));
  const note =
    fromCycles === asked
      ? `at ${atMicroseconds} µs (--timeline-at)`
      : `--timeline-at ${atMicroseconds} µs moved into the run's ${(first / window.perMicrosecond).toFixed(0)}..${(last / window.perMicrosecond).toFixed(0)} µs`;
  return { fromCycles, note };
}

/** The HTML report (`--report`): charts of every result, and the mode timeline of asi's run (else the first). */
export function reportOutput(
  path: string,
  outputs: RunOutputs,
  config: RunConfig,
  title: string,
  timelineAtMicroseconds?: number,
): OutputFile {
  const index = Math.max(
    0,
    outputs.results.findIndex((result) => result.policy === 'asi'),
  );
  const events = outputs.logs[index]?.events() ?? [];
  const { fromCycles, note } = timelineStart(events, outputs.backend, timelineAtMicroseconds);
  const window = timelineWindow[outputs.backend];
  return {
    flag: '--report',
    path,
    contents: () =>
      renderHtmlReport({
        results: outputs.results,
        title,
        machine: {
          cores: config.machine.cores,
          smt: config.machine.smt,
          vms: config.machine.vms.length,
          exits: config.run.exits,
          seed: config.run.seed,
        },
        timeline: {
          events,
          threads: config.machine.cores * config.machine.smt,
          fromCycles,
          toCycles: fromCycles + window.units,
          unitsPerMicrosecond: window.perMicrosecond,
          label: `${outputs.results[index]?.policy} on ${outputs.results[index]?.mix}, seed ${config.run.seed}${outputs.backend === 'workers' ? ' (workers, wall time)' : ''}${note ? `, ${note}` : ''}`,
        },
      }),
  };
}

/** "wrote X" for each output written to a file or device (not for standard output). */
export function sayWritten(files: readonly OutputFile[], say: (text: string) => void): void {
  for (const file of files) if (file.path !== '-') say(`wrote ${file.path}\n`);
}
