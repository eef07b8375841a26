#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { createMachine } from '../machine.js';
import { writeFileAtomic } from '../report/atomic-write.js';
import { formatMachineSummary } from '../report/machine-table.js';
import { machineSection, readJsonFile } from './config-file.js';
import { ExitCode, reportError } from './errors.js';

/** The CLI: commands only, no model logic (STYLE.md). */

function packageVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

function integerFlag(flag: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new UsageError(flag, `an integer ${min}..${max}`, value);
    }
    return parsed;
  };
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('asi-emu')
    .description('Multicore emulator of address space isolation (ASI) for virtualization')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('machine')
    .description('build a machine and print what the model built: frames and owners, address spaces, regions')
    .option('--config <file>', 'JSON config file with a "machine" section')
    .addOption(new Option('--cores <n>', 'cores (1..256)').argParser(integerFlag('--cores', 1, 256)))
    .addOption(new Option('--smt <n>', 'hyperthreads per core (1..4)').argParser(integerFlag('--smt', 1, 4)))
    .addOption(
      new Option('--memory-mib <n>', 'physical memory in MiB').argParser(
        integerFlag('--memory-mib', 1, 1 << 22),
      ),
    )
    .option('--json <file>', 'also write the summary as JSON (atomically)')
    .addHelpText(
      'after',
      '\nExamples:\n  asi-emu machine\n  asi-emu machine --cores 4 --smt 2 --json machine.json\n',
    )
    .action(
      (options: { config?: string; cores?: number; smt?: number; memoryMib?: number; json?: string }) => {
        const fromFile = options.config ? machineSection(readJsonFile(options.config, '--config')) : {};
        const machineConfig = { ...(fromFile as object) } as Record<string, unknown>;
        if (options.cores !== undefined) machineConfig.cores = options.cores;
        if (options.smt !== undefined) machineConfig.smt = options.smt;
        if (options.memoryMib !== undefined) machineConfig.memoryMiB = options.memoryMib;
        const machine = createMachine(machineConfig);
        const summary = machine.summary();
        process.stdout.write(`${formatMachineSummary(summary)}\n`);
        if (options.json) writeFileAtomic(options.json, `${JSON.stringify(summary, null, 2)}\n`);
      },
    );

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    return reportError(error);
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/asi-emu')) {
  const args = process.argv.slice(2);
  main(args.length === 0 ? ['machine'] : args).then((code) => {
    process.exitCode = code;
  });
}
