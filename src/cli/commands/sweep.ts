import { type Command, Option } from 'commander';
import { parseRunConfig, type RunConfig, type RunConfigInput } from '../../config/run-config.js';
import { exitsPerSecondMax, exitsPerSecondMin } from '../../cpu/mixes.js';
import { ConfigError, UsageError } from '../../errors.js';
import { meantToBeSafe } from '../../policy/index.js';
import { type OutputFile, writeOutputs } from '../../report/output-files.js';
import {
  defaultScale,
  formatSweep,
  runSweep,
  type SweepPlan,
  sweepJson,
  sweepRunCount,
  sweepSeries,
} from '../../report/sweep.js';
import { publishedBands, renderSweepReport, renderSweepSvg } from '../../report/sweep-chart.js';
import { ExitCode } from '../errors.js';
import { applySettings, numberFlag } from '../flags.js';
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
import { sayWritten } from '../run-outputs.js';
import { simBenchRunner } from './bench.js';

/** The exit rates swept when neither --exit-rates nor --vary is given: a 1-3 series over two decades. */
export const defaultExitRates = [1000, 3000, 10000, 30000, 100000];
/**
 * Most values in one sweep: a chart of more points is not read point by point, and 50 points of the
 * default comparison (8 policies, 5 repeats, ~4 s a point on the 2-CPU development machine) already
 * take several minutes.
 */
export const sweepValuesMax = 50;
/** The exit rate's config field: `--exit-rates` is `--vary` of it. */
const exitRatePath = 'workload.exitsPerSecond';
/** Sections a varied field may lie in (a config file's, less `policies` and `$comment`). */
const varySections = ['machine', 'workload', 'costs', 'run'];
/** Fields that are the sweep's own: every point shares its seeds and repeats (--seed, --repeats). */
const fieldsNotVaried = ['run.seed', 'run.repeats'];

/** A varied field and its values, as --vary or --exit-rates gave them. */
interface Vary {
  flag: '--vary' | '--exit-rates';
  path: string;
  values: number[];
}

interface SweepOptions extends RunFlags {
  exitRates?: Vary;
  vary?: Vary;
  xScale?: 'log' | 'linear';
  json?: string;
  report?: string;
  svg?: string;
}

/** Values must be distinct, at least two (one is a bench) and at most `sweepValuesMax`. */
function checkValues(flag: string, values: number[], text: string): number[] {
  if (values.length < 2 || values.length > sweepValuesMax) {
    throw new UsageError(flag, `2..${sweepValuesMax} values (a sweep of one value is a bench)`, text);
  }
  const repeated = values.find((value, index) => values.indexOf(value) !== index);
  if (repeated !== undefined) throw new UsageError(flag, 'distinct values (each point runs once)', repeated);
  return values;
}

/**
 * The exit rates of a 1-3 series (1, 3, 10, 30, ... times a power of ten) from `low` to `high`, both
 * ends included: `1000..100000` is 1000, 3000, 10000, 30000, 100000.
 */
export function exitRateRange(low: number, high: number): number[] {
  const values = new Set<number>([low, high]);
  for (let power = 10 ** Math.floor(Math.log10(low)); power <= high; power *= 10) {
    for (const step of [1, 3]) {
      const value = step * power;
      if (value > low && value < high) values.add(value);
    }
  }
  return [...values].sort((a, b) => a - b);
}

/** `--exit-rates 1000,3000,10000` or `--exit-rates 1000..100000` (a 1-3 series, `exitRateRange`). */
function exitRatesFlag(text: string): Vary {
  const flag = '--exit-rates';
  const rate = numberFlag(flag, exitsPerSecondMin, exitsPerSecondMax);
  const ends = text.split('..');
  let values: number[];
  if (ends.length > 2) throw new UsageError(flag, 'a list of rates, or one range LOW..HIGH', text);
  if (ends.length === 2) {
    const [low, high] = [rate(ends[0].trim()), rate(ends[1].trim())];
    if (!(high > low)) throw new UsageError(flag, 'a range LOW..HIGH with LOW below HIGH', text);
    values = exitRateRange(low, high);
  } else {
    values = text.split(',').map((item) => rate(item.trim()));
  }
  return { flag, path: exitRatePath, values: checkValues(flag, values, text) };
}

