import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { createVitest, type Reporter } from 'vitest/node';
import { LoadFailureReporter, loadFailureTestName } from './load-failure-reporter.js';

const fixtures = fileURLToPath(new URL('../fixtures/load-failure/', import.meta.url));
/** A reporter that prints nothing, in place of the default one, which would print the fixture's failure. */
const quiet: Reporter = {};

/**
 * Runs the fixture files the way Stryker's vitest runner does (createVitest, start, then read the files'
 * tasks) and returns each file's tests as `name: state`.
 */
async function testsByFile(reporters: Reporter[]): Promise<Record<string, string[]>> {
  const vitest = await createVitest('test', {
    config: false,
    root: fixtures,
    include: ['*.fixture.ts'],
    watch: false,
    reporters: [quiet, ...reporters],
  });
  try {
    await vitest.start();
    const tests: Record<string, string[]> = {};
    for (const file of vitest.state.getFiles()) {
      tests[file.name] = file.tasks.map((task) => `${task.name}: ${task.result?.state}`);
    }
    return tests;
  } finally {
    await vitest.close();
  }
}

describe('LoadFailureReporter (vitest.mutation.config.ts)', () => {
  test('vitest alone reports a test file that throws at import as zero tests', async () => {
    const tests = await testsByFile([]);
    expect(tests['throws-on-import.fixture.ts']).toEqual([]);
    expect(tests['loads.fixture.ts']).toEqual(['passes: pass']);
  });

  test('with the reporter the file has one failing test, so Stryker counts a kill; other files are untouched', async () => {
    const tests = await testsByFile([new LoadFailureReporter()]);
    expect(tests['throws-on-import.fixture.ts']).toEqual([`${loadFailureTestName}: fail`]);
    expect(tests['loads.fixture.ts']).toEqual(['passes: pass']);
  });
});
