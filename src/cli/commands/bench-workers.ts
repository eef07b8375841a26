import { assert } from '../../assert.js';
import type { RunResult } from '../../backend/result.js';
import { runWorkersBenchmarks } from '../../backend/workers/benchmarks.js';
import { WorkerFailedError, WorkerHangError } from '../../backend/workers/errors.js';
import type { ProbedPolicy } from '../../backend/workers/policy-probe.js';
import type { PolicyInput } from '../../backend/workers/policy-spec.js';
import { checkWorkersMachine, runWorkers } from '../../backend/workers/run-workers.js';
import type { RunConfig } from '../../config/run-config.js';
import { workloadWithMix } from '../../config/workload.js';
import { PolicyFailedError } from '../../errors.js';
import { toolIdentity } from '../../fuzz/version.js';
import { EventLog } from '../../invariants/event-log.js';
import type { Policy } from '../../policy/policy.js';
import type { RunDone, RunRequest } from '../../report/comparison.js';
import { renderHtmlReport } from '../../report/html.js';
import {
  formatLatencyHistogram,
  formatLatencyTable,
  kickMeasurements,
  kickSeries,
} from '../../report/latency.js';
import { formatTable } from '../../report/machine-table.js';
import { type OutputFile, writeOutputs } from '../../report/output-files.js';
import { sayWritten } from '../run-outputs.js';

/**
 * `bench --backend workers`: with `--kick`, the sibling-kick round trip against raw Atomics ping-pongs
 * measured in the same run, and emulated exits per second per hyperthread (issue 4's JSON); without
 * it, the policies run on real worker threads, one per hyperthread (`workersRunner`), and bench prints
 * the same table as the sim (guest share and overheads in each thread's own cycles: compare policies
 * within one run).
 */

/** The kick benchmark's JSON format and schema version (schema/bench.schema.json, loosely). */
export const kickBenchFormat = 'asi-emu-kick-bench';
export const kickBenchSchemaVersion = 1;

export async function runKickBenchCommand(options: {
  json?: string;
  /** The latency histograms as a self-contained HTML report. */
  report?: string;
  /** Text for people: stdout, or stderr when an output is standard output (outputs.ts). */
  say: (text: string) => void;
}): Promise<void> {
  const report = await runWorkersBenchmarks({
    kick: true,
    exits: true,
    log: process.stdout.isTTY ? (line) => process.stderr.write(`${line}\n`) : undefined,
  });
  const rows: (string | number)[][] = [];
  if (report.kick) {
    rows.push(['sibling kick round trip (ns)', report.kick.roundTripNs.toFixed(0)]);
    rows.push(['raw spin ping-pong (ns)', report.kick.rawSpinRoundTripNs.toFixed(0)]);
    rows.push(['raw wait/notify ping-pong (ns)', report.kick.rawWaitRoundTripNs.toFixed(0)]);
    rows.push([
      `ratio (threads ${report.kick.threads}, CPUs ${report.kick.cpus})`,
      report.kick.ratio.toFixed(2),
    ]);
    rows.push(['kicks per second', report.kick.kicksPerSecond.toFixed(0)]);
  }
  if (report.exits) {
    rows.push([
      `exits per second per hyperthread (${report.exits.threads} threads)`,
      report.exits.exitsPerSecondPerThread.toFixed(0),
    ]);
  }
  options.say(
    `asi-emu bench --backend workers --kick on ${report.machine.cpuModel} (${report.machine.cpus} CPUs), Node ${report.machine.node}\n`,
  );
  options.say(`${formatTable(['measurement', 'value'], rows)}\n`);
  // The distributions: percentiles always, the histograms for a person at a terminal.
  for (const [name, kick] of kickMeasurements(report)) {
    options.say(`\n${formatLatencyTable(kick, name)}\n`);
    if (process.stdout.isTTY) {
      for (const series of kickSeries(kick, name))
        options.say(`\n${formatLatencyHistogram(series.name, series.latency)}\n`);
    }
  }
  // Every output rendered and written as one transaction: all of them, or none.
  const files: OutputFile[] = [];
  if (options.json) {
    const json = {
      format: kickBenchFormat,
      schemaVersion: kickBenchSchemaVersion,
      tool: toolIdentity(),
      ...report,
    };
    files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(json, null, 2)}\n` });
  }
  if (options.report) {
    files.push({
      flag: '--report',
      path: options.report,
      contents: () => renderHtmlReport({ results: [], title: 'asi-emu: sibling-kick latency', kick: report }),
    });
  }
  await writeOutputs(files);
  sayWritten(
    files.filter((file) => file.flag !== '--json'),
    options.say,
  );
}

/**
 * A `run` for `compareRepeated` on real worker threads: a built-in policy by object, a user's module
 * by path (every hyperthread's worker imports it; this thread only reads what the probe found). A
 * module whose hook throws or hangs is that policy's failure (`PolicyFailedError`, exit 1), not a bug.
 */
export function workersRunner(
  config: RunConfig,
  builtins: ReadonlyMap<string, Policy>,
  modules: ReadonlyMap<string, ProbedPolicy>,
): (request: RunRequest) => Promise<RunDone> {
  // Refused before the first worker starts (and before the bar shows): too many vCPUs, confidential VMs.
  checkWorkersMachine(config);
  return async (request) => {
    const runConfig: RunConfig = {
      ...config,
      workload: workloadWithMix(config.workload, request.mix),
      run: { ...config.run, seed: request.seed },
    };
    const module = modules.get(request.policy);
    const builtin = builtins.get(request.policy);
    const policy: PolicyInput | undefined = module
      ? { module: module.path, name: module.name, probed: module }
      : builtin;
    assert(policy !== undefined, `workersRunner: no policy ${request.policy}`);
    const log = request.keepEvents ? new EventLog(64, true) : null;
    let result: RunResult;
    try {
      result = await runWorkers(runConfig, policy, {
        ...(log ? { log } : {}),
        onProgress: request.onProgress,
      });
    } catch (error) {
      if (module && (error instanceof WorkerFailedError || error instanceof WorkerHangError)) {
        throw new PolicyFailedError(module.name, module.path, error.message.split('\n')[0]);
      }
      throw error;
    }
    return { result, events: log };
  };
}
