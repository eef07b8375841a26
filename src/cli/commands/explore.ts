import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Command, Option } from 'commander';
import { type InterruptName, interruptNames } from '../../backend/sim/stepped-sim.js';
import { PolicyFailedError, UsageError } from '../../errors.js';
import { exploreCaseOf, exploreSections } from '../../explore/explore-case.js';
import { type ExploreBounds, type ExploreResult, explore } from '../../explore/explorer.js';
import { type PolicySpec, policySpecOf, resolvePolicy } from '../../fuzz/policy-spec.js';
import { replayDocumentOf } from '../../fuzz/replay.js';
import { writeReplayFile } from '../../fuzz/replay-format.js';
import { toolIdentity } from '../../fuzz/version.js';
import { invariantTitles } from '../../invariants/violation.js';
import { PolicyHookError } from '../../policy/policy-module.js';
import { makeDirectories, writeOutputs } from '../../report/output-files.js';
import { configObject, readJsonFile } from '../config-file.js';
import { ExitCode } from '../errors.js';
import { applySettings, type ConfigSetting, integerFlag, setFlag } from '../flags.js';
import { checkOutputPath, checkOutputs } from '../outputs.js';
import { durationFlag } from './fuzz.js';

/**
 * `asi-emu explore` (issue 23): every interleaving of a small machine within explicit bounds, checked
 * against every invariant; the shortest counterexample as a replay file. Exit code 1 when a violation
 * is found, 0 when none is (complete or not: the text and `complete` say which), 2 for bad input.
 */
interface ExploreFlags {
  maxStates?: number;
  policy?: string;
  policyModule?: string;
  config?: string;
  set?: ConfigSetting[];
  exits: number;
  interrupts?: Record<InterruptName, number>;
  maxDepth?: number;
  time?: number;
  json?: string;
  out?: string;
  reduction?: 'sleep' | 'none';
}

/** The longest path by default: a few exits' worth of steps (an exit takes 10-20 transitions). */
const maxDepthDefault = 200;
/**
 * Distinct states before a search stops (not complete), unless --max-states says otherwise: at the ~11 kB
 * a saved state costs on 1 core x 2 (docs/explore.md), a million stays within a few GiB. The most a run
 * may ask for: 10 M (about 100 GiB of saved states at worst, so it also needs the memory).
 */
const maxStatesDefault = 1_000_000;
const maxStatesMax = 10_000_000;
/** Per kind of interrupt: more than a few multiplies the state space past any small bound. */
const interruptsPerKindMax = 8;

/** `--interrupts nmi,irq:2`: the kinds that may land, each once unless `:N` says how often. */
export function interruptsFlag(value: string): Record<InterruptName, number> {
  const accepted = `a comma-separated list of ${interruptNames.join(', ')}, each optionally :N (1..${interruptsPerKindMax} of it; default 1)`;
  const counts: Record<InterruptName, number> = { nmi: 0, irq: 0, mc: 0 };
  const items = value.split(',').map((item) => item.trim());
  for (const item of items) {
    const match = /^(nmi|irq|mc)(?::(\d+))?$/.exec(item);
    const count = match?.[2] === undefined ? 1 : Number(match[2]);
    if (match === null || count < 1 || count > interruptsPerKindMax)
      throw new UsageError('--interrupts', accepted, item);
    const name = match[1] as InterruptName;
    if (counts[name] > 0) throw new UsageError('--interrupts', 'a list without repeats', item);
    counts[name] = count;
  }
  return counts;
}

