import { tuneEngineForSim } from '../src/engine-tuning.js';
import { writeFileAtomic } from '../src/report/atomic-write.js';
import { formatTable } from '../src/report/machine-table.js';
import { runCacheBench } from './cache.bench.js';
import { type BenchFigure, benchTimeMs, machineDescription } from './common.js';
import { runExploreBench } from './explore.bench.js';
import { runFuzzBench } from './fuzz.bench.js';
import { runKickBreakdownBench } from './kick-breakdown.bench.js';
import { runPagingBench } from './paging.bench.js';
import { appendRecord, commitOf, loadAverageNow, machineFacts } from './record.js';
import { runSharedKernelBench } from './shared-kernel.bench.js';
import { runSharedTrackingBench } from './shared-tracking.bench.js';
import { runSimBench } from './sim.bench.js';
import { runWorkersBench } from './workers.bench.js';

/**
 * `npm run bench [-- SUITE ...] [--json FILE] [--record]`: runs the tinybench suites, prints a table and
 * writes JSON (default bench-results/latest.json, ignored by git), atomically. `--record` also adds each
 * suite's figures to the tracked history, `bench/results/<date>-<suite>-<machine>.json` (record.ts).
 * Figures are throughputs measured on this machine in this run; compare ratios within one run, not
 * absolute numbers across machines (docs/performance.md).
 */
const suites: Record<string, () => Promise<BenchFigure[]>> = {
  paging: runPagingBench,
  sim: runSimBench,
  fuzz: runFuzzBench,
  explore: runExploreBench,
  workers: runWorkersBench,
  'kick-breakdown': () => runKickBreakdownBench(),
  'shared-kernel': runSharedKernelBench,
  cache: async () =>
    (await runCacheBench({ timeMs: benchTimeMs() })).map((figure) => ({
      suite: 'cache',
      name: figure.name,
      opsPerSecond: figure.opsPerSecond,
      rmePercent: 0,
      samples: 0,
    })),
  'shared-tracking': async () =>
    (await runSharedTrackingBench({ timeMs: benchTimeMs() })).map((figure) => ({
      suite: 'shared-tracking',
      name: `${figure.tracker} / ${figure.workload}`,
      opsPerSecond: figure.opsPerSecond,
      rmePercent: 0,
      samples: 0,
      extra: { memoryBytes: figure.memoryBytes, overflowed: String(figure.overflowed) },
    })),
};

/** The tracked history (record.ts), relative to the project root `npm run bench` runs in. */
const resultsDirectory = 'bench/results';

async function main(argv: string[]): Promise<number> {
  let jsonPath = 'bench-results/latest.json';
  let record = false;
  const selected: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--record') record = true;
    else if (argv[i] === '--json') {
      jsonPath = argv[++i] ?? '';
      if (!jsonPath) {
        process.stderr.write('bench: --json needs a file path\n');
        return 2;
      }
    } else if (argv[i] in suites) {
      selected.push(argv[i]);
    } else {
      process.stderr.write(
        `bench: unknown suite ${JSON.stringify(argv[i])}; accepted: ${Object.keys(suites).join(', ')}, --json FILE, --record\n`,
      );
      return 2;
    }
  }
  const names = selected.length > 0 ? selected : Object.keys(suites);
  // As the CLI does (src/engine-tuning.ts); ASI_EMU_V8_DEFAULTS=1 measures without it.
  const v8Inlining = tuneEngineForSim() ? 'raised' : 'default';
  const machine = machineDescription();
  process.stdout.write(
    `asi-emu benchmarks on ${machine.cpuModel} (${machine.cpus} CPUs), Node ${machine.node}, V8 inlining budget ${v8Inlining}\n`,
  );
  const figures: BenchFigure[] = [];
  const recorded: string[] = [];
  for (const name of names) {
    process.stdout.write(`running ${name}...\n`);
    const before = loadAverageNow();
    const suiteFigures = await suites[name]();
    figures.push(...suiteFigures);
    if (record) {
      const { commit, dirty } = commitOf(process.cwd());
      recorded.push(
        appendRecord(resultsDirectory, name, machineFacts(), {
          time: new Date().toISOString(),
          commit,
          dirty,
          loadAverage: { before, after: loadAverageNow() },
          v8Inlining,
          figures: suiteFigures,
        }),
      );
    }
  }
  const rows = figures.map((figure) => [
    `${figure.suite}: ${figure.name}`,
    formatRate(figure.opsPerSecond),
    figure.samples > 0 ? `±${figure.rmePercent.toFixed(1)}%` : '',
    figure.extra
      ? Object.entries(figure.extra)
          .map(([key, value]) => `${key}=${value}`)
          .join(' ')
      : '',
  ]);
  process.stdout.write(`${formatTable(['benchmark', 'ops/s', 'rme', 'notes'], rows)}\n`);
  writeFileAtomic(
    jsonPath,
    `${JSON.stringify({ machine, v8Inlining, date: new Date().toISOString(), figures }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${jsonPath}\n`);
  for (const path of recorded) process.stdout.write(`recorded ${path}\n`);
  return 0;
}

function formatRate(opsPerSecond: number): string {
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)} M`;
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(1)} k`;
  return opsPerSecond.toFixed(1);
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
