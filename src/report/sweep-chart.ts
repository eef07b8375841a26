import { assert } from '../assert.js';
import { chartStyles, htmlPage, machineTable } from './html.js';
import { chartWidth, escapeXml, niceTicks, seriesColors, svgFrame } from './svg.js';

/**
 * The chart of `asi-emu sweep` (issue 20): overhead vs none against the varied value (exits/s per
 * vCPU by default, on a log scale), one line per policy with its 95% CI as a shaded band, one chart
 * per mix; and, under the lines, published figures as shaded boxes. Inline SVG in a self-contained
 * page, as the bench report (report/html.ts): no scripts, nothing fetched.
 */

/**
 * A published figure drawn on a sweep chart: a policy's overhead vs none on a mix lay within
 * `yBand` over the x values in `xRange` (e.g. exit rates a paper measured at). The renderer takes a
 * list of them (`publishedBands` is the built-in list) and draws those whose policy, mix and varied
 * field match a chart's line.
 */
export interface PublishedBand {
  policy: string;
  mix: string;
  /** The config field the x range is in; default `workload.exitsPerSecond` (figures are published against exit rates). */
  path?: string;
  /** Low and high x (the varied field's values); a single value is a range of one. */
  xRange: readonly [number, number];
  /** Low and high overhead vs none, as fractions (0.05 is 5%). */
  yBand: readonly [number, number];
  /** What a reader sees on the box, with its source ("Jackman 2025, kernel build: 1-2%"). */
  label: string;
}

/** The varied field bands are in unless they say otherwise. */
export const defaultBandPath = 'workload.exitsPerSecond';

/**
 * Published bands drawn on every sweep chart they match. Empty for now: the calibration issue
 * ("Costs a kernel engineer can trust") collects published figures with their sources in
 * docs/calibration.md, and each one that gives an overhead over a range of exit rates (or of another
 * config field) belongs here, with the same source in its label.
 */
export const publishedBands: readonly PublishedBand[] = [];

/** One point of a line: the varied value, the mean overhead vs none and its 95% CI half-width. */
export interface SweepPoint {
  x: number;
  /** null: not measured (no baseline); the line skips it. */
  mean: number | null;
  /** null: one repeat, no interval. */
  ci95: number | null;
}

export interface SweepSeries {
  policy: string;
  points: readonly SweepPoint[];
}

export type AxisScale = 'log' | 'linear';

export interface SweepChartInput {
  id: string;
  mix: string;
  /** The varied config field (`workload.exitsPerSecond`), matched against a band's `path`. */
  path: string;
  /** The x axis's name, e.g. "exits/s per vCPU". */
  xLabel: string;
  scale: AxisScale;
  series: readonly SweepSeries[];
  /** Every band known; the chart draws those of its mix, field and policies. */
  bands: readonly PublishedBand[];
}

const plotLeft = 64;
const plotRight = chartWidth - 20;
const plotTop = 16;
const plotHeight = 300;
const plotBottom = plotTop + plotHeight;
const xAxisHeight = 44;
const legendRowHeight = 20;
const legendEntryWidth = 150;
/** Share of the x range left empty at each end, so end points and their labels are not cut. */
const xPaddingShare = 0.04;

/** A number for an SVG coordinate: two decimals are finer than a pixel. */
const px = (value: number) => Number(value.toFixed(2)).toString();

