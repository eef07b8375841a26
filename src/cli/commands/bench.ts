import { type Command, Option } from 'commander';
import { parseRunConfig, type RunConfig, type RunConfigInput } from '../../config/run-config.js';
import { builtinMixes } from '../../cpu/mixes.js';
import { UsageError } from '../../errors.js';
import { policies, policyByName } from '../../policy/index.js';
import { writeFileAtomic } from '../../report/atomic-write.js';
import {
  brokenInvariants,
  type Comparison,
  compareOnSim,
  comparisonJson,
  formatComparison,
  mixesByName,
} from '../../report/comparison.js';
import { writeHtmlReport } from '../../report/html.js';
import { buildTrace, writeTrace } from '../../report/perfetto.js';
import { readJsonFile } from '../config-file.js';
import { ExitCode } from '../errors.js';
import { integerFlag, listFlag } from '../flags.js';

/** Policies compared by default (`npm start`): every built-in one. */
export const defaultPolicies = [
  'none',
  'nosmt',
  'l1d-flush',
  'coschedule',
  'coschedule-nohlt',
  'asi',
  'asi-ipi-only',
  'asi-stun',
];

interface BenchOptions {
  backend: 'sim' | 'workers';
  policies: string[];
  mix: string[];
  exits?: number;
  seed?: number;
  config?: string;
  json?: string;
  kick?: boolean;
  trace?: string;
  report?: string;
}

/** The mode timeline of the HTML report shows this much virtual time (~100 µs at 3 GHz). */
const timelineWindowCycles = 300_000;

/** One trace file per run: the path itself for one run, else FILE.<policy>.<mix>.json. */
function writeTraces(path: string, comparison: Comparison, config: RunConfig): void {
  const several = comparison.results.length > 1;
  comparison.results.forEach((result, index) => {
    const target = several ? path.replace(/(\.json)?$/, `.${result.policy}.${result.mix}.json`) : path;
    writeTrace(
      target,
      buildTrace(comparison.logs[index]?.events() ?? [], {
        backend: 'sim',
        threads: config.machine.cores * config.machine.smt,
        smt: config.machine.smt,
        policy: result.policy,
        mix: result.mix,
        timeUnit: 'cycles',
        violationRecords: result.violationRecords,
      }),
    );
    process.stdout.write(`wrote ${target}\n`);
  });
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('compare mitigation policies on exit mixes (sim: modelled cycles; workers: real threads)')
    .addOption(new Option('--backend <backend>', 'sim or workers').choices(['sim', 'workers']).default('sim'))
    .addOption(
      new Option('--policies <list>', 'comma-separated policies')
        .argParser(listFlag('--policies', Object.keys(policies)))
        .default(defaultPolicies),
    )
    .addOption(
      new Option('--mix <list>', 'comma-separated exit mixes')
        .argParser(
          listFlag(
            '--mix',
            builtinMixes.map((mix) => mix.name),
          ),
        )
        .default(['sysbench-cpu']),
    )
    .addOption(
      new Option('--exits <n>', 'workload exits per run').argParser(integerFlag('--exits', 1, 100_000_000)),
    )
    .addOption(
      new Option('--seed <n>', 'seed of every random choice').argParser(
        integerFlag('--seed', 0, Number.MAX_SAFE_INTEGER),
      ),
    )
    .option('--config <file>', 'JSON config (machine, workload, costs, run)')
    .option('--json <file>', 'write the results as JSON (atomically)')
    .option('--kick', 'workers backend: run the sibling-kick and exit-throughput benchmarks')
    .option('--trace <file>', 'Chrome/Perfetto trace of each run (several runs: FILE.<policy>.<mix>.json)')
    .option('--report <file>', 'self-contained HTML report with charts and a mode timeline')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  asi-emu bench',
        '  asi-emu bench --backend sim --policies none,coschedule,asi --mix sysbench-cpu --exits 20000 --seed 1 --json out.json',
        '  asi-emu bench --backend sim --mix idle-tracing,light-load --config my-machine.json',
        '  asi-emu bench --policies asi,coschedule --exits 2000 --trace trace.json --report report.html',
        '  asi-emu bench --backend workers --kick --json kick.json',
        '',
        'Exit code 1 when a policy expected to be safe broke an invariant is NOT used: unsafe policies are',
        'expected to break them; the table and verdicts say which did. Exit code 2 for bad input.',
      ].join('\n'),
    )
    .action(async (options: BenchOptions) => {
      const input = (options.config ? readJsonFile(options.config, '--config') : {}) as RunConfigInput;
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw new UsageError('--config', 'a JSON object with machine, workload, costs and run fields');
      }
      const run = { ...((input.run as object) ?? {}) } as Record<string, unknown>;
      if (options.exits !== undefined) run.exits = options.exits;
      if (options.seed !== undefined) run.seed = options.seed;
      const config = parseRunConfig({ ...input, run });
      const selected = options.policies.map((name) => policyByName(name));
      const mixes = mixesByName(options.mix);
      if (options.backend === 'workers') {
        const { runWorkersBenchCommand } = await import('./bench-workers.js');
        await runWorkersBenchCommand(config, selected, mixes, options);
        return;
      }
      if (options.kick) throw new UsageError('--kick', 'only with --backend workers');
      const keepEvents = options.trace !== undefined || options.report !== undefined;
      const comparison = compareOnSim(config, selected, mixes, undefined, keepEvents);
      process.stdout.write(
        `asi-emu bench --backend sim: ${config.machine.cores} cores x ${config.machine.smt} threads, ` +
          `${config.run.exits} exits per run, seed ${config.run.seed}, exit interval ${config.workload.exitIntervalCycles} cycles (modelled cycles)\n\n`,
      );
      process.stdout.write(`${formatComparison(comparison.results)}\n`);
      if (options.json) {
        const json = comparisonJson(comparison, {
          backend: 'sim',
          machine: config.machine,
          workload: { ...config.workload, mix: undefined },
          costs: config.costs,
          run: config.run,
        });
        writeFileAtomic(options.json, `${JSON.stringify(json, null, 2)}\n`);
      }
      if (options.trace) writeTraces(options.trace, comparison, config);
      if (options.report) {
        const index = Math.max(
          0,
          comparison.results.findIndex((result) => result.policy === 'asi'),
        );
        const events = comparison.logs[index]?.events() ?? [];
        const fromCycles = events.length > 0 ? events[0].timeCycles : 0;
        writeHtmlReport(options.report, {
          results: comparison.results,
          title: `asi-emu: ${options.policies.join(', ')} on ${options.mix.join(', ')}`,
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
            toCycles: fromCycles + timelineWindowCycles,
            label: `${comparison.results[index]?.policy} on ${comparison.results[index]?.mix}, seed ${config.run.seed}`,
          },
        });
        process.stdout.write(`wrote ${options.report}\n`);
      }
      // Violations by unsafe policies are findings, not failures of the command.
      void brokenInvariants;
      process.exitCode = ExitCode.ok;
    });
}
