import { assert } from '../assert.js';
import { modeNames } from '../cpu/modes.js';
import type { KickPair, ModeSlice } from './perfetto.js';

/**
 * Hand-written inline SVG charts for the HTML report: no chart library, no fonts or images fetched,
 * nothing but markup. Every chart is an `<svg>` with an `id`, a `<title>` (its accessible name) and a
 * `<desc>`; every bar and slice has its own `<title>`, which browsers show as a tooltip.
 */

/** Escapes text for HTML/SVG element content and double-quoted attribute values. */
export function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** A number for an SVG coordinate: two decimals are finer than a pixel. */
const px = (value: number) => Number(value.toFixed(2)).toString();

/** Distinct colors for policies (or any series), in order of first appearance. */
export const seriesColors = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
] as const;

/** Mode colors of the timeline: guest green, isolated blue, secrets (full, vmm) red and purple. */
export const modeColors: Record<string, string> = {
  guest: '#43a047',
  isolated: '#1e88e5',
  full: '#e53935',
  held: '#fb8c00',
  idle: '#bdbdbd',
  vmm: '#8e24aa',
};

/**
 * About `count` round tick values (1, 2 or 5 times a power of ten apart) from at or below `low` to at
 * or above `high`, so the first and last tick can serve as the axis range.
 */
