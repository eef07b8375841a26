import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as a user gets it: `npm pack` of this repository (its built dist/: npm test builds
 * first), installed with `npm ci` into a scratch project outside the repository, then imported there
 * through package.json's exports map only (test/api.test.ts does the same by self-reference, without
 * packing). This shows that the `files` list ships what the entries need, that the exports map opens
 * `asi-emu/coco` and keeps deep paths closed, and that the declared dependencies suffice.
 *
 * The install works offline: the scratch project's lock lists the tarball (by its hash) and the
 * repository lock's production packages, which `npm ci` of this repository already put in npm's cache.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(repoRoot, 'test', 'fixtures', 'packed');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** npm pack and npm ci on a loaded 2-CPU machine take seconds each; this only stops a stuck npm. */
const stepTimeoutMs = 240_000;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: stepTimeoutMs });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

interface LockEntry {
  dev?: boolean;
  [field: string]: unknown;
}

let scratch = '';
let project = '';

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'asi-emu-packed-'));
  const packed = JSON.parse(
    run(npm, ['pack', '--json', '--silent', '--pack-destination', scratch], repoRoot),
  ) as { filename: string }[];
  const tarball = join(scratch, packed[0].filename);
  project = join(scratch, 'app');
  mkdirSync(project);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const spec = `file:../${packed[0].filename}`;
  const packages: Record<string, unknown> = {
    '': { name: 'scratch', dependencies: { 'asi-emu': spec } },
    'node_modules/asi-emu': {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: pkg.peerDependenciesMeta,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path.startsWith('node_modules/') && entry.dev !== true) packages[path] = entry;
  }
  const manifest = { name: 'scratch', private: true, type: 'module', dependencies: { 'asi-emu': spec } };
  writeFileSync(join(project, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(
    join(project, 'package-lock.json'),
    JSON.stringify({ name: 'scratch', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
  run(npm, ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], project);
  copyFileSync(join(fixtures, 'check.mjs'), join(project, 'check.mjs'));
  copyFileSync(join(fixtures, 'check.ts'), join(project, 'check.ts'));
}, 2 * stepTimeoutMs);

afterAll(() => {
  if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
});

describe("the packed tarball, installed in a scratch project: import { VmMemory } from 'asi-emu/coco'", () => {
  it('runs the confidential-memory model and the policy helpers through the exports map', () => {
    const out = JSON.parse(run(process.execPath, ['check.mjs'], project));
    expect(out.exit).toEqual({
      kind: 'memory-fault',
      exitReason: 39, // KVM_EXIT_MEMORY_FAULT
      errno: 'EFAULT',
      ret: -14,
      gpa: 0x100000,
      size: 4096,
      flags: '0x8', // KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
      access: 'private',
      write: false,
    });
    expect(out.privateBit).toBe('0x8');
    expect(out.efault).toBe(14);
    expect(out.refused).toBe('EINVAL');
    expect(out.deepImport).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    expect(out.classes).toEqual(['function', 'function', 'function', 'function']);
    expect(out.functions).toEqual(['function', 'function', 'function']);
    expect(out.trackerKind).toBe('interval-tree');
    // One class, whichever entry it is imported through.
    expect(out.sameConfidentialVm).toBe(true);
    expect(out.modes).toEqual(['guest', 'full']);
    expect(out.stunned).toBe(true);
    expect(out.machineFromRunConfig).toBe(2);
  });

  it("type-checks a user's file against the entries' declarations", () => {
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        types: ['node'],
        // The scratch project has no @types/node of its own; the repository's serves.
        typeRoots: [join(repoRoot, 'node_modules', '@types')],
      },
      files: ['check.ts'],
    };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    const tsc = join(repoRoot, 'node_modules', '.bin', 'tsc');
    const result = spawnSync(tsc, ['-p', 'tsconfig.json'], {
      cwd: project,
      encoding: 'utf8',
      timeout: stepTimeoutMs,
    });
    expect(`${result.stdout}${result.stderr}`).toBe('');
    expect(result.status).toBe(0);
  });
});
