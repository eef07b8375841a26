import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../src/config/run-config.js';
import { builtinMix } from '../../src/cpu/mixes.js';
import { policyByName } from '../../src/policy/index.js';
import { simRunner } from '../../src/report/comparison.js';
import { runSweep, sweepSeries } from '../../src/report/sweep.js';
import {
  bandsFor,
  compactNumber,
  logTicks,
  type PublishedBand,
  publishedBands,
  renderSweepReport,
  sweepChart,
} from '../../src/report/sweep-chart.js';
import { hasChromium, measureInChromium } from '../helpers/chromium.js';

/** Issue 20 item 3: the sweep's chart, overhead vs none per policy against the varied value. */

const temporaryDirectories: string[] = [];
function temporaryDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of temporaryDirectories) rmSync(directory, { recursive: true, force: true });
});

const path = 'workload.exitsPerSecond';
const rates = [1000, 10000, 100000];
const policies = ['none', 'asi', 'coschedule'];

/** A real sweep, small: 3 rates x 3 policies, 2 repeats of 400 exits (seed 4). */
async function smallSweep() {
  const base = { machine: { cores: 2, smt: 2 }, run: { exits: 400, seed: 4, repeats: 2 } };
  const configs = rates.map((rate) => parseRunConfig({ ...base, workload: { exitsPerSecond: rate } }));
  const builtins = new Map(policies.map((name) => [name, policyByName(name)]));
  return runSweep(
    {
      path,
      values: rates,
      configs,
      policies: policies.map((name) => ({ name, meantToBeSafe: name !== 'none' })),
      mixes: [builtinMix('sysbench-cpu')],
      seed: 4,
      repeats: 2,
    },
    (config) => {
      const runner = simRunner(config, builtins);
      return { run: runner.run, close: async () => runner.dispose() };
    },
  );
}

const sweep = await smallSweep();
const series = sweepSeries(sweep, 'sysbench-cpu', policies);
const band: PublishedBand = {
  policy: 'asi',
  mix: 'sysbench-cpu',
  xRange: [2000, 20000],
  yBand: [0.01, 0.03],
  label: 'A paper <2025>: 1-3%',
};
const report = (bands: readonly PublishedBand[]) =>
  renderSweepReport({
    title: 'sweep test',
    path,
    xLabel: 'exits/s per vCPU',
    scale: 'log',
    charts: [{ mix: 'sysbench-cpu', series }],
    bands,
    run: { exits: 400, repeats: 2, seed: 4 },
  });