/** `--vary PATH=V1,V2,...`: a numeric config field by its dotted path, and its values. */
function varyFlag(text: string): Vary {
  const flag = '--vary';
  const equals = text.indexOf('=');
  const parts = equals > 0 ? text.slice(0, equals).split('.') : [];
  const path = parts.join('.');
  const unsafe = parts.some((part) => part === '__proto__' || part === 'constructor' || part === 'prototype');
  if (
    parts.length < 2 ||
    unsafe ||
    parts.some((part) => part.length === 0) ||
    !varySections.includes(parts[0]) ||
    fieldsNotVaried.includes(path)
  ) {
    throw new UsageError(
      flag,
      `PATH=V1,V2,... with PATH a numeric config field under ${varySections.join(', ')} (e.g. costs.ipiDelivery=1000,2000,4000), not ${fieldsNotVaried.join(' or ')} (--seed, --repeats)`,
      text,
    );
  }
  const values = text
    .slice(equals + 1)
    .split(',')
    .map((item) => {
      const value = Number(item.trim());
      if (item.trim() === '' || !Number.isFinite(value)) {
        throw new UsageError(flag, `numbers after ${path}= (the chart plots them on an axis)`, item);
      }
      return value;
    });
  return { flag, path, values: checkValues(flag, values, text) };
}

/**
 * A point's config: `input` with the varied field set, checked by the config schema. A value the
 * schema refuses is a UsageError naming the flag and the field. A rate replaces however the input
 * said how often vCPUs exit (as `bench --exit-rate` does), and an interval replaces a rate.
 */
function pointConfig(input: RunConfigInput, vary: Vary, value: number): RunConfig {
  const set = applySettings(input as Record<string, unknown>, [{ path: vary.path.split('.'), value }]);
  const workload = set.workload as Record<string, unknown> | undefined;
  if (vary.path === exitRatePath) delete workload?.exitIntervalCycles;
  if (vary.path === 'workload.exitIntervalCycles') delete workload?.exitsPerSecond;
  try {
    return parseRunConfig(set as RunConfigInput);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new UsageError(
      vary.flag,
      `values the config accepts for ${vary.path} (${error.field}: ${error.accepted})`,
      `${vary.path}=${value}`,
    );
  }
}

