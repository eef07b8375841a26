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

/**
 * A reader that closes standard output early (`asi-emu replay FILE | head`) makes the next write fail
 * with EPIPE, emitted on process.stdout; unhandled, Node prints a stack and exits. Such a reader chose
 * to read no more: stdout is dropped from then on, quietly, and the command goes on, so the files it
 * writes (`--json`, `--trace`, replay files) are still written whole, and its exit code is its own
 * (not 141 as a SIGPIPE'd C program's: a command's verdict, 1 for a violation, says more). Any other
 * stdout error stays an error.
 */
export function dropStandardOutputOnEpipe(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    // Writes queued before the pipe closed fail after it as "destroyed": the same closed reader.
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
    // Later writes succeed at once, into nothing; a waiting writer (writeOutputs) is still called back.
    stream.write = ((_chunk: unknown, encodingOrCallback?: unknown, callback?: unknown) => {
      const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    }) as typeof stream.write;
  });
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly || process.argv[1]?.endsWith('/asi-emu')) {
  // Before any simulation code is hot (engine-tuning.ts says what it buys).
  tuneEngineForSim();
  dropStandardOutputOnEpipe();
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
