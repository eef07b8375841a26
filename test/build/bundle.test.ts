import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The built dist/ (scripts/build.mjs, issue 21 item 6): every entry point is a thin file over one shared
 * chunk, so `asi-emu`, `asi-emu/vitest` (and any later export), the CLI, the bench and the workers
 * load one copy of each class. npm test builds first.
 */
const repository = join(import.meta.dirname, '..', '..');
const dist = join(repository, 'dist');
const sharedChunk = join(dist, 'chunks', 'asi-emu.js');

interface PackageJson {
  bin: Record<string, string>;
  exports: Record<string, string | { default?: string }>;
}

const packageJson = JSON.parse(readFileSync(join(repository, 'package.json'), 'utf8')) as PackageJson;

/** The JavaScript files package.json points at (exports and bin), and every worker started by path. */
function entryFiles(): string[] {
  const exported = Object.values(packageJson.exports)
    .map((target) => (typeof target === 'string' ? target : target.default))
    .filter((target): target is string => target?.endsWith('.js') === true);
  const workers = readdirSync(join(dist, 'workers'))
    .filter((file) => file.endsWith('.js'))
    .map((file) => join('dist', 'workers', file));
  return [...exported, ...Object.values(packageJson.bin), ...workers, 'dist/bench/run.js'].map((file) =>
    resolve(repository, file),
  );
}

/** The relative modules a built file imports (static `from '...'` and `import '...'`). */
function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*["'](\.[^"']+)["']/g)].map((match) => match[1]);
  return specifiers.map((specifier) => resolve(dirname(file), specifier));
}

describe('dist/ is thin entry files over one shared chunk', () => {
  it('every export, the bin, the bench and each worker import the one chunk and no other file of dist/', () => {
    const files = entryFiles();
    expect(files.length).toBeGreaterThanOrEqual(7);
    for (const file of files) {
      expect(existsSync(file), `${relative(repository, file)} is built`).toBe(true);
      expect(relativeImports(file), relative(repository, file)).toEqual([sharedChunk]);
    }
  });

  it('the chunk holds the model itself: no other chunk carries code of its own', () => {
    for (const file of readdirSync(join(dist, 'chunks')).filter((name) => name.endsWith('.js'))) {
      const path = join(dist, 'chunks', file);
      if (path === sharedChunk) continue;
      // A dynamic import's target (the CLI loads the workers bench lazily) is a re-export of the chunk.
      const code = readFileSync(path, 'utf8')
        .replace(/\/\/# sourceMappingURL=.*$/m, '')
        .trim();
      expect(code, file).toMatch(/^export \{[^}]*\} from "\.\/asi-emu\.js";$/);
    }
  });

  it('an error thrown through asi-emu is an instance of the class another entry point exports', async () => {
    const api = await import('asi-emu');
    const internal = (await import(pathToFileURL(join(dist, 'src', 'internal.js')).href)) as {
      ConfigError: typeof Error;
      UsageError: typeof Error;
    };
    let thrown: unknown;
    try {
      api.parseRunConfig({ run: { exits: -1 } });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(api.ConfigError);
    expect(thrown).toBeInstanceOf(internal.ConfigError);
    expect(internal.ConfigError).toBe(api.ConfigError);
    expect(internal.UsageError).toBe(api.UsageError);
  });
});