export function registerSweepCommand(program: Command): void {
  program
    .command('sweep')
    .description(
      'overhead vs none of each policy across exit rates (or any config field), with repeats and 95% CIs; JSON and an HTML chart',
    )
    .addOption(policiesOption())
    .addOption(mixOption())
    .addOption(
      new Option(
        '--exit-rates <list>',
        `exits per second per vCPU to sweep: a list, or LOW..HIGH for the 1-3 series between them (default ${defaultExitRates.join(',')}; --vary ${exitRatePath}=...)`,
      ).argParser(exitRatesFlag),
    )
    .addOption(
      new Option(
        '--vary <path=v1,v2,...>',
        'sweep any numeric config field instead of the exit rate: costs.ipiDelivery=1000,2000,4000, workload.smtSpeedup=1.2,1.5,1.8',
      ).argParser(varyFlag),
    )
    .addOption(exitsOption())
    .addOption(seedOption())
    .addOption(
      repeatsOption(
        'runs of each policy at each value, each repeat with its own seed shared by every policy and value (default 5; run.repeats in a config)',
      ),
    )
    .option('--config <file>', configOptionDescription)
    .addOption(setOption())
    .addOption(
      new Option(
        '--x-scale <scale>',
        "the chart's x axis (default: log for exit rates and for values spanning 10x or more, else linear)",
      ).choices(['log', 'linear']),
    )
    .option('--json <file>', 'write every point as JSON (atomically; format asi-emu-sweep)')
    .option('--report <file>', 'self-contained HTML chart: overhead vs none per policy with 95% CI bands')
    .option('--svg <file>', 'the charts alone as one standalone SVG file (for a README or slides)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  asi-emu sweep --policies none,asi,coschedule --mix sysbench-cpu --exit-rates 1000,3000,10000,30000,100000 --json sweep.json --report sweep.html',
        '  asi-emu sweep --policies none,asi,asi-stun --exit-rates 1000..100000 --repeats 10',
        '  asi-emu sweep --policies none,asi --vary costs.ipiDelivery=1000,2000,4000,8000 --report ipi.html',
        '  asi-emu sweep --policies none,asi,linux-asi --mix sysbench-cpu,idle-tracing --svg asi-vs-linux-asi.svg',
        '',
        'Runs on the sim backend. Exit code: 0 when every run completed (unsafe policies break invariants',
        'by design; bench says which do). 2 for bad input.',
      ].join('\n'),
    )
    .action(async (options: SweepOptions, command: Command) => {
      if (options.exitRates !== undefined && options.vary !== undefined) {
        throw new UsageError(
          '--vary',
          `one varied field: --vary, or --exit-rates (which is --vary ${exitRatePath}=...)`,
          options.vary.path,
        );
      }
      const vary: Vary = options.vary ??
        options.exitRates ?? { flag: '--exit-rates', path: exitRatePath, values: defaultExitRates };
      const scale = options.xScale ?? defaultScale(vary.path, vary.values);
      if (scale === 'log' && vary.values.some((value) => value <= 0)) {
        throw new UsageError('--x-scale', 'linear when a value is 0 or below (a log axis has none)', 'log');
      }
      const input = withRunFlags(configInputOf(options), options);
      // The config as given first: its own mistakes name their fields, not --vary.
      const base = parseRunConfig(input);
      const configs = vary.values.map((value) => pointConfig(input, vary, value));
      const { mixes, policies } = comparedRuns(options, command, input, base.workload.mix);
      const { say } = checkOutputs([
        ...(options.json ? [{ flag: '--json', path: options.json }] : []),
        ...(options.report ? [{ flag: '--report', path: options.report }] : []),
        ...(options.svg ? [{ flag: '--svg', path: options.svg }] : []),
      ]);
      const names = policies.map((policy) => policy.name);
      const plan: SweepPlan = {
        path: vary.path,
        values: vary.values,
        configs,
        policies: policies.map((policy) => ({ name: policy.name, meantToBeSafe: meantToBeSafe(policy) })),
        mixes,
        seed: base.run.seed,
        repeats: base.run.repeats,
      };
      const builtins = new Map(policies.map((policy) => [policy.name, policy]));
      const progress = runProgress('sweep', sweepRunCount(plan));
      const sweep = await runSweep(
        plan,
        (config) => simBenchRunner(config, builtins, new Map()),
        progressHooks(progress, base.run.exits),
      ).finally(() => progress.stop());
      const repeatsText =
        base.run.repeats > 1
          ? `${base.run.repeats} repeats from seed ${base.run.seed} (each figure a mean ± the half-width of its 95% CI)`
          : `seed ${base.run.seed}, 1 repeat (no intervals: --repeats N for them)`;
      say(
        `asi-emu sweep --backend sim: ${base.machine.cores} cores x ${base.machine.smt} threads, ${base.run.exits} exits per run, ${repeatsText}, ` +
          `${vary.path} at ${vary.values.join(', ')} (modelled time at ${base.machine.ghz} GHz)\n\n`,
      );
      const mixNames = mixes.map((mix) => mix.name);
      say(`${formatSweep(sweep, mixNames, names)}\n`);
      const files: OutputFile[] = [];
      if (options.json) {
        const json = sweepJson(
          sweep,
          {
            scale,
            machine: base.machine,
            workload: { ...base.workload, mix: undefined, catalogue: undefined },
            costs: base.costs,
            run: base.run,
            mixes,
          },
          names,
        );
        files.push({ flag: '--json', path: options.json, contents: `${JSON.stringify(json, null, 2)}\n` });
      }
      const xLabel = vary.path === exitRatePath ? 'exits/s per vCPU' : vary.path;
      const charts = mixNames.map((mix) => ({ mix, series: sweepSeries(sweep, mix, names) }));
      if (options.svg) {
        files.push({
          flag: '--svg',
          path: options.svg,
          contents: () => renderSweepSvg({ path: vary.path, xLabel, scale, charts, bands: publishedBands }),
        });
      }
      if (options.report) {
        files.push({
          flag: '--report',
          path: options.report,
          contents: () =>
            renderSweepReport({
              title: `asi-emu sweep: ${names.join(', ')} on ${mixNames.join(', ')} by ${vary.path}`,
              path: vary.path,
              xLabel,
              scale,
              charts,
              bands: publishedBands,
              run: {
                machine: `${base.machine.cores} cores x ${base.machine.smt} threads at ${base.machine.ghz} GHz`,
                exits: base.run.exits,
                repeats: base.run.repeats,
                seed: base.run.seed,
                varied: `${vary.path} = ${vary.values.join(', ')}`,
              },
            }),
        });
      }
      await writeOutputs(files);
      sayWritten(
        files.filter((file) => file.flag !== '--json'),
        say,
      );
      process.exitCode = ExitCode.ok;
    });
}
