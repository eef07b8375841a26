import { defineConfig } from 'vitest/config';
import { LoadFailureReporter } from './test/mutation/load-failure-reporter.js';

/**
 * The tests `npm run mutation` (Stryker, stryker.config.mjs) runs against each mutant: those that import
 * src/ directly. Tests that run the built dist/ (the CLI, the workers backend, piscina pools, the hostile
 * suite's child processes) never load a mutant, since Stryker mutates src/ in its sandbox and dist/ is
 * built from the unmutated tree; they would only cost time, and fail where dist/ is not built.
 */
/**
 * MUTATION_TEST_FILES (comma-separated globs) narrows the run to some of these files, to test one area's
 * mutants with its own tests sooner (docs/testing.md). Not Stryker's `--testFiles`: with it, StrykerJS 9.6
 * activates a static mutant (one in code that runs while modules load) only after the modules have
 * loaded, so such mutants go untested and are reported Survived.
 */
const narrowedInclude = process.env.MUTATION_TEST_FILES?.split(',').filter((glob) => glob !== '');

export default defineConfig({
  test: {
    include: narrowedInclude ?? [
      'test/coco/**/*.test.ts',
      'test/cpu/**/*.test.ts',
      'test/invariants/**/*.test.ts',
      'test/policy/**/*.test.ts',
      'test/sim/**/*.test.ts',
      'test/mutation/**/*.test.ts',
      'test/fuzz/{arbitraries,confidential,planted-bugs,replay-format,safe-policies,shard}.test.ts',
    ],
    // A test file that fails to load (a mutant that throws at import) is a failing test, so a kill.
    reporters: ['default', new LoadFailureReporter()],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
