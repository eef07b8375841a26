import type { RunnerTestCase, RunnerTestFile, RunnerTestSuite } from 'vitest';
import { type Reporter, experimental_getRunnerTask as runnerTaskOf, type TestModule } from 'vitest/node';

/** The name of the test this reporter adds to a test file that failed to load. */
export const loadFailureTestName = 'the test file loads (a load failure under a mutant is a kill)';

/**
 * A vitest reporter for the mutation run (vitest.mutation.config.ts): it turns a test file that failed to
 * load into one failing test.
 *
 * Why: vitest 4.1 reports a file whose import throws as a failed file with zero tests, and Stryker's vitest
 * runner counts only tests, so a mutant that makes a module throw at import (say, one that turns a
 * load-time `assert` in src/cpu/modes.ts into `assert(false)`) ran "zero tests, none failed" and was
 * reported Survived. With the failing test added it is Killed. Stryker reads the files' tasks after the
 * run, when every reporter's `onTestRunEnd` has finished.
 *
 * In the initial (unmutated) run no file fails to load, so the test never appears; if one does, the
 * failing test stops Stryker before any mutant runs, as a failing test should.
 */
export class LoadFailureReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    for (const testModule of testModules) {
      const file = runnerTaskOf(testModule);
      if (file.result?.state === 'fail' && !hasTests(file)) file.tasks.push(loadFailureTest(file));
    }
  }
}

function hasTests(suite: RunnerTestSuite | RunnerTestFile): boolean {
  return suite.tasks.some((task) => task.type === 'test' || (task.type === 'suite' && hasTests(task)));
}

function loadFailureTest(file: RunnerTestFile): RunnerTestCase {
  const errors = file.result?.errors ?? [];
  // Only what Stryker's runner and vitest's reporters read of a test: its name, file, mode and result.
  const test: Partial<RunnerTestCase> = {
    type: 'test',
    id: `${file.id}_load_failure`,
    name: loadFailureTestName,
    fullName: `${file.name} > ${loadFailureTestName}`,
    mode: 'run',
    file,
    meta: {},
    result: {
      state: 'fail',
      errors: errors.length > 0 ? errors : [{ message: `${file.name} failed to load` }],
    },
  };
  return test as RunnerTestCase;
}
