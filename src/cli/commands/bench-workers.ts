import type { RunResult } from '../../backend/result.js';
import { runWorkersBenchmarks } from '../../backend/workers/benchmarks.js';
import { checkWorkersMachine, runWorkers } from '../../backend/workers/run-workers.js';
import type { RunConfig } from '../../config/run-config.js';
import type { ExitMix } from '../../cpu/mixes.js';
import { EventLog } from '../../invariants/event-log.js';
import type { Policy } from '../../policy/policy.js';
import { formatByReason } from '../../report/by-reason.js';
import { comparisonJson, formatComparison } from '../../report/comparison.js';
import { renderHtmlReport } from '../../report/html.js';
import {
  formatLatencyHistogram,
  formatLatencyTable,
  kickMeasurements,
  kickSeries,
} from '../../report/latency.js';
import { formatTable } from '../../report/machine-table.js';
import { type OutputFile, writeOutputs } from '../../report/output-files.js';
import { runProgress } from '../progress.js';
import { type RunOutputs, reportOutput, sayWritten, traceOutputs } from '../run-outputs.js';

/**
 * `bench --backend workers`: with `--kick`, the sibling-kick round trip against raw Atomics ping-pongs
 * measured in the same run, and emulated exits per second per hyperthread (issue 4's JSON); without
 * it, the policies run on real worker threads, one per hyperthread, and print the same table as the
 * sim (guest share and overheads in each thread's own cycles: compare policies within one run).
 */
export async function runWorkersBenchCommand(
  config: RunConfig,
  policies: Policy[],
  mixes: ExitMix[],
  options: {
    json?: string;
    kick?: boolean;
    byReason?: boolean;
    trace?: string;
    report?: string;
    timelineAt?: number;
    title: string;
    /** Text for people: stdout, or stderr when an output is standard output (outputs.ts). */
    say: (text: string) => void;
  },
): Promise<void> {
  if (options.kick) {
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
    const files: OutputFile[] = [];
    if (options.json) {
      files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(report, null, 2)}\n` });
    }
    if (options.report) {
      files.push({
        flag: '--report',
        path: options.report,
        contents: () =>
          renderHtmlReport({ results: [], title: 'asi-emu: sibling-kick latency', kick: report }),
      });
    }
    await writeOutputs(files);
    sayWritten(
      files.filter((file) => file.flag !== '--json'),
      options.say,
    );
    return;
  }
  const results: RunResult[] = [];
  const logs: (EventLog | null)[] = [];
  const keepEvents = options.trace !== undefined || options.report !== undefined;
  // Refused before the first worker starts (and before the bar shows): too many vCPUs, confidential VMs.
  checkWorkersMachine(config);
  const progress = runProgress('bench (workers)', policies.length * mixes.length, { singleRun: true });
  try {
    for (const mix of mixes) {
      const mixConfig: RunConfig = { ...config, workload: { ...config.workload, mix } };
      let baseline: RunResult | null = null;
      for (const policy of policies) {
        const log = keepEvents ? new EventLog(64, true) : null;
        progress.begin(`${policy.name} on ${mix.name}`);
        const result = await runWorkers(mixConfig, policy, log ? { log } : {});
        progress.tick(`${policy.name} on ${mix.name}`);
        logs.push(log);
        if (policy.name === 'none') baseline = result;
        results.push(result);
      }
      for (const result of results.filter((candidate) => candidate.mix === mix.name)) {
        result.overheadVsNone =
          baseline && baseline.guestShare > 0 ? 1 - result.guestShare / baseline.guestShare : null;
      }
    }
  } finally {
    progress.stop();
  }
  options.say(
    `asi-emu bench --backend workers: ${config.machine.cores} cores x ${config.machine.smt} threads on real worker threads, ` +
      `${config.run.exits} exits per run (each thread's own cycles; wall time in the JSON)\n\n`,
  );
  options.say(`${formatComparison(results)}\n`);
  if (options.byReason) options.say(`\n${formatByReason(results)}\n`);
  // Every output rendered and written as one transaction: all of them, or none.
  const files: OutputFile[] = [];
  if (options.json) {
    const json = comparisonJson(
      { results, logs: [], baselines: [] },
      { backend: 'workers', machine: config.machine, run: config.run },
    );
    files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(json, null, 2)}\n` });
  }
  const outputs: RunOutputs = { results, logs, backend: 'workers' };
  if (options.trace) files.push(...traceOutputs(options.trace, outputs, config));
  if (options.report) {
    files.push(
      reportOutput(options.report, outputs, config, `${options.title} (workers backend)`, options.timelineAt),
    );
  }
  await writeOutputs(files);
  sayWritten(
    files.filter((file) => file.flag !== '--json'),
    options.say,
  );
}
