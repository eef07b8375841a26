import { type Command, Option } from 'commander';
import { parseRunConfig, type RunConfigInput } from '../../config/run-config.js';
import { builtinMixes } from '../../cpu/mixes.js';
import { UsageError } from '../../errors.js';
import { policies, policyByName } from '../../policy/index.js';
import { writeFileAtomic } from '../../report/atomic-write.js';
import {
  brokenInvariants,
  compareOnSim,
  comparisonJson,
  formatComparison,
  mixesByName,
} from '../../report/comparison.js';
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
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  asi-emu bench',
        '  asi-emu bench --backend sim --policies none,coschedule,asi --mix sysbench-cpu --exits 20000 --seed 1 --json out.json',
        '  asi-emu bench --backend sim --mix idle-tracing,light-load --config my-machine.json',
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
      const comparison = compareOnSim(config, selected, mixes);
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
      // Violations by unsafe policies are findings, not failures of the command.
      void brokenInvariants;
      process.exitCode = ExitCode.ok;
    });
}
