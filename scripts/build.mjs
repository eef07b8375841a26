// `npm run build`: dist/ as one shared chunk and thin entry files, plus tsc's declarations.
//
// Why a bundle: every module of src/ lands in one module scope (dist/chunks/asi-emu.js), so the sim's hot
// path reads its imports as the chunk's own top-level `const`s and functions, where separate ES modules
// read them through live import bindings (docs/perf-log.md, 2026-12-06, issue 21 item 6, has the
// figures). This is the one place that speed is bought at build level; the code in src/ is plain.
//
// Why rolldown and not esbuild: esbuild turns every top-level `const` of a bundle into `var` (by
// design, evanw/esbuild#623, "top-level var" in its FAQ), which loses what the bundle is for; the same
// code bundled by esbuild ran at 0.92-0.94 of the unbundled build, by rolldown at 1.01-1.03.
//
// The entries below share one copy of every class: `asi-emu`, `asi-emu/coco`, `asi-emu/vitest`, the CLI, the bench and
// each worker (started by path from dist/workers/) import the one chunk (test/build/bundle.test.ts).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { rolldown } from 'rolldown';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');

/** Entry points: the package's exports and bin, the bench, the workers, and the tests' internal entry. */
const entries = [
  'src/index.ts',
  'src/coco/index.ts',
  'src/vitest.ts',
  'src/internal.ts',
  'src/cli/main.ts',
  'bench/run.ts',
  ...readdirSync(join(root, 'workers'))
    .filter((file) => file.endsWith('.ts'))
    .map((file) => `workers/${file}`),
];

/** Entry modules whose top-level code must run only when that entry is loaded (CLI start, vitest's expect). */
const ownChunk = /\/src\/(vitest|cli\/main)\.ts$/;

rmSync(dist, { recursive: true, force: true });

// Declarations only (dist/src/**/*.d.ts, what package.json's `types` name); JavaScript comes from the bundle.
const tsc = spawnSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--emitDeclarationOnly'],
  { cwd: root, stdio: 'inherit' },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const bundle = await rolldown({
  cwd: root,
  input: Object.fromEntries(entries.map((file) => [file.replace(/\.ts$/, ''), file])),
  platform: 'node',
  // Packages stay imports (dependencies resolve from node_modules as before); relative files are bundled.
  external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('\0'),
  // tsconfig.json's `useDefineForClassFields: false`: fields are assigned in the constructor.
  tsconfig: join(root, 'tsconfig.json'),
  preserveEntrySignatures: 'strict',
});
await bundle.write({
  dir: dist,
  format: 'es',
  sourcemap: true,
  entryFileNames: '[name].js',
  chunkFileNames: 'chunks/[name].js',
  codeSplitting: {
    groups: [{ name: 'asi-emu', test: (id) => id.includes('/src/') && !ownChunk.test(id) }],
  },
});
await bundle.close();
