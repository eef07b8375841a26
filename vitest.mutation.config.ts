import { defineConfig } from 'vitest/config';
import { LoadFailureReporter } from './test/mutation/load-failure-reporter.js';

/**
 * The tests `npm run mutation` (Stryker, stryker.config.mjs) runs against each mutant: those that import
 * src/ directly. Tests that run the built dist/ (the CLI, the workers backend, piscina pools, the hostile
 * suite's child processes) never load a mutant, since Stryker mutates src/ in its sandbox and dist/ is
 * built from the unmutated tree; they would only cost time, and fail where dist/ is not built.
 */
export default defineConfig({
  test: {
    include: [
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
