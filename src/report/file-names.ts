import { createHash } from 'node:crypto';
import { assert } from '../assert.js';

/**
 * Names that come from data (a policy's name, a user mix's `workload.mix.name` in a config file)
 * become parts of output file names: a trace per run (FILE.<policy>.<mix>.json), a replay file per
 * failing case. Such a name must never lead outside the output's directory (STYLE.md habit 13), so
 * every one goes through `safeFileNamePart`.
 */

/**
 * A name part's bound: a file name may hold two of them plus a prefix and a suffix, and a temporary
 * file's name adds ~30 characters, all well under NAME_MAX (255 bytes on Linux and macOS).
 */
export const fileNamePartLengthMax = 64;
/** Hex digits of the hash that keeps two long names distinct once cut to the bound. */
const truncatedHashDigits = 8;

/**
 * A name made safe as one part of a file name: letters, digits, `.`, `_` and `-` only (so no `/`,
 * `\`, NUL or control character), no leading dot (no hidden file, no `..`), never empty, at most
 * `fileNamePartLengthMax` characters (a longer name is cut and ends with a hash of the whole, so two
 * long names stay apart). Names already safe are kept as they are: replay file names do not change.
 */
export function safeFileNamePart(name: string): string {
  let safe = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, (dots) => '_'.repeat(dots.length));
  if (safe.length === 0) safe = '_';
  if (safe.length > fileNamePartLengthMax) {
    const hash = createHash('sha256').update(name).digest('hex').slice(0, truncatedHashDigits);
    safe = `${safe.slice(0, fileNamePartLengthMax - truncatedHashDigits - 1)}-${hash}`;
  }
  assert(safe.length > 0 && safe.length <= fileNamePartLengthMax, 'a name part within its bound');
  assert(!safe.startsWith('.') && /^[A-Za-z0-9._-]+$/.test(safe), 'a name part with no path in it');
  return safe;
}
