import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The asi-emu version that writes a replay file or summary: the same version replays the identical
 * trace. Read from the package.json above this module (src/ when run through vitest, dist/src/ when
 * built), once.
 */
let cached: string | undefined;

export function asiEmuVersion(): string {
  if (cached !== undefined) return cached;
  let directory = dirname(fileURLToPath(import.meta.url));
  // src/fuzz or dist/src/fuzz: the package root is two or three levels up.
  for (let level = 0; level < 4; level++) {
    const candidate = join(directory, 'package.json');
    if (existsSync(candidate)) {
      const parsed = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'asi-emu' && typeof parsed.version === 'string') {
        cached = parsed.version;
        return cached;
      }
    }
    directory = dirname(directory);
  }
  cached = 'unknown';
  return cached;
}

/**
 * Who wrote a result document: every one asi-emu writes (bench JSON, the fuzz summary, replay files)
 * carries it at its top level, beside its `schemaVersion`, so a script can tell which tool and version
 * made a file before it reads the rest.
 */
export interface ToolIdentity {
  name: 'asi-emu';
  version: string;
}

export function toolIdentity(): ToolIdentity {
  return { name: 'asi-emu', version: asiEmuVersion() };
}
