import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MultiBar, Presets } from 'cli-progress';
import { type Command, Option } from 'commander';
import { UsageError } from '../../errors.js';
import { type CampaignProgress, defaultSummaryPath, runCampaign } from '../../fuzz/campaign.js';
import { poolExecutor } from '../../fuzz/executor.js';
import { fuzzLimits, fuzzWallLimits } from '../../fuzz/limits.js';
import { mergedSummaryOf, readSummaryFiles } from '../../fuzz/merge.js';
import { fuzzablePolicyNames, policySpecOf } from '../../fuzz/policy-spec.js';
import { formatShard, parseShard, type Shard, shardCaseCount, wholeCampaign } from '../../fuzz/shard.js';
import { type FailureRecord, type FuzzSummary, summaryJson } from '../../fuzz/summary.js';
import { writeOutputs } from '../../report/output-files.js';
import { ExitCode } from '../errors.js';
import { integerFlag } from '../flags.js';
import { checkOutputPath, checkOutputs } from '../outputs.js';

/**
 * `asi-emu fuzz`: a fuzz campaign on a piscina pool (src/fuzz/campaign.ts), and `asi-emu fuzz merge`.
 * Exit code 1 when a case broke an invariant, 0 when none did, 2 for bad input.
 */
interface FuzzOptions {
  policy?: string;
  policyModule?: string;
  cases?: number;
  time?: number;
  seed?: number;
  jobs?: number;
  shard?: Shard;
  out?: string;
  json?: string;
  maxFailures?: number;
  progress?: boolean;
  caseTimeout?: number;
  force?: boolean;
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms < 3_600_000 ? `${ms / 1000} s` : `${ms / 3_600_000} h`;
}

/** `--time`: a duration such as 90, 90s, 1.5m, 2h or 500ms; in milliseconds. */
export function durationFlag(flag: string, minMs = 1, maxMs = 365 * 86_400_000) {
  return (value: string): number => {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
    const ms = match ? Number(match[1]) * unitMs[(match[2] ?? 's') as keyof typeof unitMs] : Number.NaN;
    if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
      throw new UsageError(
        flag,
        `a duration such as 60s, 90, 1.5m, 2h or 500ms (seconds if no unit), from ${formatMs(minMs)} to ${formatMs(maxMs)}`,
        value,
      );
    }
    return ms;
  };
}

function formatCount(failures: Partial<Record<string, number>>): string {
  return Object.entries(failures)
    .map(([id, count]) => `${id} x${count}`)
    .join(', ');
}

function formatSize(failure: FailureRecord): string {
  const { size } = failure;
  return `${size.exits} exits, ${size.hyperthreads} hyperthreads, ${size.injectedEvents} injected events, ${size.choices} choices`;
}

