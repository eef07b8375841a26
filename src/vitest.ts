import { expect } from 'vitest';
import type { RunResult } from './backend/result.js';
import { type InterruptName, interruptNames } from './backend/sim/stepped-sim.js';
import { exploreCaseOf } from './explore/explore-case.js';
import { explore } from './explore/explorer.js';
import { type InvariantId, invariantIds, invariantTitles, type Violation } from './invariants/violation.js';
import type { Policy } from './policy/policy.js';
import { namedPolicy } from './policy/policy-module.js';

/**
 * vitest matchers for isolation invariants (the `asi-emu/vitest` entry). Importing this module adds
 * them to `expect`; `invariantMatchers` is exported too, for `expect.extend` by hand.
 *
 *   import 'asi-emu/vitest';
 *   expect(runSim(config, myPolicy)).toHoldInvariants();
 *   expect(runSim(config, policies.none)).toBreakInvariant('INV-2');
 *   expect(result).toHoldInvariants(['INV-3', 'INV-4']); // only these
 *   await expect({ machine: { smt: 2 } }).toHoldInvariantsInEveryInterleaving('asi', { exits: 1, interrupts: { nmi: 1 } });
 *
 * They read a RunResult from either backend (`violations` counts, `violationRecords`). A failure
 * names the run (policy, mix, backend, seed), the counts, and the first violation records: id,
 * hyperthreads with their modes, detail, address or cache line, time, step, and the events before it.
 */

/** Records printed per failure: the first is usually enough, a second shows whether it repeats. */
const recordsShown = 2;
/** Events printed before each record (the monitor keeps 16). */
const recentEventsShown = 10;

type RunLike = Pick<RunResult, 'violations' | 'violationRecords'> &
  Partial<Pick<RunResult, 'policy' | 'mix' | 'backend' | 'seed' | 'exits' | 'deadlocked'>>;

function isRunLike(value: unknown): value is RunLike {
  if (typeof value !== 'object' || value === null) return false;
  const { violations, violationRecords } = value as Partial<RunResult>;
  return (
    typeof violations === 'object' &&
    violations !== null &&
    invariantIds.every((id) => typeof violations[id] === 'number') &&
    Array.isArray(violationRecords)
  );
}

const notARun = (received: unknown) => ({
  pass: false,
  message: () =>
    `expected a RunResult (from runSim or the workers backend: an object with "violations" counts per invariant id and "violationRecords"), got ${describeValue(received)}`,
});

function describeValue(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  const keys = Object.keys(value);
  return `an object with keys ${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', ...' : ''}`;
}

function isInvariantId(id: unknown): id is InvariantId {
  return typeof id === 'string' && (invariantIds as readonly string[]).includes(id);
}

function describeRun(run: RunLike): string {
  const parts: string[] = [];
  if (run.policy !== undefined) parts.push(`policy ${run.policy}`);
  if (run.mix !== undefined) parts.push(`mix ${run.mix}`);
  if (run.backend !== undefined) parts.push(`${run.backend} backend`);
  if (run.seed !== undefined) parts.push(`seed ${run.seed}`);
  if (run.exits !== undefined) parts.push(`${run.exits} exits`);
  return parts.length > 0 ? `the run (${parts.join(', ')})` : 'the run';
}

function describeCounts(run: RunLike, ids: readonly InvariantId[]): string {
  const broken = ids.filter((id) => run.violations[id] > 0);
  if (broken.length === 0) return 'no violations';
  return broken.map((id) => `${id} x ${run.violations[id]}`).join(', ');
}

/** One violation record, for a person reading a failed test. */
export function formatViolation(record: Violation): string {
  const lines = [`${record.id} (${invariantTitles[record.id] ?? 'unknown invariant'})`];
  const threads = record.threads.map((thread, i) => `ht${thread} in ${record.modes[i] ?? '?'}`).join(', ');
  lines.push(`  threads: ${threads || '-'}`);
  lines.push(`  detail:  ${record.detail}`);
  if (record.address !== undefined) lines.push(`  address: ${record.address}`);
  if (record.line !== undefined)
    lines.push(
      `  line:    pfn ${record.line.pfn}, line ${record.line.lineInPage} of the page, domain ${record.line.domain}`,
    );
  lines.push(`  at:      time ${Math.round(record.timeCycles)}, step ${record.step}`);
  const recent = (record.recentEvents ?? []).slice(-recentEventsShown);
  if (recent.length > 0) {
    lines.push('  events before it (oldest first):');
    for (const event of recent) lines.push(`    ${event}`);
  }
  return lines.join('\n');
}

function formatRecords(run: RunLike, ids: readonly InvariantId[]): string {
  const records = run.violationRecords.filter((record) => ids.includes(record.id));
  const total = ids.reduce((sum, id) => sum + run.violations[id], 0);
  if (records.length === 0) return total > 0 ? '\n(no violation records were kept)' : '';
  const shown = records.slice(0, recordsShown).map(formatViolation);
  const more = total - shown.length;
  return `\n\nfirst violation${shown.length > 1 ? 's' : ''}:\n${shown.join('\n\n')}${more > 0 ? `\n\n... and ${more} more` : ''}`;
}

