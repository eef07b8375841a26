import { writeFileAtomicSync } from './output-files.js';

/**
 * Writes a file atomically: to a temporary file in the target's directory (links followed), then a
 * rename, so a reader (or an interrupted run) never sees half a file. The temporary file is removed if
 * the write fails, and the failure is an OutputError naming `flag` (the flag that chose the path).
 * A command's several outputs go through `writeOutputs` (output-files.ts) instead: all or none.
 */
export function writeFileAtomic(path: string, contents: string | Uint8Array, flag = 'output'): void {
  writeFileAtomicSync({ flag, path }, contents);
}

/**
 * As `writeFileAtomic`, for a file that must not exist yet: if it does (or appears while writing: the
 * name is taken by a hard link, which fails if the name exists), `refuseExisting()` is thrown and
 * nothing is written.
 */
export function writeNewFileAtomic(
  path: string,
  contents: string | Uint8Array,
  flag: string,
  refuseExisting: () => Error,
): void {
  writeFileAtomicSync({ flag, path }, contents, undefined, refuseExisting);
}
