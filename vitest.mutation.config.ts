import { defineConfig } from 'vitest/config';

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
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
