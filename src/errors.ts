/**
 * Typed errors for operational failures and user input (STYLE.md habit 6). Programmer errors use
 * `assert` instead. Every user-facing error names the field (or flag) and what is accepted, so the CLI
 * can print one line and exit 2.
 */

/** A bad configuration value: `field` is the path of the field, `accepted` says what would be valid. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly field: string,
    readonly accepted: string,
    readonly got?: unknown,
  ) {
    super(`${field}: ${accepted}${got === undefined ? '' : ` (got ${formatGot(got)})`}`);
  }
}

/** A bad command-line flag. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    readonly flag: string,
    readonly accepted: string,
    readonly got?: unknown,
  ) {
    super(`${flag}: ${accepted}${got === undefined ? '' : ` (got ${formatGot(got)})`}`);
  }
}

/**
 * An output (a `--json`, `--trace`, `--report` or `--out` file) could not be written: `flag` names the
 * flag, `path` the path as given, `reason` the system's errno and its meaning ("ENOSPC (no space left
 * on device)"). A user's environment, not a bug: the CLI prints one line and exits 2.
 */
export class OutputError extends Error {
  override name = 'OutputError';
  constructor(
    readonly flag: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${flag}: cannot write ${formatGot(path)}: ${reason}`);
  }
}

/**
 * A user's policy failed while it ran: a hook threw, returned a value of the wrong type, or stopped
 * making progress. A finding about that policy (as `fuzz` files it), not bad input: the CLI prints one
 * line, with the hook's own stack when there is one, and exits 1.
 */
export class PolicyFailedError extends Error {
  override name = 'PolicyFailedError';
  constructor(
    readonly policy: string,
    /** The module's path. */
    readonly module: string,
    readonly problem: string,
    /** Where in the module the hook threw (its own stack), when it threw. */
    readonly hookStack: string | null = null,
  ) {
    super(`policy ${policy} (${module}) failed: ${problem}`);
  }
}

/** The page-table pool (or another fixed-capacity section of the machine buffer) is full. */
export class CapacityError extends Error {
  override name = 'CapacityError';
  constructor(
    readonly resource: string,
    readonly capacity: number,
    readonly hint: string,
  ) {
    super(`${resource} is full (capacity ${capacity}); ${hint}`);
  }
}

function formatGot(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
