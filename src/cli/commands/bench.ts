import { type Command, Option } from 'commander';
import { configFileFields, parseRunConfig, type RunConfigInput } from '../../config/run-config.js';
import type { Workload } from '../../config/workload.js';
import {
  builtinMixes,
  defaultExitsPerSecond,
  type ExitMix,
  exitsPerSecondMax,
  exitsPerSecondMin,
} from '../../cpu/mixes.js';
import { ConfigError, UsageError } from '../../errors.js';
import { policies, policyByName } from '../../policy/index.js';
import type { Policy } from '../../policy/policy.js';
import {
  brokenInvariants,
  compareOnSimAsync,
  comparisonJson,
  formatComparison,
  mixesByName,
} from '../../report/comparison.js';
import { type OutputFile, writeOutputs } from '../../report/output-files.js';
import { configObject, readJsonFile } from '../config-file.js';
import { ExitCode } from '../errors.js';
import { applySettings, type ConfigSetting, integerFlag, listFlag, numberFlag, setFlag } from '../flags.js';
import { checkOutputs } from '../outputs.js';
import { runProgress } from '../progress.js';
import { type RunOutputs, reportOutput, sayWritten, traceOutputs, tracePaths } from '../run-outputs.js';

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
  exitRate?: number;
  seed?: number;
  config?: string;
  json?: string;
  kick?: boolean;
  trace?: string;
  report?: string;
  set?: ConfigSetting[];
}

/** The config file's `policies`: a list of policy names. */
function configPolicies(value: unknown): Policy[] {
  const accepted = `a list of policy names (${Object.keys(policies).join(', ')})`;
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('policies', accepted, value);
  return value.map((name, index) => {
    if (typeof name !== 'string' || !Object.hasOwn(policies, name))
      throw new ConfigError(`policies[${index}]`, accepted, name);
    if (value.indexOf(name) !== index)
      throw new ConfigError(`policies[${index}]`, 'a list without repeats (each policy runs once)', name);
    return policyByName(name);
  });
}

