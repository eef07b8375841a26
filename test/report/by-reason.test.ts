import { describe, expect, it } from 'vitest';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { policyByName } from '../../src/policy/index.js';
import { byReasonCells, byReasonHeader, formatByReason } from '../../src/report/by-reason.js';
import { renderHtmlReport } from '../../src/report/html.js';

/** The per-reason table (issue 20, item 2) as text (`bench --by-reason`) and in the HTML report. */
const config = parseRunConfig({
  machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
  workload: { mix: 'sysbench-cpu' },
  run: { exits: 600, seed: 4 },
});
const results = ['none', 'asi'].map((policy) => runSim(config, policyByName(policy)));

describe('the per-reason table', () => {
  it('prints one table per run, a line per row, in the result order', () => {
    const text = formatByReason(results);
    const tables = text.split('\n\n');
    expect(tables).toHaveLength(2);
    tables.forEach((table, index) => {
      const lines = table.split('\n');
      expect(lines[0]).toContain(`${results[index].policy} on sysbench-cpu: VM exits by reason`);
      expect(lines[1]).toMatch(/^exit reason\s+variant\s+samples\s+samples%\s+time%\s+in isolation/);
      // Title, header, rule, then the rows.
      expect(lines).toHaveLength(3 + results[index].byReason.length);
      results[index].byReason.forEach((row, rowIndex) => {
        expect(lines[3 + rowIndex].trim().split(/\s+/)).toEqual(byReasonCells(row));
      });
    });
  });

  it('the HTML report has a table per run with the same rows', () => {
    const html = renderHtmlReport({ results, title: 'by reason' });
    const section = /<section id="by-reason">[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    expect(section).not.toBe('');
    const runs = section.match(/<details class="by-reason"[\s\S]*?<\/details>/g) ?? [];
    expect(runs).toHaveLength(results.length);
    runs.forEach((run, index) => {
      expect(run).toContain(`data-policy="${results[index].policy}"`);
      for (const name of byReasonHeader) expect(run).toContain(`<th>${name}</th>`);
      const rows = run.match(/<tr data-reason="[^"]*" data-variant="[^"]*">/g) ?? [];
      expect(rows).toEqual(
        results[index].byReason.map(
          (row) => `<tr data-reason="${row.reason}" data-variant="${row.variant}">`,
        ),
      );
    });
  });
});
