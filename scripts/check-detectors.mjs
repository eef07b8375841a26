#!/usr/bin/env node
// check:detectors (issue 24): proves that deleting any one invariant check makes a test fail.
//
// Every check in the files below sits between `// detector <label> begin` and `// detector <label> end`
// comments. For each region, in a scratch copy of the repository, this script empties that region alone,
// type-checks the copy (an emptied region must still compile: if it does not, that is a fault of the
// markers, reported as such and never as "caught"), and runs the detector tests. A deletion no test
// notices is NOT CAUGHT, and the script exits 1. Mutation testing found two checks that could be deleted
// unnoticed (INV-3, INV-4); this keeps every marked check from drifting back there.
//
// Plain Node, no dependency of its own: it runs the repository's tsc and vitest from node_modules.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Files whose marked regions are deleted, one region at a time. */
const markedFiles = ['src/invariants/monitor.ts', 'src/coco/confidential-vm.ts'];
/** The tests run after each deletion: fast (a few seconds) and aimed at the detectors. */
const detectorTests = ['test/invariants/detectors.test.ts', 'test/invariants/monitor.test.ts'];
/** What the scratch copy needs to type-check and run those tests. */
const copied = ['src', 'workers', 'test', 'bench', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'vitest.config.ts'];
/** One deletion (type-check plus tests) may take this long before it counts as failed to run. */
const deletionTimeoutMs = 120_000;

const markerPattern = /^\s*\/\/ detector (.+?) (begin|end)\s*$/;

/** The marked regions of `text`: label, and the first and last line index of its body (markers excluded). */
function findRegions(file, text) {
  const lines = text.split('\n');
  const regions = [];
  let open = null;
  lines.forEach((line, index) => {
    const match = markerPattern.exec(line);
    if (!match) return;
    const [, label, edge] = match;
    if (edge === 'begin') {
      if (open) throw new Error(`${file}:${index + 1}: '${label}' begins inside '${open.label}'`);
      open = { file, label, beginLine: index };
    } else {
      if (!open || open.label !== label) throw new Error(`${file}:${index + 1}: '${label}' ends but was not begun`);
      if (index === open.beginLine + 1) throw new Error(`${file}:${index + 1}: '${label}' is empty`);
      regions.push({ ...open, endLine: index });
      open = null;
    }
  });
  if (open) throw new Error(`${file}: '${open.label}' is never ended`);
  return regions;
}

/** `text` with the body of `region` removed (its markers kept, so line numbers of errors stay near). */
function withoutRegion(text, region) {
  const lines = text.split('\n');
  return [...lines.slice(0, region.beginLine + 1), ...lines.slice(region.endLine)].join('\n');
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: deletionTimeoutMs });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}`, error: result.error };
}

/** Type-checks the scratch copy (src and tests, as `npm run typecheck` does, without emitting). */
function compiles(scratch) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  return run(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], scratch);
}

/** Runs the detector tests; returns how many failed, or null when the run itself broke. */
function failedTests(scratch) {
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const report = join(scratch, 'vitest-report.json');
  rmSync(report, { force: true });
  const result = run(
    process.execPath,
    [vitest, 'run', ...detectorTests, '--reporter=json', `--outputFile=${report}`],
    scratch,
  );
  if (!existsSync(report)) return { failed: null, output: result.output };
  const summary = JSON.parse(readFileSync(report, 'utf8'));
  // A test file that fails to load counts as no test failed in numFailedTests: count it too.
  const brokenFiles = summary.testResults.filter(
    (file) => file.status === 'failed' && file.assertionResults.length === 0,
  ).length;
  return { failed: summary.numFailedTests + brokenFiles, total: summary.numTotalTests, output: result.output };
}

function main() {
  const started = process.hrtime.bigint();
  const scratch = mkdtempSync(join(tmpdir(), 'asi-emu-check-detectors-'));
  const problems = [];
  try {
    for (const entry of copied) cpSync(join(root, entry), join(scratch, entry), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
    const originals = new Map(markedFiles.map((file) => [file, readFileSync(join(root, file), 'utf8')]));
    const regions = markedFiles.flatMap((file) => findRegions(file, originals.get(file)));
    if (regions.length === 0) throw new Error(`no '// detector' regions in ${markedFiles.join(', ')}`);

    // The unchanged copy must compile and pass, or no deletion below means anything.
    const baseCompile = compiles(scratch);
    if (baseCompile.status !== 0) throw new Error(`the unchanged copy does not compile:\n${baseCompile.output}`);
    const base = failedTests(scratch);
    if (base.failed !== 0) throw new Error(`the unchanged copy fails its detector tests:\n${base.output}`);
    console.log(`${regions.length} detector regions; ${base.total} tests in ${detectorTests.join(', ')}`);

    const labelWidth = Math.max(...regions.map((region) => region.label.length));
    for (const region of regions) {
      const regionStarted = process.hrtime.bigint();
      const path = join(scratch, region.file);
      writeFileSync(path, withoutRegion(originals.get(region.file), region));
      let verdict;
      const compile = compiles(scratch);
      if (compile.status !== 0) {
        verdict = `does not compile (a fault of the markers, not caught)\n${compile.output}`;
        problems.push(`${region.label}: does not compile when deleted`);
      } else {
        const tests = failedTests(scratch);
        if (tests.failed === null) {
          verdict = `tests did not run\n${tests.output}`;
          problems.push(`${region.label}: tests did not run`);
        } else if (tests.failed === 0) {
          verdict = 'no test failed: NOT CAUGHT';
          problems.push(`${region.label}: NOT CAUGHT`);
        } else {
          verdict = `${tests.failed} test${tests.failed === 1 ? '' : 's'} failed: caught`;
        }
      }
      writeFileSync(path, originals.get(region.file));
      const seconds = Number(process.hrtime.bigint() - regionStarted) / 1e9;
      console.log(
        `${region.label.padEnd(labelWidth)}  deleted (${region.file}:${region.beginLine + 2}) -> ${verdict} [${seconds.toFixed(1)} s]`,
      );
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (problems.length > 0) {
    console.log(`\ncheck:detectors FAILED in ${seconds.toFixed(1)} s:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`\ncheck:detectors: every deleted detector was caught (${seconds.toFixed(1)} s)`);
  }
}

main();
