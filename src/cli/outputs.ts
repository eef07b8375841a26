import { accessSync, constants, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/**
 * Checks an output path before any work runs, so that a mistake costs nothing and leaves no file
 * behind (issue 6: no partial output files): a file path must not name a directory, a directory path
 * must not name a file, and the nearest existing directory on the way must be one this process may
 * write (missing directories are created when the output is written). A UsageError naming the flag.
 */
export function checkOutputPath(flag: string, path: string, kind: 'file' | 'directory' = 'file'): void {
  const target = resolve(path);
  const existing = statOrNull(target);
  if (existing?.isDirectory() && kind === 'file') {
    throw new UsageError(flag, 'a file path (it names a directory)', path);
  }
  if (existing && !existing.isDirectory() && kind === 'directory') {
    throw new UsageError(flag, 'a directory path (it names a file)', path);
  }
  // The directory the output goes in (the target itself for an existing output directory), or the
  // nearest one above it that exists.
  let directory = existing?.isDirectory() ? target : dirname(target);
  for (;;) {
    const stats = statOrNull(directory);
    if (stats) {
      if (!stats.isDirectory()) {
        throw new UsageError(flag, 'a path under a directory', `${path} (${directory} is a file)`);
      }
      break;
    }
    const parent = dirname(directory);
    if (parent === directory) break;
    directory = parent;
  }
  try {
    accessSync(directory, constants.W_OK);
  } catch {
    throw new UsageError(
      flag,
      'a path in a directory this user may write',
      `${path} (${directory} is not writable)`,
    );
  }
}