/** The bounds of `toHoldInvariantsInEveryInterleaving`, as `asi-emu explore`'s flags give them. */
export interface InterleavingBounds {
  /** Workload exits after which a path ends (`--exits`). */
  exits: number;
  /** Interrupts that may land at any step boundary, by kind (`--interrupts`); default none. */
  interrupts?: Partial<Record<InterruptName, number>>;
  /** Longest path in transitions (`--max-depth`, default 200). */
  maxDepth?: number;
}

export const invariantMatchers = {
  /** Passes when the run broke none of `ids` (default: every invariant). */
  toHoldInvariants(received: unknown, ids?: readonly InvariantId[]) {
    if (!isRunLike(received)) return notARun(received);
    const checked = ids ?? invariantIds;
    const unknown = checked.filter((id) => !isInvariantId(id));
    if (unknown.length > 0) {
      return {
        pass: false,
        message: () => `unknown invariant id ${unknown.join(', ')}: one of ${invariantIds.join(', ')}`,
      };
    }
    const broken = checked.filter((id) => received.violations[id] > 0);
    const scope = ids === undefined ? 'every invariant' : checked.join(', ');
    return {
      pass: broken.length === 0,
      message: () =>
        broken.length === 0
          ? `expected ${describeRun(received)} to break one of ${scope}, but it held them all`
          : `expected ${describeRun(received)} to hold ${scope}, but it broke ${describeCounts(received, broken)}${received.deadlocked ? ' (deadlocked)' : ''}${formatRecords(received, broken)}`,
    };
  },

  /** Passes when the run broke invariant `id` at least once. */
  toBreakInvariant(received: unknown, id: InvariantId) {
    if (!isRunLike(received)) return notARun(received);
    if (!isInvariantId(id)) {
      return {
        pass: false,
        message: () => `unknown invariant id ${JSON.stringify(id)}: one of ${invariantIds.join(', ')}`,
      };
    }
    const count = received.violations[id];
    return {
      pass: count > 0,
      message: () =>
        count > 0
          ? `expected ${describeRun(received)} not to break ${id}, but it did ${count} time${count === 1 ? '' : 's'}${formatRecords(received, [id])}`
          : `expected ${describeRun(received)} to break ${id} (${invariantTitles[id]}), but it never did; it broke ${describeCounts(received, invariantIds)}`,
    };
  },

  /**
   * Passes when `policy` (a Policy or a built-in name) holds every invariant in every interleaving of
   * the configuration within `bounds`, and the search completed (asi-emu explore's engine, src/explore/).
   * The configuration is `explore --config`'s: machine, workload, costs and run sections over the
   * default 1 core x 2 (`{}` for the default). Keep it small: a search is exhaustive.
   */
  async toHoldInvariantsInEveryInterleaving(
    received: unknown,
    policy: Policy | string,
    bounds: InterleavingBounds,
  ) {
    const resolved = typeof policy === 'string' ? namedPolicy(policy) : policy;
    const fuzzCase = exploreCaseOf(bounds.exits, received ?? {}, 'toHoldInvariantsInEveryInterleaving');
    const interrupts = { nmi: 0, irq: 0, mc: 0 };
    for (const name of interruptNames) interrupts[name] = bounds.interrupts?.[name] ?? 0;
    const result = await explore({
      policy: resolved,
      fuzzCase,
      bounds: { exits: bounds.exits, interrupts, maxDepth: bounds.maxDepth ?? 200, timeLimitMs: null },
    });
    const found = result.counterexample;
    const within = `within ${bounds.exits} exit${bounds.exits === 1 ? '' : 's'}${interruptNames
      .filter((name) => interrupts[name] > 0)
      .map((name) => `, ${name} x${interrupts[name]}`)
      .join('')}`;
    const counts = `${result.states} states, ${result.transitions} transitions`;
    return {
      pass: found === null && result.complete,
      message: () =>
        found !== null
          ? `expected ${resolved.name} to hold every invariant in every interleaving ${within}, but ${found.violation.id} breaks after ${found.steps.length} transitions (${counts}):\n${found.steps.map((step, i) => `  ${i + 1}. ${step}`).join('\n')}\n${formatViolation(found.violation)}`
          : result.complete
            ? `expected ${resolved.name} to break an invariant in some interleaving ${within}, but it held them all (${counts})`
            : `the search ${within} did not complete (${result.depthLimited} states at the depth limit ${bounds.maxDepth ?? 200}): no claim`,
    };
  },
};

expect.extend(invariantMatchers);

interface InvariantMatchers<R = unknown> {
  /** The run broke none of `ids` (default: every invariant). */
  toHoldInvariants(ids?: readonly InvariantId[]): R;
  /** The run broke invariant `id` at least once. */
  toBreakInvariant(id: InvariantId): R;
  /** The policy holds every invariant in every interleaving of the configuration within the bounds. */
  toHoldInvariantsInEveryInterleaving(policy: Policy | string, bounds: InterleavingBounds): Promise<R>;
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: must repeat vitest's own declaration, `Matchers<T = any>`, exactly.
  interface Matchers<T = any> extends InvariantMatchers<T> {}
}
