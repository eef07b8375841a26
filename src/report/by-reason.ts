import type { RunResult } from '../backend/result.js';
import type { ExitReasonRow } from '../cpu/exit-breakdown.js';
import { formatTable } from './machine-table.js';

/**
 * `bench --by-reason`: each run's exits per reason and handler variant, as `perf kvm stat report`
 * prints them (cpu/exit-breakdown.ts): sorted by total time from exit to entry, with the columns an
 * engineer deciding which handler to make isolation-safe next reads: how often, how much of the time,
 * how often it stayed in isolation, and what it cost in switches and kicks.
 */
const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const cycles = (value: number | null) => (value === null ? '-' : Math.round(value).toString());

/** The header of the table, in the order of `byReasonCells`. */
export const byReasonHeader = [
  'exit reason',
  'variant',
  'samples',
  'samples%',
  'time%',
  'in isolation',
  'to full',
  'kicks',
  'min cycles',
  'max cycles',
  'avg cycles',
];

/** One row's cells, as text (the HTML report shows the same). */
export function byReasonCells(row: ExitReasonRow): string[] {
  return [
    row.reason,
    row.variant,
    String(row.count),
    percent(row.share),
    percent(row.timeShare),
    percent(row.isolatedShare),
    String(row.switchesToFull),
    String(row.kicks),
    cycles(row.minCycles),
    cycles(row.maxCycles),
    cycles(row.meanCycles),
  ];
}

/** One table per run, each under a line naming it. */
export function formatByReason(results: readonly RunResult[]): string {
  return results
    .map((result) => {
      const title = `${result.policy} on ${result.mix}: VM exits by reason (${result.backend}; time from exit to entry, in cycles), sorted by total time`;
      if (result.byReason.length === 0) return `${title}\n(no exits)`;
      return `${title}\n${formatTable(byReasonHeader, result.byReason.map(byReasonCells))}`;
    })
    .join('\n\n');
}