/** 1000 as `1k`, 2500000 as `2.5M`: an axis label of a count or rate. */
export function compactNumber(value: number): string {
  const abs = Math.abs(value);
  const [divisor, suffix] =
    abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${Number((value / divisor).toPrecision(3))}${suffix}`;
}

const percent = (value: number) => `${Number((value * 100).toFixed(1))}%`;

/**
 * Ticks of a log axis from `low` to `high` (both > 0): every power of ten, and 2x and 5x of each when
 * the range holds fewer than three powers (so a short range still gets labels).
 */
export function logTicks(low: number, high: number): number[] {
  assert(low > 0 && high >= low, `log ticks need 0 < low <= high, got ${low}..${high}`);
  const first = Math.floor(Math.log10(low));
  const last = Math.ceil(Math.log10(high));
  const within = (value: number) => value >= low * (1 - 1e-9) && value <= high * (1 + 1e-9);
  const powers: number[] = [];
  for (let k = first; k <= last; k++) powers.push(10 ** k);
  if (powers.filter(within).length >= 3) return powers.filter(within);
  return powers.flatMap((power) => [power, 2 * power, 5 * power]).filter(within);
}

/** Where a value lands on the x axis, 0..1 of the plot's width, for the axis's scale and range. */
function xScale(scale: AxisScale, low: number, high: number): (value: number) => number {
  if (scale === 'log') {
    const from = Math.log10(low);
    const span = Math.log10(high) - from;
    return (value) => (Math.log10(value) - from) / span;
  }
  return (value) => (value - low) / (high - low);
}

/** The x range shown: the data's, padded at each end (in log space on a log axis). */
function xDomain(scale: AxisScale, values: readonly number[]): [number, number] {
  const low = Math.min(...values);
  const high = Math.max(...values);
  if (scale === 'log') {
    assert(low > 0, 'a log axis has positive values only');
    const span = Math.max(Math.log10(high / low), 0.5);
    const pad = span * xPaddingShare;
    return [low / 10 ** pad, high * 10 ** pad];
  }
  const span = high > low ? high - low : Math.max(Math.abs(low), 1);
  return [low - span * xPaddingShare, high + span * xPaddingShare];
}

/** The bands a chart draws: its mix's and field's, of policies it has a line for. */
export function bandsFor(chart: Pick<SweepChartInput, 'mix' | 'path' | 'series' | 'bands'>): PublishedBand[] {
  const policies = new Set(chart.series.map((series) => series.policy));
  return chart.bands.filter(
    (band) =>
      band.mix === chart.mix && (band.path ?? defaultBandPath) === chart.path && policies.has(band.policy),
  );
}

/** One sweep chart as an inline `<svg>`. */
export function sweepChart(chart: SweepChartInput): string {
  const xs = chart.series.flatMap((series) => series.points.map((point) => point.x));
  assert(xs.length > 0, 'a sweep chart has points');
  const bands = bandsFor(chart);
  const [xLow, xHigh] = xDomain(chart.scale, xs);
  const xShare = xScale(chart.scale, xLow, xHigh);
  const x = (value: number) => plotLeft + Math.min(Math.max(xShare(value), 0), 1) * (plotRight - plotLeft);
  // The y range holds 0, every interval and every band.
  const ys = [0];
  for (const series of chart.series) {
    for (const point of series.points) {
      if (point.mean === null) continue;
      ys.push(point.mean - (point.ci95 ?? 0), point.mean + (point.ci95 ?? 0));
    }
  }
  for (const band of bands) ys.push(band.yBand[0], band.yBand[1]);
  let yLow = Math.min(...ys);
  let yHigh = Math.max(...ys);
  if (yHigh - yLow < 0.01) yHigh = yLow + 0.01;
  const yTicks = niceTicks(yLow, yHigh);
  yLow = yTicks[0];
  yHigh = yTicks[yTicks.length - 1];
  const y = (value: number) => plotBottom - ((value - yLow) / (yHigh - yLow)) * plotHeight;
  const colorOf = (policy: string) =>
    seriesColors[
      Math.max(
        0,
        chart.series.findIndex((series) => series.policy === policy),
      ) % seriesColors.length
    ];
  const xText = (value: number) =>
    chart.path === defaultBandPath ? `${compactNumber(value)} exits/s` : `${chart.path} = ${value}`;

  const parts: string[] = [];
  // Axes and grid.
  for (const tick of yTicks) {
    parts.push(
      `<line class="grid" x1="${plotLeft}" x2="${plotRight}" y1="${px(y(tick))}" y2="${px(y(tick))}"/>`,
      `<text class="tick" x="${plotLeft - 6}" y="${px(y(tick) + 4)}" text-anchor="end">${escapeXml(percent(tick))}</text>`,
    );
  }
  const xTicks =
    chart.scale === 'log'
      ? logTicks(xLow, xHigh)
      : niceTicks(xLow, xHigh).filter((tick) => tick >= xLow && tick <= xHigh);
  for (const tick of xTicks) {
    parts.push(
      `<line class="grid" x1="${px(x(tick))}" x2="${px(x(tick))}" y1="${plotTop}" y2="${plotBottom}"/>`,
      `<text class="tick" x="${px(x(tick))}" y="${plotBottom + 16}" text-anchor="middle">${escapeXml(compactNumber(tick))}</text>`,
    );
  }
  parts.push(
    `<line class="zero" x1="${plotLeft}" x2="${plotRight}" y1="${px(y(0))}" y2="${px(y(0))}"/>`,
    `<line class="axis" x1="${plotLeft}" x2="${plotLeft}" y1="${plotTop}" y2="${plotBottom}"/>`,
    `<text class="axis-label" x="${px((plotLeft + plotRight) / 2)}" y="${plotBottom + 36}" text-anchor="middle">${escapeXml(`${chart.xLabel}${chart.scale === 'log' ? ' (log scale)' : ''}`)}</text>`,
    `<text class="axis-label" transform="translate(14 ${px((plotTop + plotBottom) / 2)}) rotate(-90)" text-anchor="middle">overhead vs none</text>`,
  );
  // Published bands under the lines.
  for (const band of bands) {
    const left = x(Math.min(band.xRange[0], band.xRange[1]));
    const right = x(Math.max(band.xRange[0], band.xRange[1]));
    const top = y(Math.max(band.yBand[0], band.yBand[1]));
    const bottom = y(Math.min(band.yBand[0], band.yBand[1]));
    // A band of one x value or one y value is drawn as a thin box, not as nothing.
    const width = Math.max(right - left, 4);
    const height = Math.max(bottom - top, 2);
    const color = colorOf(band.policy);
    parts.push(
      `<g class="published-band" data-policy="${escapeXml(band.policy)}" data-mix="${escapeXml(band.mix)}">` +
        `<rect x="${px(left - (width - (right - left)) / 2)}" y="${px(top - (height - (bottom - top)) / 2)}" width="${px(width)}" height="${px(height)}" fill="${color}" fill-opacity="0.12" stroke="${color}" stroke-dasharray="5 3">` +
        `<title>${escapeXml(`${band.label} (${band.policy} on ${band.mix}: ${percent(band.yBand[0])}..${percent(band.yBand[1])} at ${xText(band.xRange[0])}..${xText(band.xRange[1])})`)}</title></rect>` +
        `<text class="band-label" x="${px(left + 3)}" y="${px(top - 3)}" fill="${color}">${escapeXml(band.label)}</text></g>`,
    );
  }
  // One line per policy, its 95% CI as a shaded band behind it.
  for (const series of chart.series) {
    const color = colorOf(series.policy);
    const points = series.points
      .filter(
        (point): point is SweepPoint & { mean: number } => point.mean !== null && Number.isFinite(point.mean),
      )
      .sort((a, b) => a.x - b.x);
    const policy = escapeXml(series.policy);
    const withCi = points.filter((point) => point.ci95 !== null);
    const group: string[] = [`<g class="series" data-policy="${policy}">`];
    if (withCi.length > 0) {
      const upper = withCi.map((point) => `${px(x(point.x))} ${px(y(point.mean + (point.ci95 ?? 0)))}`);
      const lower = withCi
        .slice()
        .reverse()
        .map((point) => `${px(x(point.x))} ${px(y(point.mean - (point.ci95 ?? 0)))}`);
      group.push(
        `<path class="ci-band" data-policy="${policy}" d="M${[...upper, ...lower].join(' L')} Z" fill="${color}" fill-opacity="0.15"/>`,
      );
    }
    group.push(
      `<polyline class="line" data-policy="${policy}" points="${points.map((point) => `${px(x(point.x))},${px(y(point.mean))}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2">` +
        `<title>${escapeXml(`${series.policy} on ${chart.mix}`)}</title></polyline>`,
    );
    for (const point of points) {
      const ci = point.ci95 === null || point.ci95 === 0 ? '' : ` ± ${(point.ci95 * 100).toFixed(1)}`;
      group.push(
        `<circle class="point" data-policy="${policy}" data-x="${point.x}" cx="${px(x(point.x))}" cy="${px(y(point.mean))}" r="3" fill="${color}">` +
          `<title>${escapeXml(`${series.policy} on ${chart.mix} at ${xText(point.x)}: ${(point.mean * 100).toFixed(1)}%${ci}`)}</title></circle>`,
      );
    }
    group.push('</g>');
    parts.push(group.join(''));
  }
  // Legend: a swatch per policy, then what the shading means.
  const perRow = Math.max(1, Math.floor((plotRight - plotLeft) / legendEntryWidth));
  const legendTop = plotBottom + xAxisHeight;
  chart.series.forEach((series, index) => {
    const left = plotLeft + (index % perRow) * legendEntryWidth;
    const top = legendTop + Math.floor(index / perRow) * legendRowHeight;
    const color = colorOf(series.policy);
    parts.push(
      `<line class="legend" x1="${left}" x2="${left + 22}" y1="${top + 8}" y2="${top + 8}" stroke="${color}" stroke-width="2"/>`,
      `<text class="label" x="${left + 28}" y="${top + 12}">${escapeXml(series.policy)}</text>`,
    );
  });
  const notesTop = legendTop + Math.ceil(chart.series.length / perRow) * legendRowHeight;
  parts.push(
    `<text class="note" x="${plotLeft}" y="${notesTop + 12}">${escapeXml(
      `Shaded along a line: its 95% CI.${bands.length > 0 ? ' Dashed boxes: published figures.' : ''}`,
    )}</text>`,
  );
  const height = notesTop + legendRowHeight + 4;
  return svgFrame(
    chart.id,
    `Overhead vs none on ${chart.mix} against ${chart.xLabel}`,
    `One line per policy (${chart.series.map((series) => series.policy).join(', ')}): mean overhead vs none at each ${chart.xLabel} value, with its 95% confidence interval shaded${bands.length > 0 ? `; ${bands.length} published figures as dashed boxes` : ''}.`,
    height,
    parts,
  );
}

/** The sweep charts' own rules (axes, notes, published bands), in the page and in the standalone SVG. */
const sweepChartStyles = `svg .axis { stroke: #555; } svg .axis-label { fill: #222; font-size: 12px; } svg .note, svg .band-label { font-size: 11px; } svg .note { fill: #666; }
`;

const sweepStyles = `
th.num { text-align: right; } caption { text-align: left; color: #666; margin: 6px 0; }
${sweepChartStyles}`;

/** What the sweep report shows: its charts (one per mix), a table of the figures, and the run. */
export interface SweepReportInput {
  title: string;
  path: string;
  xLabel: string;
  scale: AxisScale;
  charts: readonly { mix: string; series: readonly SweepSeries[] }[];
  bands: readonly PublishedBand[];
  /** Shown as a key/value table: machine, repeats, seed. */
  run: object;
}

/** The element id of a mix's chart: its index, so that no name (data) lands in an id. */
export function sweepChartId(index: number): string {
  return `chart-sweep-${index}`;
}

function figuresTable(mix: string, series: readonly SweepSeries[], path: string): string {
  const xs = [...new Set(series.flatMap((line) => line.points.map((point) => point.x)))].sort(
    (a, b) => a - b,
  );
  const head = `<tr><th>policy</th>${xs.map((value) => `<th class="num">${escapeXml(String(value))}</th>`).join('')}</tr>`;
  const rows = series.map((line) => {
    const cells = xs.map((value) => {
      const point = line.points.find((candidate) => candidate.x === value);
      if (point === undefined || point.mean === null) return '<td class="num">-</td>';
      // No ± where every repeat gave the same (none against itself), as the terminal's table.
      const ci = point.ci95 === null || point.ci95 === 0 ? '' : ` ± ${(point.ci95 * 100).toFixed(1)}`;
      return `<td class="num">${(point.mean * 100).toFixed(1)}%${ci}</td>`;
    });
    return `<tr data-policy="${escapeXml(line.policy)}"><td>${escapeXml(line.policy)}</td>${cells.join('')}</tr>`;
  });
  return `<table class="sweep-figures" data-mix="${escapeXml(mix)}"><caption>overhead vs none on ${escapeXml(mix)}, by ${escapeXml(path)}</caption><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The chart of one mix of a sweep (the report's and the standalone SVG's). */
function mixChart(
  input: Omit<SweepReportInput, 'title' | 'run'>,
  chart: SweepReportInput['charts'][number],
  index: number,
): string {
  return sweepChart({
    id: sweepChartId(index),
    mix: chart.mix,
    path: input.path,
    xLabel: input.xLabel,
    scale: input.scale,
    series: chart.series,
    bands: input.bands,
  });
}

/**
 * The sweep's charts as one standalone SVG document (`sweep --svg`): each mix's chart under the other,
 * with its own style sheet and a white background, for a README or a slide. It carries no script and
 * fetches nothing, like the HTML report.
 */
export function renderSweepSvg(input: Omit<SweepReportInput, 'title' | 'run'>): string {
  const charts = input.charts.map((chart, index) => mixChart(input, chart, index));
  const heights = charts.map((svg) => Number(/ height="([0-9.]+)"/.exec(svg)?.[1] ?? 0));
  const headingHeight = 22;
  let top = 0;
  const parts = charts.map((svg, index) => {
    const heading = `<text class="heading" x="8" y="${top + 16}">${escapeXml(`Overhead vs none on ${input.charts[index].mix}`)}</text>`;
    // A nested <svg> keeps each chart's own coordinates; only its position changes.
    const placed = svg.replace('<svg ', `<svg x="0" y="${top + headingHeight}" `);
    top += headingHeight + heights[index];
    return `${heading}\n${placed}`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${chartWidth} ${top}" width="${chartWidth}" height="${top}" font-family="system-ui, sans-serif" font-size="11">`,
    `<style>${chartStyles}${sweepChartStyles}svg .heading { fill: #222; font-size: 14px; font-weight: 700; }</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** The whole sweep report as one HTML string. */
export function renderSweepReport(input: SweepReportInput): string {
  const matched = input.charts.reduce(
    (sum, chart) => sum + bandsFor({ ...chart, path: input.path, bands: input.bands }).length,
    0,
  );
  const sections = input.charts.map(
    (chart, index) =>
      `<section class="sweep" data-mix="${escapeXml(chart.mix)}"><h2>Overhead vs none on ${escapeXml(chart.mix)}</h2>` +
      mixChart(input, chart, index) +
      figuresTable(chart.mix, chart.series, input.path) +
      '</section>',
  );
  const bandsNote =
    matched > 0
      ? `<p>Dashed boxes are published figures (${matched} on these charts): hover one for its source.</p>`
      : '<p class="dim">No published figure matches these policies, mixes and this field; none is drawn.</p>';
  return htmlPage(
    input.title,
    `Overhead vs none (1 − guest work / guest work of none in the same repeat) against ${escapeXml(input.path)}; each point the mean over the repeats, shaded its 95% CI.`,
    [
      ...sections,
      `<section id="published"><h2>Published figures</h2>${bandsNote}</section>`,
      `<section id="run"><h2>Run</h2>${machineTable(input.run)}</section>`,
    ],
    sweepStyles,
  );
}
