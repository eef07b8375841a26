import { type Command, Option } from 'commander';
import { type ProbedPolicy, probePolicyModule } from '../../backend/workers/policy-probe.js';
import { parseRunConfig, type RunConfig } from '../../config/run-config.js';
import { type Workload, workloadWithMix } from '../../config/workload.js';
import { defaultExitsPerSecond, exitsPerSecondMax, exitsPerSecondMin } from '../../cpu/mixes.js';
import { PolicyFailedError, UsageError } from '../../errors.js';
import { type FuzzExecutor, poolExecutor } from '../../fuzz/executor.js';
import { meantToBeSafe, policies } from '../../policy/index.js';
import type { Policy } from '../../policy/policy.js';
import { checkPolicyRunsMix } from '../../policy/user-class.js';
import { formatByReason } from '../../report/by-reason.js';
import {
  brokenInvariants,
  type ComparedPolicy,
  compareRepeated,
  comparisonJson,
  formatComparison,
  type RunDone,
  type RunRequest,
  repeatedRunCount,
  safetyFailures,
  simRunner,
} from '../../report/comparison.js';
import { type OutputFile, writeOutputs } from '../../report/output-files.js';
import { ExitCode } from '../errors.js';
import { integerFlag, numberFlag } from '../flags.js';
import { checkOutputs } from '../outputs.js';
import { progressHooks, runProgress } from '../progress.js';
import {
  comparedRuns,
  configInputOf,
  configOptionDescription,
  exitsOption,
  mixOption,
  policiesOption,
  type RunFlags,
  repeatsOption,
  seedOption,
  setOption,
  withRunFlags,
} from '../run-flags.js';
import { type RunOutputs, reportOutput, sayWritten, traceOutputs, tracePaths } from '../run-outputs.js';

interface BenchOptions extends RunFlags {
  backend: 'sim' | 'workers';
  exitRate?: number;
  json?: string;
  kick?: boolean;
  trace?: string;
  report?: string;
  byReason?: boolean;
  timelineAt?: number;
  policyModule?: string[];
  failOnViolation?: boolean;
}

