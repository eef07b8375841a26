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
      ['cpu', 'cache', 'kick', 'backend', 'cli', 'policy'],
      "today's Linux ASI model decides and a hyperthread executes: it stands below the CPU model (memory/ and the shared modules only)",
    ),
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.d\\.ts$' },
    /**
     * Imports that break a rule today, each to be removed by the issue 21 item named beside it. A
     * violation listed here is reported with severity "ignore"; any other fails. The test fails too when
     * an entry no longer occurs, so the list shrinks as the items land.
     */
    knownViolations: [
      // Item 1: the accelerated path (the WASM kernel, its descriptors, the sim arena) in a folder of its own.
      known('paging-not-to-cpu-cache', 'src/paging/tlb.ts', 'src/cache/access-kernel.ts'),
      known('memory-not-to-paging-cache-coco', 'src/memory/sim-arena.ts', 'src/cache/access-kernel.ts'),
      // Item 3: every sub-layout (L1D, fill buffers, RMP) declared in one place.
      known('memory-not-to-paging-cache-coco', 'src/memory/layout.ts', 'src/cache/fill-buffers.ts'),
      known('memory-not-to-paging-cache-coco', 'src/memory/layout.ts', 'src/cache/l1d.ts'),
      known('memory-not-to-paging-cache-coco', 'src/memory/layout.ts', 'src/coco/rmp.ts'),
    ],
  },
};

function known(rule, from, to) {
  return { type: 'dependency', from, to, rule: { severity: 'error', name: rule } };
}