export function registerFuzzCommand(program: Command): void {
  const fuzz = program
    .command('fuzz')
    .description(
      'fuzz exit-handler mixes against the isolation invariants; shrink and save each failing case',
    )
    .enablePositionalOptions()
    .option('--policy <name>', `policy to fuzz: ${fuzzablePolicyNames().join(', ')}`)
    .option('--policy-module <file>', 'an ES module exporting your Policy (default export or `policy`)')
    .addOption(
      new Option('--cases <n>', 'cases in the whole campaign (all shards)').argParser(
        integerFlag('--cases', 1, fuzzLimits.casesMax),
      ),
    )
    .addOption(
      new Option(
        '--time <duration>',
        'draw cases for this long instead (60s, 5m, 1h); the failures found are then shrunk (Ctrl-C stops and keeps them unshrunk)',
      ).argParser(durationFlag('--time')),
    )
    .addOption(
      new Option('--seed <n>', 'campaign seed (shards of one campaign share it)').argParser(
        integerFlag('--seed', 0, Number.MAX_SAFE_INTEGER),
      ),
    )
    .addOption(
      new Option('--jobs <n>', 'worker threads (default: the CPU count)').argParser(
        integerFlag('--jobs', 1, 256),
      ),
    )
    .addOption(
      new Option('--shard <i/n>', 'run shard i of n of the campaign (1-based)').argParser((value) =>
        parseShard(value),
      ),
    )
    .option('--out <dir>', 'directory for replay files (and summary.json)')
    .option(
      '--json <file>',
      'write the summary here instead of DIR/summary.json (- for stdout: then DIR/summary.json is kept as the run goes)',
    )
    .addOption(
      new Option(
        '--max-failures <n>',
        'keep at most this many failures (stops drawing cases once found)',
      ).argParser(integerFlag('--max-failures', 1, 1_000_000)),
    )
    .option('--no-progress', 'no progress bar, even on a terminal')
    .addOption(
      new Option(
        '--case-timeout <duration>',
        `stop a case (or a shrink run) that makes no progress this long and report it as a hang (default ${fuzzWallLimits.caseTimeLimitMsDefault / 1000}s)`,
      ).argParser(
        durationFlag('--case-timeout', fuzzWallLimits.caseTimeLimitMsMin, fuzzWallLimits.caseTimeLimitMsMax),
      ),
    )
    .option('--force', 'start over in an --out directory that holds an earlier campaign’s summary')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  asi-emu fuzz --policy asi --cases 2000 --seed 7 --out fuzz-out\n' +
        '  asi-emu fuzz --policy planted-lost-wakeup --time 60s --seed 1 --out fuzz-out --json summary.json\n' +
        '  asi-emu fuzz --policy-module ./my-policy.js --cases 5000 --seed 3 --shard 2/4 --out fuzz-out\n' +
        '  asi-emu fuzz merge fuzz-out/summary-shard-*-of-4.json --out merged.json\n' +
        'Exit code: 1 if a case broke an invariant, 0 if none did, 2 for bad input.\n',
    )
    .action(async (options: FuzzOptions) => {
      process.exitCode = await fuzzAction(options);
    });

  fuzz
    .command('merge')
    .description('merge the summaries of one campaign’s shards into one')
    .argument('<summary...>', 'summary files written by `asi-emu fuzz` (one per shard)')
    .option('--out <file>', 'merged summary (JSON, written atomically; - for stdout)')
    .action(async (paths: string[], options: { out?: string }, command: Command) => {
      // Unless the root program has positional options, `fuzz` itself takes `--out` wherever it
      // stands on the line: look there too.
      const out = options.out ?? (command.parent?.opts() as FuzzOptions | undefined)?.out;
      if (!out) throw new UsageError('--out', 'a file for the merged summary (e.g. --out merged.json)');
      const { say } = checkOutputs([{ flag: '--out', path: out }]);
      const merged = mergedSummaryOf(readSummaryFiles(paths), out);
      await writeOutputs([{ flag: '--out', path: out, contents: summaryJson(merged) }]);
      say(`${describeSummary(merged)}\nmerged summary: ${out}\n`);
      process.exitCode = merged.violations > 0 ? ExitCode.violation : ExitCode.ok;
    });
}

function describeSummary(summary: FuzzSummary): string {
  const shards = summary.shards.map((run) => run.shard).join(', ');
  const failures =
    summary.violations === 0
      ? 'no invariant broken'
      : `${summary.violations} failing case${summary.violations === 1 ? '' : 's'} (${formatCount(summary.byFailure)})`;
  return `${summary.casesRun} cases (shards ${shards}${summary.complete ? ', complete' : ', incomplete'}): ${failures}`;
}