/** `--policy-module FILE` (repeatable): each a user's module, compared beside the built-ins. */
function collectModules(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Each `--policy-module`, loaded in a probe worker under its time limit (never on this thread), with
 * a name no built-in policy and no other module has: the table and file names tell them apart.
 */
async function probeModules(paths: readonly string[]): Promise<ProbedPolicy[]> {
  const probed: ProbedPolicy[] = [];
  for (const path of paths) {
    const module = await probePolicyModule(path, { field: '--policy-module' });
    const clash = Object.hasOwn(policies, module.name)
      ? 'a built-in policy'
      : probed.some((other) => other.name === module.name)
        ? 'another --policy-module'
        : null;
    if (clash !== null) {
      throw new UsageError(
        '--policy-module',
        `a module whose policy has a name of its own (not one of ${Object.keys(policies).join(', ')}, nor another module's)`,
        `${path} (its policy is named ${module.name}, as ${clash})`,
      );
    }
    probed.push(module);
  }
  return probed;
}

/**
 * A `run` for `compareRepeated` on the sim: built-in policies in this thread, a user's module in a
 * pool worker under the hang watchdog (its code never runs here). A hook that throws or hangs is that
 * policy's failure (`PolicyFailedError`, exit 1).
 */
export function simBenchRunner(
  config: RunConfig,
  builtins: ReadonlyMap<string, Policy>,
  modules: ReadonlyMap<string, ProbedPolicy>,
): { run: (request: RunRequest) => Promise<RunDone>; close: () => Promise<void> } {
  const inProcess = simRunner(config, builtins);
  let executor: FuzzExecutor | null = null;
  return {
    run: async (request) => {
      const module = modules.get(request.policy);
      if (module === undefined) return inProcess.run(request);
      executor ??= poolExecutor({ jobs: 1 });
      const outcome = await executor.simRun({
        kind: 'sim-run',
        policy: { name: module.name, module: module.path, moduleSha256: module.sha256 },
        config: {
          ...config,
          workload: workloadWithMix(config.workload, request.mix),
          run: { ...config.run, seed: request.seed },
        },
        keepEvents: request.keepEvents,
      });
      if ('error' in outcome) {
        throw new PolicyFailedError(module.name, module.path, outcome.error, outcome.errorStack);
      }
      const { events } = outcome;
      return { result: outcome.result, events: request.keepEvents ? { events: () => events } : null };
    },
    close: async () => {
      inProcess.dispose();
      await executor?.close();
    },
  };
}

/** How often vCPUs exit, as the header says it. */
export function exitRateText(workload: Workload): string {
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
    .addOption(policiesOption())
    .option(
      '--policy-module <file>',
      'your policy (an ES module, as for fuzz), compared beside --policies in the same table; repeatable',
      collectModules,
    )
    .addOption(mixOption())
    .addOption(exitsOption())
    .addOption(
      new Option(
        '--exit-rate <n>',
        "exits per second per vCPU in modelled time, for every mix (default: each mix's published rate)",
      ).argParser(numberFlag('--exit-rate', exitsPerSecondMin, exitsPerSecondMax)),
    )
    .addOption(seedOption())
    .addOption(
      repeatsOption(
        'runs of each policy, each repeat with its own seed shared by every policy; figures are means with 95% CIs (default 5 on sim, 1 on workers; run.repeats in a config)',
      ),
    )
    .option('--config <file>', configOptionDescription)
    .addOption(setOption())
    .option(
      '--json <file>',
      'write the results as JSON (atomically; schema/bench.schema.json in the package)',
    )
    .option(
      '--fail-on-violation',
      'exit 1 when a policy meant to be safe broke an invariant (a CI gate); unsafe baselines and modules with safe: false are not held to them',
    )
    .option('--kick', 'workers backend: run the sibling-kick and exit-throughput benchmarks')
    .option(
      '--trace <file>',
      "Chrome/Perfetto trace of each run's first repeat (several runs: FILE.<policy>.<mix>.json)",
    )
    .option(
      '--report <file>',
      'self-contained HTML report with charts and a mode timeline (with --kick: the latency histograms)',
    )
    .addOption(
      new Option(
        '--timeline-at <microseconds>',
        "where the report's mode timeline starts, in µs since the run's start (default: halfway through the run)",
      ).argParser(integerFlag('--timeline-at', 0, Number.MAX_SAFE_INTEGER)),
    )
    .option(
      '--by-reason',
      "print each run's exits per reason and handler variant, as perf kvm stat report (always in --json and --report)",
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  asi-emu bench',
        '  asi-emu bench --backend sim --policies none,coschedule,asi --mix sysbench-cpu --exits 20000 --seed 1 --json out.json',
        '  asi-emu bench --policies none,asi,asi-stun --repeats 20',
        '  asi-emu bench --policy-module ./my-policy.js --fail-on-violation',
        '  asi-emu bench --backend sim --mix idle-tracing,light-load --config my-machine.json',
        '  asi-emu bench --exit-rate 1000 --policies none,asi --json out.json',
        '  asi-emu bench --set machine.cores=4 --set machine.smt=2 --set costs.ipiDelivery=2000 --policies asi,coschedule',
        '  asi-emu bench --policies asi,coschedule --exits 2000 --trace trace.json --report report.html',
        '  asi-emu bench --backend workers --kick --json kick.json',
        '',
        'Exit code: 0 when every run completed, whatever invariants they broke (unsafe policies are meant',
        'to break them; the table and verdicts say which did). With --fail-on-violation, 1 when a policy',
        'meant to be safe broke one, naming it. 1 when a --policy-module hook threw or hung. 2 for bad input.',
      ].join('\n'),
    )
    .action(async (options: BenchOptions, command: Command) => {
      // A workers run takes seconds: one repeat unless asked for more (run-config.ts `repeats`).
      const input = withRunFlags(
        configInputOf(options),
        options,
        options.backend === 'workers' ? 1 : undefined,
      );
      // --exit-rate is workload.exitsPerSecond, over the config file's (as --set is).
      const workload = { ...((input.workload as object) ?? {}) } as Record<string, unknown>;
      if (options.exitRate !== undefined) {
        // The flag's rate replaces however the file said how often vCPUs exit.
        workload.exitsPerSecond = options.exitRate;
        delete workload.exitIntervalCycles;
      }
      const config = parseRunConfig({ ...input, workload });
      // Flags win; without them the config file's mix (built-in or user-defined) and policies apply.
      const { mixes, policies: selected } = comparedRuns(options, command, input, config.workload.mix);
      if (options.timelineAt !== undefined && (!options.report || options.kick)) {
        throw new UsageError('--timeline-at', 'with --report of a policy run (it places the mode timeline)');
      }
      if (options.backend === 'workers' && options.kick) {
        for (const [flag, given] of [
          ['--trace', options.trace],
          ['--by-reason', options.byReason],
          ['--policy-module', options.policyModule],
          ['--fail-on-violation', options.failOnViolation],
        ] as const) {
          if (given !== undefined) {
            throw new UsageError(flag, 'a policy run, not with --kick (the kick benchmark runs no policies)');
          }
        }
        const { say } = checkOutputs([
          ...(options.json ? [{ flag: '--json', path: options.json }] : []),
          ...(options.report ? [{ flag: '--report', path: options.report }] : []),
        ]);
        const { runKickBenchCommand } = await import('./bench-workers.js');
        await runKickBenchCommand({ json: options.json, report: options.report, say });
        return;
      }
      if (options.kick) throw new UsageError('--kick', 'only with --backend workers');
      const modules = await probeModules(options.policyModule ?? []);
      // A module runs a user mix's userspace class when it carries today's-ASI settings (the probe says).
      for (const mix of mixes) for (const module of modules) checkPolicyRunsMix(module, mix);
      const compared: ComparedPolicy[] = [
        ...selected.map((policy) => ({ name: policy.name, meantToBeSafe: meantToBeSafe(policy) })),
        ...modules.map((module) => ({ name: module.name, meantToBeSafe: module.safe })),
      ];
      // Every output path is checked before anything runs, and against the others (per-run trace
      // names included): a mistake costs nothing and writes nothing.
      const runs = mixes.flatMap((mix) => compared.map((policy) => ({ policy: policy.name, mix: mix.name })));
      const { say } = checkOutputs([
        ...(options.json ? [{ flag: '--json', path: options.json }] : []),
        ...(options.trace ? tracePaths(options.trace, runs).map((path) => ({ flag: '--trace', path })) : []),
        ...(options.report ? [{ flag: '--report', path: options.report }] : []),
      ]);
      const names = compared.map((policy) => policy.name).join(', ');
      const title = `asi-emu: ${names} on ${mixes.map((mix) => mix.name).join(', ')}`;
      const builtins = new Map(selected.map((policy) => [policy.name, policy]));
      const probedByName = new Map(modules.map((module) => [module.name, module]));
      const backend = options.backend;
      const repeats = config.run.repeats;
      const plan = {
        policies: compared,
        mixes,
        seed: config.run.seed,
        repeats,
        // The sim runs `none` and `kvm-default` as every repeat's baselines (a run costs a fraction of a
        // second, and the overheads are paired per repeat); a workers run costs seconds (only if compared).
        baseline: backend === 'sim' ? ('always' as const) : ('if-compared' as const),
        keepEvents: options.trace !== undefined || options.report !== undefined,
      };
      let runOne: (request: RunRequest) => Promise<RunDone>;
      let close = async () => {};
      if (backend === 'sim') {
        const runner = simBenchRunner(config, builtins, probedByName);
        runOne = runner.run;
        close = runner.close;
      } else {
        const { workersRunner } = await import('./bench-workers.js');
        runOne = workersRunner(config, builtins, probedByName);
      }
      const progress = runProgress(backend === 'sim' ? 'bench' : 'bench (workers)', repeatedRunCount(plan));
      const comparison = await compareRepeated({
        ...plan,
        run: runOne,
        ...progressHooks(progress, config.run.exits),
      }).finally(async () => {
        progress.stop();
        await close();
      });
      const repeatsText =
        repeats > 1
          ? `${repeats} repeats from seed ${config.run.seed} (each figure a mean ± the half-width of its 95% CI; no ± where every repeat gave the same)`
          : `seed ${config.run.seed}, 1 repeat (no intervals: --repeats N for them)`;
      say(
        backend === 'sim'
          ? `asi-emu bench --backend sim: ${config.machine.cores} cores x ${config.machine.smt} threads, ` +
              `${config.run.exits} exits per run, ${repeatsText}, ${exitRateText(config.workload)} (modelled time at ${config.machine.ghz} GHz)\n\n`
          : `asi-emu bench --backend workers: ${config.machine.cores} cores x ${config.machine.smt} threads on real worker threads, ` +
              `${config.run.exits} exits per run, ${repeatsText}, ${exitRateText(config.workload)} (each thread's own cycles; wall time in the JSON)\n\n`,
      );
      say(`${formatComparison(comparison.results)}\n`);
      if (options.byReason) say(`\n${formatByReason(comparison.results)}\n`);
      // Every output rendered and written as one transaction: all of them, or none.
      const files: OutputFile[] = [];
      if (options.json) {
        const json = comparisonJson(comparison, {
          backend,
          machine: config.machine,
          workload: { ...config.workload, mix: undefined, catalogue: undefined },
          costs: config.costs,
          run: config.run,
          mixes,
          policyModules: modules.map((module) => ({
            name: module.name,
            path: module.path,
            sha256: module.sha256,
            safe: module.safe,
          })),
        });
        files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(json, null, 2)}\n` });
      }
      const outputs: RunOutputs = { results: comparison.results, logs: comparison.logs, backend };
      if (options.trace) files.push(...traceOutputs(options.trace, outputs, config));
      if (options.report) {
        const reportTitle = backend === 'workers' ? `${title} (workers backend)` : title;
        files.push(reportOutput(options.report, outputs, config, reportTitle, options.timelineAt));
      }
      await writeOutputs(files);
      sayWritten(
        files.filter((file) => file.flag !== '--json'),
        say,
      );
      // Violations by unsafe policies are findings, not failures of the command; with
      // --fail-on-violation a policy meant to be safe that broke one fails it (a CI gate).
      const failures = options.failOnViolation ? safetyFailures(comparison.results) : [];
      for (const failure of failures) {
        const broken = brokenInvariants(failure)
          .map((id) => `${id} x${failure.violations[id]}`)
          .join(', ');
        process.stderr.write(
          `asi-emu bench: --fail-on-violation: ${failure.policy} on ${failure.mix} is meant to be safe and broke ${broken}\n`,
        );
      }
      process.exitCode = failures.length > 0 ? ExitCode.violation : ExitCode.ok;
    });
}
