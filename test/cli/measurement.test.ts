import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExitReasonRow } from 'asi-emu';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

/** Issue 20 ("Measurement rigour"): the per-reason breakdown, kick latency percentiles, the timeline. */

/** A row as the JSON carries it: the library's own type. */
type ByReasonRow = ExitReasonRow;

interface BenchResult {
  policy: string;
  mix: string;
  exits: number;
  kickExits: number;
  byReason: ByReasonRow[];
}

/** The rows of each `--by-reason` table printed, keyed "policy on mix": [reason, variant, samples]. */
function printedTables(stdout: string): Map<string, string[][]> {
  const tables = new Map<string, string[][]>();
  for (const block of stdout.split('\n\n')) {
    const lines = block.trim().split('\n');
    const title = /^(\S+ on \S+): VM exits by reason/.exec(lines[0] ?? '');
    if (!title) continue;
    expect(lines[1]).toMatch(/^exit reason\s+variant\s+samples/);
    tables.set(
      title[1],
      lines.slice(3).map((line) => line.trim().split(/\s+/)),
    );
  }
  return tables;
}

function expectSameRows(stdout: string, results: BenchResult[]): void {
  const tables = printedTables(stdout);
  expect([...tables.keys()]).toEqual(results.map((result) => `${result.policy} on ${result.mix}`));
  for (const result of results) {
    expect(result.byReason.length).toBeGreaterThan(0);
    const printed = tables.get(`${result.policy} on ${result.mix}`) ?? [];
    expect(printed.map((cells) => cells.slice(0, 3))).toEqual(
      result.byReason.map((row) => [row.reason, row.variant, String(row.count)]),
    );
    // Every exit is in one row: workload exits and the kick exits the result counts apart.
    expect(result.byReason.reduce((sum, row) => sum + row.count, 0)).toBe(result.exits + result.kickExits);
    for (const row of result.byReason) {
      for (const key of [
        'reason',
        'variant',
        'count',
        'share',
        'isolatedShare',
        'switchesToFull',
        'kicks',
        'meanCycles',
        'minCycles',
        'maxCycles',
      ]) {
        expect(row, key).toHaveProperty(key);
      }
    }
  }
}

describe('bench --by-reason (the built binary)', () => {
  it('sim: prints a perf-kvm-stat table per run, and the JSON carries the same rows under byReason', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-by-reason-'));
    const out = join(directory, 'out.json');
    // One repeat: the rows are the first repeat's, and the exit counts are means over the repeats.
    const args = [
      'bench',
      '--policies',
      'none,asi',
      '--mix',
      'sysbench-cpu,idle-tracing',
      '--exits',
      '2000',
      '--repeats',
      '1',
    ];
    const run = runCli([...args, '--by-reason', '--json', out]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as { results: BenchResult[] };
    expect(json.results).toHaveLength(4);
    expectSameRows(run.stdout, json.results);
    // Without the flag no table is printed, and the JSON still has the rows.
    const plain = runCli([...args, '--json', join(directory, 'plain.json')]);
    expect(plain.stdout).not.toContain('VM exits by reason');
    const plainJson = JSON.parse(readFileSync(join(directory, 'plain.json'), 'utf8')) as {
      results: BenchResult[];
    };
    expect(plainJson.results.map((result) => result.byReason)).toEqual(
      json.results.map((result) => result.byReason),
    );
  });

  it('workers: the same table and rows, merged from every worker', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-by-reason-workers-'));
    const out = join(directory, 'out.json');
    const run = runCli([
      'bench',
      '--backend',
      'workers',
      '--policies',
      'none,asi',
      '--mix',
      'all-slow',
      '--exits',
      '300',
      '--by-reason',
      '--json',
      out,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as { results: BenchResult[] };
    expectSameRows(run.stdout, json.results);
  });
});

describe('bench --timeline-at (the built binary)', () => {
  it("places the report's mode timeline; without it the timeline opens halfway through the run", () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-timeline-'));
    const args = ['bench', '--policies', 'none,asi', '--exits', '1000'];
    const at = runCli([...args, '--report', join(directory, 'at.html'), '--timeline-at', '200']);
    expect(at.code).toBe(0);
    const html = readFileSync(join(directory, 'at.html'), 'utf8');
    expect(html).toMatch(
      /<h2>Mode timeline: asi on sysbench-cpu, seed \d+, at 200 µs \(--timeline-at\)<\/h2>/,
    );
    // 200 µs at 3 GHz: the window opens at cycle 600,000.
    expect(html).toContain('Mode timeline, 600000..900000');
    const plain = runCli([...args, '--report', join(directory, 'plain.html')]);
    expect(plain.code).toBe(0);
    expect(readFileSync(join(directory, 'plain.html'), 'utf8')).toContain(
      'halfway through the run (--timeline-at to choose)',
    );
  });

  it('is refused without --report, with the flag named (exit 2)', () => {
    const run = runCli(['bench', '--timeline-at', '5']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--timeline-at: with --report/);
  });
});