export function registerExploreCommand(program: Command): void {
  program
    .command('explore')
    .description(
      'check every interleaving of a small machine within a bound; print the shortest counterexample',
    )
    .option('--policy <name>', 'policy to explore (built-in or planted)')
    .option('--policy-module <file>', 'an ES module exporting your Policy (default export or `policy`)')
    .option(
      '--config <file>',
      'JSON with machine, workload, costs, run sections as a replay file case has them (over the default 1 core x 2, one VM)',
    )
    .addOption(
      new Option('--set <path=value>', 'one field of those sections (repeatable): machine.smt=3').argParser(
        setFlag(['machine', 'workload', 'costs', 'run']),
      ),
    )
    .addOption(
      new Option('--exits <n>', 'workload exits after which a path ends (the bound)')
        .argParser(integerFlag('--exits', 1, 50))
        .makeOptionMandatory(),
    )
    .addOption(
      new Option(
        '--interrupts <list>',
        'interrupts that may land at any step boundary: nmi,irq,mc (each :N)',
      ).argParser(interruptsFlag),
    )
    .addOption(
      new Option('--max-depth <n>', `longest path in transitions (default ${maxDepthDefault})`).argParser(
        integerFlag('--max-depth', 1, 100_000),
      ),
    )
    .addOption(
      new Option('--time <duration>', 'stop after this long (then not complete)').argParser(
        durationFlag('--time'),
      ),
    )
    .addOption(
      new Option(
        '--max-states <n>',
        `stop after this many distinct states (then not complete; default ${maxStatesDefault.toLocaleString('en-US')}: saved states cost memory)`,
      ).argParser(integerFlag('--max-states', 1, maxStatesMax)),
    )
    .addOption(
      new Option('--reduction <kind>', 'partial-order reduction: sleep (sleep sets, the default) or none')
        .choices(['sleep', 'none'])
        .default('sleep'),
    )
    .option('--json <file>', 'write the result as JSON (- for stdout)')
    .option('--out <dir>', 'directory for the counterexample replay file')
    .addHelpText(
      'after',
      '\nExamples:\n  asi-emu explore --policy asi --exits 1 --interrupts nmi\n' +
        '  asi-emu explore --policy planted-no-barrier --exits 2 --out explore-out\n' +
        '  asi-emu replay explore-out/explore-planted-no-barrier.replay.json\n',
    )
    .action(async (flags: ExploreFlags) => {
      const { say } = checkOutputs(flags.json !== undefined ? [{ flag: '--json', path: flags.json }] : []);
      if (flags.out !== undefined) checkOutputPath('--out', flags.out, 'directory');
      const spec: PolicySpec = await policySpecOf(flags.policy, flags.policyModule);
      const policy = await resolvePolicy(spec);
      const fromFile = flags.config ? configObject(readJsonFile(flags.config, '--config')) : {};
      for (const key of Object.keys(fromFile)) {
        if (!(exploreSections as readonly string[]).includes(key) && key !== '$comment')
          throw new UsageError('--config', 'an object with machine, workload, costs and run sections', key);
      }
      const fuzzCase = exploreCaseOf(flags.exits, fromFile, '--config/--set', (merged) =>
        applySettings(merged, flags.set ?? []),
      );
      const bounds: ExploreBounds = {
        exits: flags.exits,
        interrupts: flags.interrupts ?? { nmi: 0, irq: 0, mc: 0 },
        maxDepth: flags.maxDepth ?? maxDepthDefault,
        timeLimitMs: flags.time ?? null,
        maxStates: flags.maxStates ?? maxStatesDefault,
      };
      const write = (line: string) => say(`${line}\n`);
      const { machine, workload } = fuzzCase;
      const interruptText = interruptNames
        .filter((name) => bounds.interrupts[name] > 0)
        .map((name) => `${name} x${bounds.interrupts[name]}`);
      write(`explore: policy ${spec.name}`);
      write(
        `bounds: ${bounds.exits} exits per path, interrupts ${interruptText.length > 0 ? interruptText.join(', ') : 'none'}, ` +
          `depth <= ${bounds.maxDepth} transitions, states <= ${bounds.maxStates}${bounds.timeLimitMs === null ? '' : `, time <= ${bounds.timeLimitMs / 1000} s`}`,
      );
      write(
        `machine: ${machine.cores} core(s) x ${machine.smt} threads, ${machine.vms.length} VM(s) ` +
          `(${machine.vms.map((vm) => `${vm.vcpus} vCPUs on ${vm.pin.join(',')}`).join('; ')}); ` +
          `mix ${workload.mix.name}: ${Object.keys(workload.mix.weights).join(', ')}`,
      );
      write(
        'seed-free: branches at every runnable thread, every mix entry (one representative draw each) and every ' +
          'interrupt; fixed: exit and wake-up times (deadlines, which may come at any point), working-set lines, IPI peers',
      );
      write(
        "order: any runnable thread may step next: this relaxes the sim's virtual-time order to a superset of its schedules",
      );
      const result = await explore({
        policy,
        fuzzCase,
        bounds,
        clockMs: () => performance.now(),
        reduction: flags.reduction ?? 'sleep',
      }).catch((error: unknown) => {
        // A user's hook that throws or returns a wrong value is that policy's failure (exit 1), as in
        // bench and fuzz, not an internal error.
        if (error instanceof PolicyHookError && spec.module !== undefined) {
          const stack = error.cause instanceof Error ? (error.cause.stack ?? null) : null;
          throw new PolicyFailedError(spec.name, spec.module, `hook ${error.hook} ${error.problem}`, stack);
        }
        throw error;
      });
      report(result, write);
      let replayPath: string | null = null;
      const found = result.counterexample;
      if (found !== null && flags.out !== undefined) {
        replayPath = join(flags.out, `explore-${spec.name}.replay.json`);
        const document = replayDocumentOf(
          spec,
          null,
          found.fuzzCase,
          { fuzzCase: found.fuzzCase, verdict: found.replay },
          null,
        );
        makeDirectories(flags.out);
        writeReplayFile(replayPath, document);
        write(`replay file: ${replayPath} (asi-emu replay ${replayPath})`);
      }
      if (flags.json !== undefined) {
        const json = `${JSON.stringify({ tool: toolIdentity(), ...resultJson(result), replay: replayPath }, null, 2)}\n`;
        await writeOutputs([{ flag: '--json', path: flags.json, contents: () => json }]);
      }
      process.exitCode = result.violations > 0 ? ExitCode.violation : ExitCode.ok;
    });
}