describe('sweep chart', () => {
  it('has a point per rate and policy from the repeated comparison, with CIs', () => {
    expect(series.map((line) => line.policy)).toEqual(policies);
    for (const line of series) {
      expect(line.points.map((point) => point.x)).toEqual(rates);
      for (const point of line.points) {
        expect(point.mean).not.toBeNull();
        expect(point.ci95).not.toBeNull();
      }
    }
    // none against itself: exactly 0, no spread; the others cost more at higher rates.
    expect(series[0].points.every((point) => point.mean === 0 && point.ci95 === 0)).toBe(true);
    const coschedule = series[2].points.map((point) => point.mean as number);
    expect(coschedule[2]).toBeGreaterThan(coschedule[0]);
  });

  it('draws one line, one CI band and a point per value for each policy; no scripts, nothing fetched', () => {
    const html = report([]);
    const lines = [...html.matchAll(/<polyline class="line" data-policy="([^"]+)" points="([^"]+)"/g)];
    expect(lines.map((match) => match[1])).toEqual(policies);
    for (const match of lines) expect(match[2].split(' ')).toHaveLength(rates.length);
    expect([...html.matchAll(/<path class="ci-band" data-policy="([^"]+)"/g)].map((m) => m[1])).toEqual(
      policies,
    );
    expect([...html.matchAll(/<circle class="point"/g)]).toHaveLength(policies.length * rates.length);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|https?:|src=|href=/i);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(html).toContain('No published figure matches');
    expect(html).not.toContain('published-band');
  });

  it('puts x on a log scale: equal ratios are equal distances', () => {
    const svg = sweepChart({
      id: 'c',
      mix: 'm',
      path,
      xLabel: 'rate',
      scale: 'log',
      series: [{ policy: 'p', points: [1000, 10000, 100000].map((x) => ({ x, mean: 0.1, ci95: null })) }],
      bands: [],
    });
    const xs = [...svg.matchAll(/<circle class="point"[^>]* cx="([\d.]+)"/g)].map((match) =>
      Number(match[1]),
    );
    expect(xs).toHaveLength(3);
    expect(xs[1] - xs[0]).toBeCloseTo(xs[2] - xs[1], 1);
    // No interval with one repeat: no band drawn.
    expect(svg).not.toContain('ci-band');
  });

  it('draws a published band of a plotted policy, mix and field as a shaded box, and no other', () => {
    const other: PublishedBand[] = [
      { ...band, policy: 'asi-stun' },
      { ...band, mix: 'idle-tracing' },
      { ...band, path: 'costs.ipiDelivery' },
    ];
    const chart = { mix: 'sysbench-cpu', path, series, bands: [band, ...other] };
    expect(bandsFor(chart)).toEqual([band]);
    const html = report([band, ...other]);
    expect([
      ...html.matchAll(/<g class="published-band" data-policy="asi" data-mix="sysbench-cpu">/g),
    ]).toHaveLength(1);
    expect(html).toContain('A paper &lt;2025&gt;: 1-3%');
    expect(html).toContain('Dashed boxes are published figures (1 on these charts)');
    // The built-in list is empty until docs/calibration.md gives figures with their sources.
    expect(publishedBands).toEqual([]);
  });

  it('labels axes readably', () => {
    expect(logTicks(1000, 100000)).toEqual([1000, 10000, 100000]);
    expect(logTicks(900, 4000)).toEqual([1000, 2000]);
    expect(logTicks(300, 3000)).toEqual([500, 1000, 2000]);
    expect(compactNumber(1000)).toBe('1k');
    expect(compactNumber(2500000)).toBe('2.5M');
    expect(compactNumber(30)).toBe('30');
  });

  it.skipIf(!hasChromium)(
    'opens in headless Chromium with one visible line per policy, CI bands and a published band (skipped without /usr/bin/chromium)',
    () => {
      const where = {
        directory: temporaryDirectory('asi-sweep-chromium-'),
        profile: temporaryDirectory('asi-sweep-profile-'),
      };
      const measured = measureInChromium<{
        charts: number;
        width: number;
        lines: { policy: string; width: number; height: number; length: number }[];
        bands: number;
        published: { width: number; height: number }[];
      }>(
        report([band]),
        `const svg = document.querySelector('svg.chart');
        return {
          charts: document.querySelectorAll('svg.chart').length,
          width: svg.getBoundingClientRect().width,
          lines: [...svg.querySelectorAll('polyline.line')].map((line) => {
            const box = line.getBoundingClientRect();
            return { policy: line.dataset.policy, width: box.width, height: box.height, length: line.getTotalLength() };
          }),
          bands: [...svg.querySelectorAll('path.ci-band')].filter((path) => path.getBoundingClientRect().width > 0).length,
          published: [...svg.querySelectorAll('g.published-band rect')].map((rect) => {
            const box = rect.getBoundingClientRect();
            return { width: box.width, height: box.height };
          }),
        };`,
        where,
      );
      expect(measured.charts).toBe(1);
      expect(measured.width).toBeGreaterThan(300);
      expect(measured.lines.map((line) => line.policy)).toEqual(policies);
      // Each line spans the x axis; none's lies flat on 0, the others rise with the rate.
      for (const line of measured.lines) {
        expect(line.width, line.policy).toBeGreaterThan(300);
        expect(line.length, line.policy).toBeGreaterThan(300);
      }
      expect(measured.lines[2].height).toBeGreaterThan(10);
      // none's band is 0 wide (the same in every repeat): only the others' show.
      expect(measured.bands).toBeGreaterThanOrEqual(2);
      expect(measured.published).toHaveLength(1);
      expect(measured.published[0].width).toBeGreaterThan(20);
      expect(measured.published[0].height).toBeGreaterThan(0);
    },
  );
});
