import { CommanderError } from 'commander';
import { ConfigError, OutputError, PolicyFailedError, UsageError } from '../errors.js';

/** Exit codes (issue 6): 0 success, 1 a violation found, 2 bad input. */
export const ExitCode = { ok: 0, violation: 1, badInput: 2, internal: 3 } as const;

/**
 * Maps an error to one line and an exit code: user mistakes (bad flag, bad config field) and outputs
 * the environment refuses (a full disk, a read-only file system) get exit 2 and no stack trace; a
 * user's policy that failed as it ran gets exit 1 (a finding); anything else is a bug and keeps its stack.
 */
export function reportError(
  error: unknown,
  write: (text: string) => void = (text) => process.stderr.write(text),
): number {
  if (error instanceof ConfigError || error instanceof UsageError || error instanceof OutputError) {
    write(`asi-emu: error: ${error.message}\n`);
    return ExitCode.badInput;
  }
  if (error instanceof PolicyFailedError) {
    // The user's policy broke, not asi-emu: a finding (exit 1), with where in the module if known.
    write(
      `asi-emu: ${error.message}\n${error.hookStack === null ? '' : `${error.hookStack.replace(/^/gm, '    ')}\n`}`,
    );
    return ExitCode.violation;
  }
  if (error instanceof CommanderError) {
    // commander already printed its message (unknown option, missing argument, ...).
    if (error.exitCode === 0) return ExitCode.ok;
    return ExitCode.badInput;
  }
  write(
    `asi-emu: internal error (a bug; please report it with the command line):\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return ExitCode.internal;
}
