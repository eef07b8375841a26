// @ts-check
/**
 * Mutation testing (`npm run mutation`, docs/testing.md): StrykerJS with its vitest runner. Not part of
 * .ci/run: a full run takes tens of minutes on 2 CPUs.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
const config = {
  testRunner: 'vitest',
  vitest: {
    // Only the tests that load src/ (vitest.mutation.config.ts says which and why).
    configFile: 'vitest.mutation.config.ts',
    related: true,
  },
  // Each mutant runs only the tests that reached it in the initial run.
  coverageAnalysis: 'perTest',
  mutate: [
    'src/invariants/monitor.ts',
    'src/policy/*.ts',
    'src/cpu/modes.ts',
    'src/kick/*.ts',
    'src/coco/shared-tracking/*.ts',
  ],
  // No checker: the typescript checker needs TypeScript's JavaScript API, which TypeScript 7 has not got.
  checkers: [],
  // Stryker rewrites the tsconfig's `extends` and `references` in its sandbox by loading `typescript`'s
  // JavaScript API (which TypeScript 7 lacks); ours has neither, so point it at a file that does not
  // exist and it leaves the tsconfig alone.
  tsconfigFile: 'no-tsconfig-for-stryker.json',
  // Nothing type-checks the sandbox (vitest strips types without checking them), so there is no need to
  // insert `// @ts-nocheck` into every file.
  disableTypeChecks: false,
  // .stryker-tmp*: the sandboxes of another run started with its own --tempDirName.
  ignorePatterns: ['dist', 'bench-results', 'coverage', 'out', 'reports', '.stryker-tmp*'],
  tempDirName: '.stryker-tmp',
  concurrency: 2,
  // A mutant's time limit is timeoutFactor x the initial run's time of its tests + timeoutMS. The 2 CPUs
  // are shared (load average 4 while the rest of the team tests): at the default 1.5 x + 5 s, mutants
  // that change nothing, run with every test (static ones), were reported as timeouts.
  timeoutFactor: 3,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
};
export default config;
