import { type Command, Option } from 'commander';
import { poolExecutor } from '../../fuzz/executor.js';
import { runConfigOf } from '../../fuzz/fuzz-case.js';
import { fuzzWallLimits } from '../../fuzz/limits.js';
import { type ReplayOutcome, replayCase } from '../../fuzz/replay.js';
import { readReplayFile } from '../../fuzz/replay-format.js';
import { invariantTitles } from '../../invariants/violation.js';
import { writeOutputs } from '../../report/output-files.js';
import { buildTrace, traceJson } from '../../report/perfetto.js';
import { ExitCode } from '../errors.js';
import { checkOutputs } from '../outputs.js';
import { durationFlag } from './fuzz.js';

/**
 * `asi-emu replay FILE`: reruns a fuzz case deterministically and prints the violation and the events
 * before it; `--trace` writes the whole run as a Perfetto trace. Exit code 1 when the run breaks an
 * invariant (as recorded or not), 0 when it runs clean (the bug was fixed), 2 for a bad file.
 */
export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('rerun a fuzz replay file and print the violation and the events before it')
    .argument('<file>', 'a replay file written by `asi-emu fuzz`')
    .option('--trace <file>', 'write the whole run as a Perfetto / Chrome trace (JSON; - for stdout)')
    .option(
      '--policy-module <file>',
      'your policy module, for a file made with one (replay never loads a module named in the file)',
    )
    .addOption(
      new Option(
        '--case-timeout <duration>',
        `stop the run if it makes no progress this long and report a hang (default ${fuzzWallLimits.caseTimeLimitMsDefault / 1000}s)`,
      ).argParser(
        durationFlag('--case-timeout', fuzzWallLimits.caseTimeLimitMsMin, fuzzWallLimits.caseTimeLimitMsMax),
      ),
    )
    .addHelpText(
      'after',
      '\nExamples:\n  asi-emu replay fuzz-out/asi-seed7-case42.replay.json\n' +
        '  asi-emu replay case.replay.json --trace trace.json   (open in ui.perfetto.dev)\n',
    )
    .action(
      async (file: string, options: { trace?: string; policyModule?: string; caseTimeout?: number }) => {
        // Checked before the run; with `--trace -` the text goes to stderr and stdout holds the trace.
        const { say } = checkOutputs(
          options.trace !== undefined ? [{ flag: '--trace', path: options.trace }] : [],
        );
        const document = readReplayFile(file);
        // The case runs in a pool worker under the hang watchdog: a user hook may loop forever.
        const executor = poolExecutor({ jobs: 1, caseTimeLimitMs: options.caseTimeout });
        let outcome: ReplayOutcome;
        try {
          outcome = await replayCase(document, {
            policyModule: options.policyModule,
            keepEvents: options.trace !== undefined,
            executor,
          });
        } finally {
          await executor.close();
        }
        const write = (line: string) => say(`${line}\n`);
        const { origin, size } = document;
        write(
          `replay ${file}: policy ${document.policy.name}` +
            (origin ? `, campaign seed ${origin.campaignSeed} case ${origin.caseIndex}` : '') +
            `${document.shrink.shrunk ? ', shrunk' : ''} (${size.exits} exits, ${size.hyperthreads} hyperthreads, ` +
            `${size.injectedEvents} injected events, ${size.choices} choices), written by asi-emu ${document.asiEmuVersion}`,
        );
        const { verdict } = outcome;
        if (verdict.failure === 'hang') {
          write(`the run hung: ${verdict.error}`);
        } else if (verdict.failure === 'error') {
          write(`the run threw: ${verdict.error}`);
          if (verdict.errorStack !== null) write(`the hook's stack:\n${verdict.errorStack}`);
        } else if (verdict.violation) {
          const violation = verdict.violation;
          write(`violation ${violation.id} (${invariantTitles[violation.id]})`);
          write(
            `  at t=${Math.round(violation.timeCycles)} cycles, step ${violation.step}: ${violation.detail}`,
          );
          write(
            `  threads: ${violation.threads.map((thread, i) => `ht${thread} (${violation.modes[i] ?? '?'})`).join(', ')}`,
          );
          if (violation.address) write(`  address: ${violation.address}`);
          if (violation.line) {
            write(
              `  line: pfn ${violation.line.pfn} line ${violation.line.lineInPage} (${violation.line.domain})`,
            );
          }
          write('last events before it:');
          for (const event of violation.recentEvents ?? []) write(`  ${event}`);
        } else {
          write(`no violation: the run is clean (${verdict.exits} exits)`);
        }
        if (!outcome.reproduced)
          write(`note: the file records ${document.expected.failure}; this run did not break it`);
        const hashNote = outcome.traceHashMatches
          ? 'identical to the recorded trace'
          : outcome.moduleMatches === false
            ? `differs from the recorded ${document.expected.traceHash}: the policy module given is not the one that recorded it (its contents changed)`
            : options.policyModule !== undefined && outcome.moduleMatches === null
              ? `differs from the recorded ${document.expected.traceHash} (the file records no module hash: the module given may not be the one that recorded it)`
              : outcome.sameVersion
                ? `DIFFERS from the recorded ${document.expected.traceHash} (same asi-emu version: a determinism bug, please report it)`
                : `differs from the recorded ${document.expected.traceHash} (written by asi-emu ${document.asiEmuVersion})`;
        // A run the watchdog stopped has no trace to compare.
        if (verdict.failure === 'hang') write('trace hash: none (the run was stopped before it ended)');
        else write(`trace hash ${verdict.traceHash}: ${hashNote}`);
        if (options.trace !== undefined) {
          const { machine } = document.case;
          const trace = buildTrace(outcome.events, {
            backend: 'sim',
            threads: machine.cores * machine.smt,
            smt: machine.smt,
            policy: outcome.policyName,
            mix: document.case.workload.mix.name,
            timeUnit: 'cycles',
            catalogue: runConfigOf(document.case).workload.catalogue,
            violationRecords: outcome.result?.violationRecords ?? [],
          });
          await writeOutputs([{ flag: '--trace', path: options.trace, contents: () => traceJson(trace) }]);
          write(`trace: ${options.trace} (${outcome.events.length} events)`);
        }
        process.exitCode = verdict.failure === null ? ExitCode.ok : ExitCode.violation;
      },
    );
}