function report(result: ExploreResult, write: (line: string) => void): void {
  write(
    result.reduction === 'sleep'
      ? `reduction: sleep sets (${result.transitionsSlept} groups of transitions skipped)`
      : 'reduction: none',
  );
  write(
    `states ${result.states} (distinct), transitions ${result.transitions}, deepest path ${result.depthReached}` +
      (result.statesPerSecond === null ? '' : `, ${result.statesPerSecond} states/s`) +
      `, ${result.stateBytes} bytes hashed and ${result.snapshotBytesPerState} saved per state`,
  );
  const found = result.counterexample;
  if (found !== null) {
    const { violation } = found;
    write(`violation ${violation.id} (${invariantTitles[violation.id]}): ${violation.detail}`);
    write(`shortest counterexample, ${found.steps.length} transitions:`);
    for (const [index, step] of found.steps.entries()) write(`  ${index + 1}. ${step}`);
    write(
      found.replaySameInvariant
        ? `the sim replays it through its choice list: ${found.replay.failure} again`
        : `the sim's replay of it gave ${found.replay.failure ?? 'no violation'} (expected ${violation.id})`,
    );
    return;
  }
  if (result.complete) {
    write(`0 violations: ${result.policy} holds every invariant in every interleaving within this bound`);
    return;
  }
  const why = result.timeLimited
    ? 'the time limit was reached'
    : result.statesLimited
      ? `the state limit (--max-states ${result.bounds.maxStates}) was reached`
      : `${result.depthLimited} states were at the depth limit`;
  write(`0 violations found, but the search is NOT complete (${why}): no claim for this bound`);
}

function resultJson(result: ExploreResult): Record<string, unknown> {
  const found = result.counterexample;
  return {
    policy: result.policy,
    bounds: result.bounds,
    reduction: result.reduction,
    states: result.states,
    transitions: result.transitions,
    transitionsSlept: result.transitionsSlept,
    violations: result.violations,
    complete: result.complete,
    depthLimited: result.depthLimited,
    timeLimited: result.timeLimited,
    statesLimited: result.statesLimited,
    depthReached: result.depthReached,
    elapsedMs: result.elapsedMs,
    statesPerSecond: result.statesPerSecond,
    stateBytes: result.stateBytes,
    snapshotBytesPerState: result.snapshotBytesPerState,
    counterexample:
      found === null
        ? null
        : {
            invariant: found.violation.id,
            violation: found.violation,
            steps: found.steps,
            schedule: found.schedule,
            replayFailure: found.replay.failure,
            replaySameInvariant: found.replaySameInvariant,
          },
  };
}
