#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { tuneEngineForSim } from '../engine-tuning.js';
import { registerCommands } from './commands/index.js';
import { ExitCode, reportError } from './errors.js';

/** The CLI: commands only, no model logic (STYLE.md). Exit codes: 0 ok, 1 violation found, 2 bad input. */

function packageVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

/** The default job of `npm start` / `asi-emu` with no command. */
export const defaultArgs = ['bench', '--backend', 'sim'];

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('asi-emu')
    .description('Multicore emulator of address space isolation (ASI) for virtualization')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  registerCommands(program);
  return program;
}

/** Runs the CLI; resolves to the exit code. Commands that find violations set `process.exitCode = 1`. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv.length === 0 ? defaultArgs : argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    return reportError(error);
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/asi-emu')) {
  // Before any simulation code is hot (engine-tuning.ts says what it buys).
  tuneEngineForSim();
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
