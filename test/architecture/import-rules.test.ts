import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Issue 21's import rules (the "Must show"), as dependency-cruiser checks them with the project's
 * `.dependency-cruiser.cjs`: a new import across a forbidden boundary fails here, and so does an entry of
 * the config's `knownViolations` allow-list that no longer occurs (take it out when its item lands).
 */
const repository = join(import.meta.dirname, '..', '..');
const config = join(repository, '.dependency-cruiser.cjs');
const require = createRequire(import.meta.url);
/** The package's bin script (its exports map hides package.json). */
const depcruise = join(repository, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
}

interface KnownViolation {
  from: string;
  to: string;
  rule: { name: string };
}

function cruise(cwd: string, paths: string[]): Violation[] {
  const output = execFileSync(
    process.execPath,
    [depcruise, ...paths, '--config', config, '--output-type', 'json'],
    {
      cwd,
      encoding: 'utf8',
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return (JSON.parse(output) as { summary: { violations: Violation[] } }).summary.violations;
}

const key = (v: { from: string; to: string; rule: { name: string } }) =>
  `${v.rule.name}: ${v.from} -> ${v.to}`;

describe('import rules between src/ folders', () => {
  const known = (require(config) as { options: { knownViolations: KnownViolation[] } }).options
    .knownViolations;

  it('src/ and workers/ break no rule beyond the documented allow-list, and every listed entry still occurs', () => {
    const violations = cruise(repository, ['src', 'workers']);
    const unexpected = violations.filter((v) => v.rule.severity !== 'ignore').map(key);
    expect(unexpected, 'imports across a forbidden boundary (.dependency-cruiser.cjs)').toEqual([]);
    const occurring = new Set(violations.map(key));
    const stale = known.map(key).filter((entry) => !occurring.has(entry));
    expect(stale, 'allow-list entries that no longer occur: remove them from knownViolations').toEqual([]);
  });

  it('each rule catches an import it forbids (a scratch tree with one offending import per rule)', () => {
    const root = mkdtempSync(join(tmpdir(), 'asi-emu-import-rules-'));
    const offending: [string, string][] = [
      ['cpu', 'backend'],
      ['cpu', 'cli'],
      ['cpu', 'coco'],
      ['paging', 'cpu'],
      ['paging', 'cache'],
      ['memory', 'paging'],
      ['memory', 'cache'],
      ['memory', 'coco'],
      ['invariants', 'policy'],
      ['policy', 'backend'],
      ['backend', 'cli'],
      ['linux-asi', 'cpu'],
      ['linux-asi', 'cache'],
      ['linux-asi', 'kick'],
      ['linux-asi', 'backend'],
      ['linux-asi', 'cli'],
      ['linux-asi', 'policy'],
    ];
    const folders = new Set(offending.flat());
    for (const folder of folders) {
      mkdirSync(join(root, 'src', folder), { recursive: true });
      writeFileSync(join(root, 'src', folder, 'target.ts'), 'export const target = 1;\n');
    }
    for (const [from, to] of offending) {
      // A type-only import counts as well.
      writeFileSync(
        join(root, 'src', from, `uses-${to}.ts`),
        `import type { target } from '../${to}/target.js';\nexport type T = typeof target;\n`,
      );
    }
    // Allowed directions stay quiet: the CPU model may import paging, the policy the invariants' types.
    writeFileSync(
      join(root, 'src', 'cpu', 'allowed.ts'),
      "import { target } from '../paging/target.js';\nexport const a = target;\n",
    );
    // linux-asi/ may import memory/ (regions, domains).
    writeFileSync(
      join(root, 'src', 'linux-asi', 'allowed.ts'),
      "import { target } from '../memory/target.js';\nexport const a = target;\n",
    );
    const violations = cruise(root, ['src']);
    const expected = offending.map(([from, to]) => `src/${from}/uses-${to}.ts -> src/${to}/target.ts`).sort();
    expect(violations.map((v) => `${v.from} -> ${v.to}`).sort()).toEqual(expected);
    expect(violations.every((v) => v.rule.severity === 'error')).toBe(true);
  });
});

/**
 * The cache model never blocks a thread (issue 21 item 4): the core lock that waits lives in
 * kick/core-lock.ts, and src/cache/ only calls it.
 */
function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(directory, entry.name)) : [join(directory, entry.name)],
  );
}

/** The code of a TypeScript file without its comments (a comment may name Atomics.wait). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Atomics.wait / Atomics.waitAsync, also as Atomics['wait'] or read into a variable. */
const atomicsWait = /\bAtomics\s*(\.\s*wait(Async)?\b|\[\s*['"`]wait(Async)?['"`]\s*\])/;

describe('src/cache/ never waits', () => {
  it('no file in src/cache/ calls Atomics.wait', () => {
    const cache = join(repository, 'src', 'cache');
    const waiting = sourceFiles(cache)
      .filter((file) => /\.(ts|js|mjs)$/.test(file))
      .filter((file) => atomicsWait.test(withoutComments(readFileSync(file, 'utf8'))))
      .map((file) => relative(repository, file).split('\\').join('/'))
      .sort();
    expect(waiting).toEqual([]);
  });

  it('the check sees a wait written any of those ways, and not one in a comment', () => {
    expect(atomicsWait.test(withoutComments('Atomics.wait(i32, 0, 0);'))).toBe(true);
    expect(atomicsWait.test(withoutComments('const w = Atomics .waitAsync;'))).toBe(true);
    expect(atomicsWait.test(withoutComments("Atomics['wait'](i32, 0, 0);"))).toBe(true);
    expect(atomicsWait.test(withoutComments('// never Atomics.wait here\n/* nor Atomics.wait */'))).toBe(
      false,
    );
    expect(atomicsWait.test(withoutComments('Atomics.notify(i32, 0);'))).toBe(false);
  });
});
