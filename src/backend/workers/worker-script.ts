import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkersStartupError } from './errors.js';

/**
 * Path of a compiled worker entry (`dist/workers/<name>.js`). Node 20 cannot start a `.ts` worker, so
 * when this module runs from source (vitest) the workers still come from the build. Built, this module
 * is part of dist/chunks/asi-emu.js (scripts/build.mjs).
 */
export function workerScriptPath(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dist = basename(dirname(here)) === 'dist' ? dirname(here) : resolve(here, '../../../dist');
  const path = join(dist, 'workers', `${name}.js`);
  if (!existsSync(path)) throw new WorkersStartupError(-1, `${path} is missing: run \`npm run build\` first`);
  return path;
}
