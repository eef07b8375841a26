import type { RunResult } from '../backend/result.js';
import type { RunConfig } from '../config/run-config.js';
import type { EventLog } from '../invariants/event-log.js';
import { writeHtmlReport } from '../report/html.js';
import { buildTrace, writeTrace } from '../report/perfetto.js';

/** `bench --trace` and `--report`, for runs of either backend. */

/** What the trace and report writers need of a comparison, from either backend. */
export interface RunOutputs {
  results: readonly RunResult[];
  /** Each run's kept events, parallel to `results` (null where none were kept). */
  logs: readonly (EventLog | null)[];
  backend: 'sim' | 'workers';
}

/**
 * The mode timeline of the HTML report shows ~100 µs: 300,000 virtual cycles at 3 GHz (sim), or
 * 100,000 ns of wall time (workers).
 */
const timelineWindow = {
  sim: { units: 300_000, perMicrosecond: 3000 },
  workers: { units: 100_000, perMicrosecond: 1000 },
};

/** One trace file per run: the path itself for one run, else FILE.<policy>.<mix>.json. */
export function writeTraces(path: string, outputs: RunOutputs, config: RunConfig): void {
  const several = outputs.results.length > 1;
  outputs.results.forEach((result, index) => {
    const target = several ? path.replace(/(\.json)?$/, `.${result.policy}.${result.mix}.json`) : path;
    writeTrace(
      target,
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
    );
    process.stdout.write(`wrote ${target}\n`);
  });
}

/** The HTML report: charts of every result, and the mode timeline of asi's run (else the first). */
export function writeReport(path: string, outputs: RunOutputs, config: RunConfig, title: string): void {
  const index = Math.max(
    0,
    outputs.results.findIndex((result) => result.policy === 'asi'),
  );
  const events = outputs.logs[index]?.events() ?? [];
  const fromCycles = events.length > 0 ? events[0].timeCycles : 0;
  const window = timelineWindow[outputs.backend];
  writeHtmlReport(path, {
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
      label: `${outputs.results[index]?.policy} on ${outputs.results[index]?.mix}, seed ${config.run.seed}${outputs.backend === 'workers' ? ' (workers, wall time)' : ''}`,
    },
  });
  process.stdout.write(`wrote ${path}\n`);
}