export function niceTicks(low: number, high: number, count = 5): number[] {
  assert(high > low, `tick range ${low}..${high} is not empty`);
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough) ?? 10 * power;
  const first = Math.floor(low / step + 1e-9);
  const last = Math.ceil(high / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

export interface Bar {
  label: string;
  /** null: not measured (drawn as "n/a", no bar). */
  value: number | null;
  color: string;
  /** Data attributes for the bar (tests and scripts find bars by them). */
  data?: Record<string, string>;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarChart {
  id: string;
  title: string;
  description: string;
  groups: BarGroup[];
  format: (value: number) => string;
  /** Include this value in the axis range (e.g. 1 for shares, so 100% is the full width). */
  domainMax?: number;
}

export const chartWidth = 760;
const barLabelWidth = 170;
const barValueWidth = 70;
const barRowHeight = 20;
const barGroupHeaderHeight = 22;
const axisHeight = 24;

/** Horizontal bars in groups (one group per mix, one bar per policy), with a zero line and ticks. */
export function barChart(chart: BarChart): string {
  const values = chart.groups
    .flatMap((group) => group.bars.map((bar) => bar.value))
    .filter((v) => v !== null);
  let low = Math.min(0, ...values);
  let high = Math.max(0, chart.domainMax ?? 0, ...values);
  if (high === low) high = low + 1;
  const ticks = niceTicks(low, high);
  low = ticks[0];
  high = ticks[ticks.length - 1];
  const plotLeft = barLabelWidth;
  const plotWidth = chartWidth - barLabelWidth - barValueWidth;
  const x = (value: number) => plotLeft + ((value - low) / (high - low)) * plotWidth;
  const rows = chart.groups.reduce((sum, group) => sum + group.bars.length, 0);
  const height = axisHeight + chart.groups.length * barGroupHeaderHeight + rows * barRowHeight + 8;

  const parts: string[] = [];
  for (const tick of ticks) {
    parts.push(
      `<line class="grid" x1="${px(x(tick))}" x2="${px(x(tick))}" y1="${axisHeight - 4}" y2="${height}"/>`,
      `<text class="tick" x="${px(x(tick))}" y="${axisHeight - 8}" text-anchor="middle">${escapeXml(chart.format(tick))}</text>`,
    );
  }
  let y = axisHeight;
  for (const group of chart.groups) {
    parts.push(`<text class="group" x="4" y="${y + 15}">${escapeXml(group.label)}</text>`);
    y += barGroupHeaderHeight;
    for (const bar of group.bars) {
      const data = Object.entries(bar.data ?? {})
        .map(([key, value]) => ` data-${key}="${escapeXml(value)}"`)
        .join('');
      const text = bar.value === null ? 'n/a' : chart.format(bar.value);
      parts.push(
        `<text class="label" x="${barLabelWidth - 8}" y="${y + 14}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      );
      if (bar.value !== null) {
        const from = x(Math.min(0, bar.value));
        const width = Math.abs(x(bar.value) - x(0));
        parts.push(
          `<rect class="bar" x="${px(from)}" y="${y + 3}" width="${px(width)}" height="${barRowHeight - 6}" fill="${bar.color}"${data}>` +
            `<title>${escapeXml(`${group.label} / ${bar.label}: ${text}`)}</title></rect>`,
        );
      }
      const textX = bar.value === null ? x(0) + 4 : Math.max(x(bar.value), x(0)) + 4;
      parts.push(`<text class="value" x="${px(textX)}" y="${y + 14}">${escapeXml(text)}</text>`);
      y += barRowHeight;
    }
  }
  parts.push(`<line class="zero" x1="${px(x(0))}" x2="${px(x(0))}" y1="${axisHeight - 4}" y2="${height}"/>`);
  return svgFrame(chart.id, chart.title, chart.description, height, parts);
}

export interface Timeline {
  id: string;
  title: string;
  description: string;
  threads: number;
  slices: readonly ModeSlice[];
  kicks: readonly KickPair[];
  violations: readonly { thread: number; timeCycles: number; id: string }[];
  fromCycles: number;
  toCycles: number;
  /** How many time units make a microsecond (3,000 cycles at 3 GHz; 1,000 for nanoseconds). */
  unitsPerMicrosecond: number;
}

const timelineLabelWidth = 56;
const timelineRowHeight = 22;
const legendHeight = 26;

/** One row per hyperthread, colored mode slices, kick arrows and violation marks, over a window. */
export function timelineChart(timeline: Timeline): string {
  const { fromCycles, toCycles } = timeline;
  assert(toCycles > fromCycles, `timeline window ${fromCycles}..${toCycles} is not empty`);
  const plotWidth = chartWidth - timelineLabelWidth - 10;
  const x = (time: number) =>
    timelineLabelWidth +
    ((Math.min(Math.max(time, fromCycles), toCycles) - fromCycles) / (toCycles - fromCycles)) * plotWidth;
  const rowY = (thread: number) => axisHeight + thread * timelineRowHeight;
  const height = axisHeight + timeline.threads * timelineRowHeight + legendHeight + 6;
  const parts: string[] = [];
  const ticks = niceTicks(fromCycles / timeline.unitsPerMicrosecond, toCycles / timeline.unitsPerMicrosecond);
  for (const tick of ticks) {
    const time = tick * timeline.unitsPerMicrosecond;
    if (time < fromCycles || time > toCycles) continue;
    const at = x(time);
    parts.push(
      `<line class="grid" x1="${px(at)}" x2="${px(at)}" y1="${axisHeight - 4}" y2="${rowY(timeline.threads)}"/>`,
      `<text class="tick" x="${px(at)}" y="${axisHeight - 8}" text-anchor="middle">${escapeXml(`${tick} µs`)}</text>`,
    );
  }
  for (let thread = 0; thread < timeline.threads; thread++) {
    parts.push(`<text class="label" x="4" y="${rowY(thread) + 15}">ht${thread}</text>`);
  }
  for (const slice of timeline.slices) {
    if (slice.endCycles <= fromCycles || slice.startCycles >= toCycles) continue;
    const name = modeNames[slice.mode] ?? `mode ${slice.mode}`;
    const left = x(slice.startCycles);
    const width = x(slice.endCycles) - left;
    parts.push(
      `<rect class="slice mode-${escapeXml(name)}" x="${px(left)}" y="${rowY(slice.thread) + 3}" width="${px(width)}" height="${timelineRowHeight - 6}" fill="${modeColors[name] ?? '#000'}" data-mode="${escapeXml(name)}" data-thread="${slice.thread}">` +
        `<title>${escapeXml(`ht${slice.thread} ${name}: ${Math.round(slice.startCycles)}..${Math.round(slice.endCycles)} (${Math.round(slice.endCycles - slice.startCycles)})`)}</title></rect>`,
    );
  }
  for (const kick of timeline.kicks) {
    if (kick.takenCycles < fromCycles || kick.sentCycles > toCycles) continue;
    const y1 = rowY(kick.fromThread) + timelineRowHeight / 2;
    const y2 = rowY(kick.toThread) + timelineRowHeight / 2;
    parts.push(
      `<line class="kick" x1="${px(x(kick.sentCycles))}" y1="${px(y1)}" x2="${px(x(kick.takenCycles))}" y2="${px(y2)}" marker-end="url(#${timeline.id}-arrow)">` +
        `<title>${escapeXml(`kick ht${kick.fromThread} -> ht${kick.toThread}: sent ${Math.round(kick.sentCycles)}, taken ${Math.round(kick.takenCycles)}`)}</title></line>`,
    );
  }
  for (const violation of timeline.violations) {
    if (violation.timeCycles < fromCycles || violation.timeCycles > toCycles || violation.thread < 0)
      continue;
    const cx = x(violation.timeCycles);
    const top = rowY(violation.thread);
    parts.push(
      `<path class="violation" d="M${px(cx)} ${top + 1} l-5 0 l5 8 l5 -8 z" data-id="${escapeXml(violation.id)}">` +
        `<title>${escapeXml(`${violation.id} on ht${violation.thread} at ${Math.round(violation.timeCycles)}`)}</title></path>`,
    );
  }
  let legendX = timelineLabelWidth;
  const legendY = rowY(timeline.threads) + 10;
  for (const [name, color] of Object.entries(modeColors)) {
    parts.push(
      `<rect class="legend" x="${legendX}" y="${legendY}" width="12" height="12" fill="${color}"/>`,
      `<text class="label" x="${legendX + 16}" y="${legendY + 11}">${name}</text>`,
    );
    legendX += 80;
  }
  parts.push(
    `<line class="kick" x1="${legendX}" y1="${legendY + 6}" x2="${legendX + 24}" y2="${legendY + 6}" marker-end="url(#${timeline.id}-arrow)"/>`,
    `<text class="label" x="${legendX + 30}" y="${legendY + 11}">kick</text>`,
    `<path class="violation" d="M${legendX + 76} ${legendY + 2} l-5 0 l5 8 l5 -8 z"/>`,
    `<text class="label" x="${legendX + 86}" y="${legendY + 11}">violation</text>`,
  );
  const defs =
    `<defs><marker id="${timeline.id}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">` +
    '<path d="M0 0 L10 5 L0 10 z" fill="#333"/></marker></defs>';
  return svgFrame(timeline.id, timeline.title, timeline.description, height, [defs, ...parts]);
}

export function svgFrame(
  id: string,
  title: string,
  description: string,
  height: number,
  parts: string[],
): string {
  return [
    `<svg id="${escapeXml(id)}" class="chart" role="img" aria-labelledby="${escapeXml(id)}-title ${escapeXml(id)}-desc" viewBox="0 0 ${chartWidth} ${height}" width="${chartWidth}" height="${height}">`,
    `<title id="${escapeXml(id)}-title">${escapeXml(title)}</title>`,
    `<desc id="${escapeXml(id)}-desc">${escapeXml(description)}</desc>`,
    ...parts,
    '</svg>',
  ].join('\n');
}
