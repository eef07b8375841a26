import { describe, expect, it } from 'vitest';
import '../../src/vitest.js';
import { namedPolicy } from '../../src/policy/policy-module.js';

/**
 * `toHoldInvariantsInEveryInterleaving` (issue 23 item 7): the explorer's engine behind a vitest
 * matcher, for small configurations (explore --config's sections over the default 1 core x 2).
 */
describe('toHoldInvariantsInEveryInterleaving', () => {
  it('passes for a safe policy within a small bound (a name or a Policy)', async () => {
    await expect({}).toHoldInvariantsInEveryInterleaving('asi', { exits: 1, interrupts: { nmi: 1 } });
    await expect({ machine: { fillBufferEntries: 2 } }).toHoldInvariantsInEveryInterleaving(
      namedPolicy('coschedule'),
      { exits: 1 },
    );
  });

  it('fails for a planted bug with its shortest counterexample in words', async () => {
    await expect({}).not.toHoldInvariantsInEveryInterleaving('planted-no-barrier', { exits: 2 });
    const failure = await expect({})
      .toHoldInvariantsInEveryInterleaving('planted-no-barrier', { exits: 2 })
      .then(
        () => null,
        (error: Error) => error.message,
      );
    expect(failure).toMatch(/INV-3 breaks after \d+ transitions/);
    expect(failure).toContain('1. ht');
  });

  it('makes no claim when the depth limit cuts the search', async () => {
    const failure = await expect({})
      .toHoldInvariantsInEveryInterleaving('asi', { exits: 2, maxDepth: 3 })
      .then(
        () => null,
        (error: Error) => error.message,
      );
    expect(failure).toContain('did not complete');
  });

  it('refuses a configuration with a section it does not know, naming it', async () => {
    await expect(
      expect({ machines: {} }).toHoldInvariantsInEveryInterleaving('asi', { exits: 1 }),
    ).rejects.toThrow(/machines/);
  });
});
