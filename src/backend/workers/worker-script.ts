import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkersStartupError } from './errors.js';

/**
 * Path of a compiled worker entry (`dist/workers/<name>.js`). Node 20 cannot start a `.ts` worker, so
 * when this module runs from source (vitest) the workers still come from the build.
 */
export function workerScriptPath(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const base = resolve(here, '../../..');
  const path =
    basename(base) === 'dist'
      ? join(base, 'workers', `${name}.js`)
      : join(base, 'dist', 'workers', `${name}.js`);
  if (!existsSync(path)) throw new WorkersStartupError(-1, `${path} is missing: run \`npm run build\` first`);
  return path;
}
