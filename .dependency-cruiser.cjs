/**
 * The import rules between src/ folders (DESIGN.md's layers; issue 21 "Must show"), checked by
 * dependency-cruiser: `npm run lint:imports`, and test/architecture/import-rules.test.ts in `npm test`.
 * Type-only imports count: a folder that may not import another may not import its types either.
 * (TypeScript 7 has no compiler API for dependency-cruiser, so it parses with swc.)
 */

/** A rule forbidding imports from `from/` into any of the `to/` folders. */
function forbid(from, to, comment) {
  return {
    name: `${from}-not-to-${to.join('-')}`,
    comment,
    severity: 'error',
    from: { path: `^src/${from}/` },
    to: { path: `^src/(${to.join('|')})/` },
  };
}

module.exports = {
  forbidden: [
    forbid('cpu', ['backend', 'cli', 'coco'], 'the CPU model runs under any backend and knows no CLI or confidential-VM internals'),
    forbid('paging', ['cpu', 'cache'], 'page tables and TLBs sit below the CPU and beside the caches'),
    forbid('memory', ['paging', 'cache', 'coco'], 'the machine buffer layout and words are the bottom layer'),
    forbid('invariants', ['policy'], 'the monitor judges any policy, so it may not depend on one'),
    forbid('policy', ['backend'], 'a policy runs the same on every backend'),
    forbid('backend', ['cli'], 'backends are library code; the CLI drives them'),
    forbid(
      'linux-asi',
      ['cpu', 'cache', 'kick', 'backend', 'cli', 'policy', 'accel'],
      "today's Linux ASI model decides and a hyperthread executes: it stands below the CPU model (memory/ and the shared modules only)",
    ),
    // The accelerated access path is chosen by a backend (docs/backends.md): backend/ and machine.ts (its
    // default) import it, no model folder does.
    ...['cpu', 'paging', 'cache', 'memory', 'kick', 'invariants', 'policy', 'coco'].map((model) =>
      forbid(model, ['accel'], 'the model runs the same on either access path and holds no kernel'),
    ),
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.d\\.ts$' },
    /**
     * Imports allowed to break a rule for now, each with the item that removes it (reported with severity
     * "ignore"; any other violation fails, and so does an entry that no longer occurs). Empty since issue
     * 21's items 1, 3 and 5 landed; an entry is written as
     * `{ type: 'dependency', from, to, rule: { severity: 'error', name } }`.
     */
    knownViolations: [],
  },
};
