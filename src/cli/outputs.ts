import { accessSync, constants, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import {
  checkOutputCollisions,
  type OutputRequest,
  type OutputTarget,
  resolveOutputTarget,
} from '../report/output-files.js';

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/**
 * The nearest directory at or above `directory` that exists must be one this process may write
 * (missing directories are created when the output is written). A UsageError naming the flag.
 */
function checkWritableDirectory(flag: string, path: string, directory: string): void {
  let nearest = directory;
  for (;;) {
    const stats = statOrNull(nearest);
    if (stats) {
      if (!stats.isDirectory()) {
        throw new UsageError(flag, 'a path under a directory', `${path} (${nearest} is a file)`);
      }
      break;
    }
    const parent = dirname(nearest);
    if (parent === nearest) break;
    nearest = parent;
  }
  try {
    accessSync(nearest, constants.W_OK);
  } catch {
    throw new UsageError(
      flag,
      'a path in a directory this user may write',
      `${path} (${nearest} is not writable)`,
    );
  }
}

/**
 * Checks an output path before any work runs, so that a mistake costs nothing and leaves no file
 * behind (issue 6: no partial output files). A file output may be `-` (standard output), a character
 * device or a FIFO (written in place), or a regular or new file, links followed, whose directory this
 * process may write; a directory output must not name a file. A UsageError or OutputError naming the
 * flag. Faults only a write can find (a full disk) are found by the write and leave nothing behind.
 */
export function checkOutputPath(flag: string, path: string, kind: 'file' | 'directory' = 'file'): void {
  if (kind === 'file') {
    // A path through a file (plain.txt/trace.json): name the file in the way.
    if (path !== '-' && statOrNull(path) === null) checkWritableDirectory(flag, path, dirname(resolve(path)));
    const target = resolveOutputTarget({ flag, path });
    if (target.kind === 'file') checkWritableDirectory(flag, path, dirname(target.path));
    return;
  }
  const target = resolve(path);
  const existing = statOrNull(target);
  if (existing && !existing.isDirectory()) {
    throw new UsageError(flag, 'a directory path (it names a file)', path);
  }
  checkWritableDirectory(flag, path, existing ? target : dirname(target));
}

/** A command's checked outputs, and where its text for people goes. */
export interface CheckedOutputs {
  targets: OutputTarget[];
  /** The flag whose output is standard output, or null. */
  standardOutputFlag: string | null;
  /**
   * Writes text for people (tables, verdicts, "wrote X" lines): to stdout, or to stderr when an
   * output is standard output, so that stdout holds that output alone (`--json - | jq` works).
   */
  say: (text: string) => void;
}

/**
 * Checks every output of a command before any work runs: each path (`checkOutputPath`), then that
 * no two land in one place (a link and its target, `-` and /dev/stdout): a UsageError naming both.
 */
export function checkOutputs(requests: readonly OutputRequest[]): CheckedOutputs {
  for (const request of requests) checkOutputPath(request.flag, request.path);
  const targets = checkOutputCollisions(requests);
  const index = targets.findIndex((target) => target.kind === 'standard-output');
  const standardOutputFlag = index >= 0 ? requests[index].flag : null;
  const stream = standardOutputFlag === null ? process.stdout : process.stderr;
  return { targets, standardOutputFlag, say: (text) => stream.write(text) };
}
