import { assert } from '../assert.js';
import type { ExitReasonSpec } from './exits.js';

/**
 * The per-exit-reason breakdown (issue 20, item 2): what `perf kvm stat report` shows for a real VM,
 * per exit reason and handler variant, for one run. Each hyperthread counts into its own Float64Array
 * (`Hyperthread.exitStats`), one record of `ExitStatField.count` numbers per variant of the run's
 * catalogue (a variant's record starts at `CompiledVariant.slot * ExitStatField.count`). A count is an
 * array update on the exit path, nothing allocated; the backend merges the threads' arrays when it
 * collects the result (the sim reads them off its threads, the workers backend gets each worker's
 * copy with its other statistics at stop).
 *
 * The time of an exit is `perf kvm stat`'s: from the VM exit to the next VM entry of that vCPU, in the
 * thread's cycles: the exit and entry halves of the round trip, the handler, the kicks and waits, a
 * halt's idle time, the VMM's time, the held time at the entry barrier.
 */
export const ExitStatField = {
  /** Exits taken (counted at the exit). */
  exits: 0,
  /** Exits whose handler ran to its end (an exit still in its handler when the run stopped is not). */
  handled: 1,
  /** ... of which without leaving isolation: no switch to full, no exit to the VMM (ASI policies only). */
  isolated: 2,
  /** Switches from isolated to full while this exit was being handled (its handler's, its interrupts'). */
  switchesToFull: 3,
  /** Sibling kicks this thread sent while handling the exit (re-kicks included). */
  kicksSent: 4,
  /** Exits that reached their next VM entry: the ones with a time. */
  timed: 5,
  /** Sum, least and most of the timed exits' cycles from exit to entry. */
  cycles: 6,
  minCycles: 7,
  maxCycles: 8,
  count: 9,
} as const;

/** A fresh record array for a catalogue of `variants` variants (least cycles start at +Infinity). */
export function newExitStats(variants: number): Float64Array {
  assert(Number.isInteger(variants) && variants > 0, `a catalogue has variants (${variants})`);
  const stats = new Float64Array(variants * ExitStatField.count);
  for (let slot = 0; slot < variants; slot++)
    stats[slot * ExitStatField.count + ExitStatField.minCycles] = Number.POSITIVE_INFINITY;
  return stats;
}

/** Variants of a catalogue: the records an exit-stats array holds. */
export function catalogueVariantCount(catalogue: readonly ExitReasonSpec[]): number {
  return catalogue.reduce((sum, spec) => sum + spec.variants.length, 0);
}

/** One row of the breakdown: an exit reason and handler variant of one run (JSON `results[].byReason`). */
export interface ExitReasonRow {
  reason: string;
  variant: string;
  /** Exits taken, and their share of all exits of the run (kick and interrupt exits included). */
  count: number;
  share: number;
  /** Share of the handled exits that never left isolation (0 under a policy without ASI). */
  isolatedShare: number;
  switchesToFull: number;
  kicks: number;
  /** Cycles from exit to the next entry, of the exits that reached one; null when none did. */
  meanCycles: number | null;
  minCycles: number | null;
  maxCycles: number | null;
  /** Sum of those cycles (what the rows are sorted by, as perf kvm stat sorts), and its share. */
  totalCycles: number;
  timeShare: number;
}

/**
 * The run's breakdown from every thread's exit-stats array: one row per variant that was taken, sorted
 * by total time (most first), then by count, then by catalogue order.
 */
export function exitBreakdown(
  catalogue: readonly ExitReasonSpec[],
  perThread: readonly ArrayLike<number>[],
): ExitReasonRow[] {
  const variants = catalogueVariantCount(catalogue);
  const merged = newExitStats(variants);
  for (const stats of perThread) {
    assert(
      stats.length === merged.length,
      `an exit-stats array has ${merged.length} numbers (it has ${stats.length})`,
    );
    for (let slot = 0; slot < variants; slot++) {
      const base = slot * ExitStatField.count;
      for (let field = 0; field < ExitStatField.count; field++) {
        const index = base + field;
        if (field === ExitStatField.minCycles) merged[index] = Math.min(merged[index], stats[index]);
        else if (field === ExitStatField.maxCycles) merged[index] = Math.max(merged[index], stats[index]);
        else merged[index] += stats[index];
      }
    }
  }
  let totalExits = 0;
  let totalCycles = 0;
  for (let slot = 0; slot < variants; slot++) {
    totalExits += merged[slot * ExitStatField.count + ExitStatField.exits];
    totalCycles += merged[slot * ExitStatField.count + ExitStatField.cycles];
  }
  const rows: (ExitReasonRow & { order: number })[] = [];
  let slot = 0;
  for (const spec of catalogue) {
    for (const variant of spec.variants) {
      const stat = (field: number) => merged[slot * ExitStatField.count + field];
      const count = stat(ExitStatField.exits);
      const timed = stat(ExitStatField.timed);
      const handled = stat(ExitStatField.handled);
      if (count > 0) {
        assert(
          timed <= count && handled <= count,
          `${spec.name}:${variant.name}: no more timed exits than exits`,
        );
        rows.push({
          reason: spec.name,
          variant: variant.name,
          count,
          share: count / totalExits,
          isolatedShare: handled > 0 ? stat(ExitStatField.isolated) / handled : 0,
          switchesToFull: stat(ExitStatField.switchesToFull),
          kicks: stat(ExitStatField.kicksSent),
          meanCycles: timed > 0 ? stat(ExitStatField.cycles) / timed : null,
          minCycles: timed > 0 ? stat(ExitStatField.minCycles) : null,
          maxCycles: timed > 0 ? stat(ExitStatField.maxCycles) : null,
          totalCycles: stat(ExitStatField.cycles),
          timeShare: totalCycles > 0 ? stat(ExitStatField.cycles) / totalCycles : 0,
          order: slot,
        });
      }
      slot++;
    }
  }
  rows.sort((a, b) => b.totalCycles - a.totalCycles || b.count - a.count || a.order - b.order);
  return rows.map(({ order: _order, ...row }) => row);
}