/** How often vCPUs exit, as the header says it. */
function exitRateText(workload: Workload): string {
  if (workload.exitIntervalCycles !== undefined)
    return `${workload.exitIntervalCycles} guest cycles between exits`;
  if (workload.exitsPerSecond !== undefined) return `${workload.exitsPerSecond} exits/s per vCPU`;
  return `each mix's published exits/s per vCPU (default ${defaultExitsPerSecond})`;
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
      new Option(
        '--exit-rate <n>',
        "exits per second per vCPU in modelled time, for every mix (default: each mix's published rate)",
      ).argParser(numberFlag('--exit-rate', exitsPerSecondMin, exitsPerSecondMax)),
    )
    .addOption(
      new Option('--seed <n>', 'seed of every random choice').argParser(
        integerFlag('--seed', 0, Number.MAX_SAFE_INTEGER),
      ),
    )
    .option(
      '--config <file>',
      'JSON config (machine, workload, costs, run, policies); its workload.mix and policies apply unless --mix or --policies is given',
    )
    .addOption(
      new Option(
        '--set <path=value>',
        'any config field, as in a config file (repeatable): machine.cores=4, costs.ipiDelivery=2000',
      ).argParser(setFlag(configFileFields.filter((field) => field !== '$comment'))),
    )
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
        '  asi-emu bench --exit-rate 1000 --policies none,asi --json out.json',
        '  asi-emu bench --set machine.cores=4 --set machine.smt=2 --set costs.ipiDelivery=2000 --policies asi,coschedule',
        '  asi-emu bench --policies asi,coschedule --exits 2000 --trace trace.json --report report.html',
        '  asi-emu bench --backend workers --kick --json kick.json',
        '',
        'Exit code 1 when a policy expected to be safe broke an invariant is NOT used: unsafe policies are',
        'expected to break them; the table and verdicts say which did. Exit code 2 for bad input.',
      ].join('\n'),
    )
    .action(async (options: BenchOptions, command: Command) => {
      const fromFile = options.config ? configObject(readJsonFile(options.config, '--config')) : {};
      const input = applySettings(fromFile, options.set ?? []) as RunConfigInput;
      const run = { ...((input.run as object) ?? {}) } as Record<string, unknown>;
      if (options.exits !== undefined) run.exits = options.exits;
      if (options.seed !== undefined) run.seed = options.seed;
      // --exit-rate is workload.exitsPerSecond, over the config file's (as --set is).
      const workload = { ...((input.workload as object) ?? {}) } as Record<string, unknown>;
      if (options.exitRate !== undefined) {
        // The flag's rate replaces however the file said how often vCPUs exit.
        workload.exitsPerSecond = options.exitRate;
        delete workload.exitIntervalCycles;
      }
      const config = parseRunConfig({ ...input, workload, run });
      // Flags win; without them the config file's mix (built-in or user-defined) and policies apply.
      const fromFlags = (flag: string) => command.getOptionValueSource(flag) === 'cli';
      const useConfigMix =
        !fromFlags('mix') && (input.workload as { mix?: unknown } | undefined)?.mix !== undefined;
      const mixes: ExitMix[] = useConfigMix ? [config.workload.mix] : mixesByName(options.mix);
      const selected =
        !fromFlags('policies') && input.policies !== undefined
          ? configPolicies(input.policies)
          : options.policies.map((name) => policyByName(name));
      // Every output path is checked before anything runs, and against the others (per-run trace
      // names included): a mistake costs nothing and writes nothing.
      const runs = mixes.flatMap((mix) => selected.map((policy) => ({ policy: policy.name, mix: mix.name })));
      const { say } = checkOutputs([
        ...(options.json ? [{ flag: '--json', path: options.json }] : []),
        ...(options.trace ? tracePaths(options.trace, runs).map((path) => ({ flag: '--trace', path })) : []),
        ...(options.report ? [{ flag: '--report', path: options.report }] : []),
      ]);
      const title = `asi-emu: ${selected.map((policy) => policy.name).join(', ')} on ${mixes.map((mix) => mix.name).join(', ')}`;
      if (options.backend === 'workers') {
        if (options.kick && (options.trace || options.report)) {
          throw new UsageError(
            options.trace ? '--trace' : '--report',
            'a policy run, not with --kick (the kick benchmark runs no policies)',
          );
        }
        const { runWorkersBenchCommand } = await import('./bench-workers.js');
        await runWorkersBenchCommand(config, selected, mixes, { ...options, title, say });
        return;
      }
      if (options.kick) throw new UsageError('--kick', 'only with --backend workers');
      const keepEvents = options.trace !== undefined || options.report !== undefined;
      const progress = runProgress('bench', selected.length * mixes.length);
      const comparison = await compareOnSimAsync(
        config,
        selected,
        mixes,
        (result) => progress.tick(`${result.policy} on ${result.mix}`),
        keepEvents,
      ).finally(() => progress.stop());
      say(
        `asi-emu bench --backend sim: ${config.machine.cores} cores x ${config.machine.smt} threads, ` +
          `${config.run.exits} exits per run, seed ${config.run.seed}, ${exitRateText(config.workload)} (modelled time at ${config.machine.ghz} GHz)\n\n`,
      );
      say(`${formatComparison(comparison.results)}\n`);
      // Every output rendered and written as one transaction: all of them, or none.
      const files: OutputFile[] = [];
      if (options.json) {
        const json = comparisonJson(comparison, {
          backend: 'sim',
          machine: config.machine,
          workload: { ...config.workload, mix: undefined, catalogue: undefined },
          costs: config.costs,
          run: config.run,
        });
        files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(json, null, 2)}\n` });
      }
      const outputs: RunOutputs = { results: comparison.results, logs: comparison.logs, backend: 'sim' };
      if (options.trace) files.push(...traceOutputs(options.trace, outputs, config));
      if (options.report) files.push(reportOutput(options.report, outputs, config, title));
      await writeOutputs(files);
      sayWritten(
        files.filter((file) => file.flag !== '--json'),
        say,
      );
      // Violations by unsafe policies are findings, not failures of the command.
      void brokenInvariants;
      process.exitCode = ExitCode.ok;
    });
}