async function fuzzAction(options: FuzzOptions): Promise<number> {
  if ((options.cases === undefined) === (options.time === undefined)) {
    throw new UsageError(
      '--cases',
      'exactly one of --cases N or --time DURATION (e.g. --cases 1000, --time 60s)',
    );
  }
  if (options.seed === undefined) {
    throw new UsageError(
      '--seed',
      'an integer 0..2^53-1 (required: reruns and shards of a campaign draw the same cases)',
    );
  }
  if (options.out === undefined)
    throw new UsageError('--out', 'a directory for the replay files (e.g. --out fuzz-out)');
  checkOutputPath('--out', options.out, 'directory');
  const { say, targets } = checkOutputs(options.json ? [{ flag: '--json', path: options.json }] : []);
  // A campaign rewrites its summary as it runs: a regular file takes that; standard output, a device
  // or a FIFO gets the final summary once, and DIR/summary.json keeps the rolling one.
  const rollingSummaryPath = options.json && targets[0]?.kind === 'file' ? resolve(options.json) : undefined;
  const policy = await policySpecOf(options.policy, options.policyModule);
  const shard = options.shard ?? wholeCampaign;
  const summaryPath = rollingSummaryPath ?? resolve(defaultSummaryPath(options.out, shard));
  // A second campaign into the same place would mix its replay files with the first's and drop the
  // first's summary: refuse unless asked to start over.
  if (existsSync(summaryPath) && options.force !== true) {
    throw new UsageError(
      '--out',
      'a directory without an earlier campaign’s summary (or --force to start over, or another --out)',
      `${options.out} (it holds ${summaryPath})`,
    );
  }
  const jobs = options.jobs ?? availableParallelism();
  const out = { write: say };
  const size =
    options.cases !== undefined
      ? `${options.cases} cases (${shardCaseCount(shard, options.cases)} in this shard)`
      : `${(options.time ?? 0) / 1000} s`;
  // The seed first (TigerBeetle): every campaign can be run again.
  out.write(
    `fuzz: seed ${options.seed}, policy ${policy.name}${policy.module ? ` (${policy.module})` : ''}, ` +
      `shard ${formatShard(shard)}, ${size}, ${jobs} jobs, out ${options.out}\n`,
  );

  // A progress bar on a terminal only: CI logs and pipes get the found / shrunk lines and the summary.
  const tty = options.progress !== false && process.stderr.isTTY === true && !process.env.CI;
  const unit = options.cases !== undefined ? 'cases' : 's';
  const total =
    options.cases !== undefined
      ? shardCaseCount(shard, options.cases)
      : Math.ceil((options.time ?? 0) / 1000);
  const bars = tty
    ? new MultiBar(
        {
          format:
            'fuzz |{bar}| {value}/{total} {unit} | {rate} cases/s | {violations} failing | {duration_formatted}',
          hideCursor: true,
          clearOnComplete: true,
        },
        Presets.shades_classic,
      )
    : null;
  const bar = bars?.create(total, 0, { unit, rate: '0', violations: 0 }) ?? null;
  const log = (line: string) => {
    if (bars) bars.log(`${line}\n`);
    else out.write(`${line}\n`);
  };
  const onProgress = (progress: CampaignProgress) => {
    if (!bar) return;
    const rate = progress.elapsedMs > 0 ? (progress.casesRun * 1000) / progress.elapsedMs : 0;
    const value =
      options.cases !== undefined
        ? progress.casesRun
        : Math.min(total, Math.floor(progress.elapsedMs / 1000));
    bar.update(value, { unit, rate: rate.toFixed(0), violations: progress.violations });
  };

  // Ctrl-C: draw no more cases and stop those in flight (their workers are terminated, so this takes
  // no longer than a worker's teardown), keep the replay files already written (unshrunk ones stay
  // unshrunk), write the summary; twice: quit now.
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
    log('fuzz: interrupted: stopping the cases in flight and writing the summary (Ctrl-C again to quit now)');
  };
  process.on('SIGINT', onSigint);
  const executor = poolExecutor({ jobs, caseTimeLimitMs: options.caseTimeout });
  const startMs = performance.now();
  try {
    const { summary } = await runCampaign({
      policy,
      seed: options.seed,
      cases: options.cases,
      timeLimitMs: options.time,
      clock: () => performance.now(),
      shard,
      outDir: resolve(options.out),
      summaryPath,
      executor,
      maxFailures: options.maxFailures,
      signal: controller.signal,
      onProgress,
      onFailure: (failure, stage) => {
        if (stage === 'found') {
          // A hook that threw or returned a bad value is the policy's bug, not the model's: say which
          // hook, and where in the module (its stack), once.
          const what =
            failure.failure === 'hang'
              ? 'hang'
              : failure.failure === 'error'
                ? failure.hook
                  ? `policy error in hook ${failure.hook}`
                  : 'error'
                : `breaks ${failure.failure}`;
          log(`found: case ${failure.caseIndex} ${what}: ${failure.detail} -> ${failure.replay}`);
          if (failure.hookStack) log(failure.hookStack.replace(/^/gm, '    '));
        } else if (stage === 'repeat') {
          if (failure.repeats === 1) {
            log(
              `repeat: later cases fail as case ${failure.caseIndex} did (counted in its repeats, not filed again)`,
            );
          }
        } else if (stage === 'shrink-stopped') {
          log(`shrink: case ${failure.caseIndex}: ${failure.shrinkNote} (the unshrunk replay file stays)`);
        } else {
          log(
            `shrunk: case ${failure.caseIndex} (${failure.failure}) to ${formatSize(failure)} -> ${failure.replay}`,
          );
        }
      },
    });
    bars?.stop();
    if (options.json && rollingSummaryPath === undefined) {
      await writeOutputs([{ flag: '--json', path: options.json, contents: summaryJson(summary) }]);
    }
    const seconds = (performance.now() - startMs) / 1000;
    out.write(
      `fuzz: ${describeSummary(summary)}; ${seconds.toFixed(1)} s, ${(summary.casesRun / Math.max(seconds, 1e-9)).toFixed(0)} cases/s\n` +
        `summary: ${summaryPath}\n`,
    );
    return summary.violations > 0 ? ExitCode.violation : ExitCode.ok;
  } finally {
    bars?.stop();
    process.off('SIGINT', onSigint);
    await executor.close();
  }
}
