import { assert } from '../assert.js';
import type { KickFigures, WorkersBenchReport } from '../backend/workers/benchmarks.js';
import { type LatencyDistribution, logBucketEdgeNs, p999SamplesMin } from '../backend/workers/latency.js';
import { formatTable } from './machine-table.js';
import { chartWidth, escapeXml, seriesColors, svgFrame } from './svg.js';

/**
 * `bench --backend workers --kick` for people (issue 20, item 4): the kick round trip and the raw
 * ping-pongs as percentiles, and their log-scale histograms, as text on a terminal and as SVG in the
 * HTML report (`--report`).
 */

/** A latency for people: 652 ns, 11.4 µs, 1.25 ms. */
export function formatNs(ns: number | null): string {
  if (ns === null) return '-';
  if (ns < 1_000) return `${Math.round(ns)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toPrecision(3)} µs`;
  return `${(ns / 1_000_000).toPrecision(3)} ms`;
}

/** The series of a kick measurement, in the order tables and charts show them. */
export function kickSeries(
  kick: KickFigures,
  kickName: string,
): { name: string; latency: LatencyDistribution }[] {
  return [
    { name: kickName, latency: kick },
    { name: 'raw spin ping-pong', latency: kick.rawSpin },
    { name: 'raw wait/notify ping-pong', latency: kick.rawWait },
  ];
}

/** Percentiles per series: one row each, and the ratios on p50 and p99 under them. */
export function formatLatencyTable(kick: KickFigures, kickName: string): string {
  const rows = kickSeries(kick, kickName).map(({ name, latency }) => [
    name,
    latency.samples,
    formatNs(latency.p50Ns),
    formatNs(latency.p90Ns),
    formatNs(latency.p99Ns),
    formatNs(latency.p999Ns),
    formatNs(latency.maxNs),
  ]);
  const table = formatTable(['round trip', 'samples', 'p50', 'p90', 'p99', 'p99.9', 'max'], rows);
  return `${table}\nratio to raw ${kick.baseline === 'spin' ? 'spin' : 'wait/notify'}: p50 ${kick.ratioP50.toFixed(2)}, p99 ${kick.ratioP99.toFixed(2)}`;
}

/** Widest bar of the text histogram, in characters. */
const textBarWidthMax = 40;

/**
 * A log-scale histogram as text: one line per bucket (4 per decade of latency), from the fastest
 * sample's to the slowest's, a bar as long as its count (at least one character when not empty).
 */
export function formatLatencyHistogram(name: string, latency: LatencyDistribution): string {
  const { counts, firstBucket, bucketsPerDecade } = latency.histogram;
  const most = Math.max(...counts);
  assert(most > 0, 'a histogram has samples');
  const ranges = counts.map(
    (_, index) =>
      `${formatNs(logBucketEdgeNs(firstBucket + index, bucketsPerDecade))} - ${formatNs(logBucketEdgeNs(firstBucket + index + 1, bucketsPerDecade))}`,
  );
  const rangeWidth = Math.max(...ranges.map((range) => range.length));
  const lines = counts.map((count, index) => {
    const bar = count === 0 ? '' : '#'.repeat(Math.max(1, Math.round((count / most) * textBarWidthMax)));
    const share = `${((count / latency.samples) * 100).toFixed(count * 1000 < latency.samples ? 2 : 1)}%`;
    return `  ${ranges[index].padStart(rangeWidth)} | ${bar.padEnd(textBarWidthMax)} ${count} (${share})`;
  });
  return [`${name}: ${latency.samples} round trips, log-scale buckets`, ...lines].join('\n');
}

const histogramHeight = 236;
const plotTop = 42;
const plotBottom = 40;
const plotLeft = 56;
const plotRight = 32;
/** Percentile labels closer than this (px) go on separate lines. */
const labelGapMin = 90;

/**
 * A log-scale histogram as SVG: a bar per bucket (4 per decade of latency) on a log axis of latency,
 * bar heights on a log axis of counts too (a p99.9 tail of ten trips stays visible beside thousands),
 * with the p50, p99 and p99.9 marked.
 */
export function latencyHistogramSvg(
  id: string,
  name: string,
  latency: LatencyDistribution,
  color: string,
): string {
  const { counts, firstBucket, bucketsPerDecade } = latency.histogram;
  const plotWidth = chartWidth - plotLeft - plotRight;
  const plotHeight = histogramHeight - plotTop - plotBottom;
  // The x axis spans whole decades around the buckets.
  const fromDecade = Math.floor(firstBucket / bucketsPerDecade);
  const toDecade = Math.ceil((firstBucket + counts.length) / bucketsPerDecade);
  const decades = Math.max(1, toDecade - fromDecade);
  const x = (ns: number) => plotLeft + ((Math.log10(Math.max(1, ns)) - fromDecade) / decades) * plotWidth;
  const countDecades = Math.max(1, Math.ceil(Math.log10(Math.max(...counts) + 1)));
  const y = (count: number) => plotTop + plotHeight - (Math.log10(count + 1) / countDecades) * plotHeight;
  const parts: string[] = [];
  for (let decade = fromDecade; decade <= toDecade; decade++) {
    const at = x(10 ** decade);
    parts.push(
      `<line class="grid" x1="${at.toFixed(2)}" x2="${at.toFixed(2)}" y1="${plotTop}" y2="${plotTop + plotHeight}"/>`,
      `<text class="tick" x="${at.toFixed(2)}" y="${plotTop + plotHeight + 14}" text-anchor="middle">${escapeXml(formatNs(10 ** decade))}</text>`,
    );
  }
  for (let power = 0; power < countDecades; power++) {
    const count = 10 ** power;
    const at = y(count);
    parts.push(
      `<line class="grid" x1="${plotLeft}" x2="${plotLeft + plotWidth}" y1="${at.toFixed(2)}" y2="${at.toFixed(2)}"/>`,
      `<text class="tick" x="${plotLeft - 4}" y="${(at + 4).toFixed(2)}" text-anchor="end">${count}</text>`,
    );
  }
  counts.forEach((count, index) => {
    if (count === 0) return;
    const lowNs = logBucketEdgeNs(firstBucket + index, bucketsPerDecade);
    const highNs = logBucketEdgeNs(firstBucket + index + 1, bucketsPerDecade);
    const left = x(lowNs);
    const top = y(count);
    parts.push(
      `<rect class="bucket" x="${left.toFixed(2)}" y="${top.toFixed(2)}" width="${Math.max(1, x(highNs) - left - 1).toFixed(2)}" height="${(plotTop + plotHeight - top).toFixed(2)}" fill="${color}" data-count="${count}">` +
        `<title>${escapeXml(`${formatNs(lowNs)} - ${formatNs(highNs)}: ${count} round trips`)}</title></rect>`,
    );
  });
  const marks: [string, number | null][] = [
    ['p50', latency.p50Ns],
    ['p99', latency.p99Ns],
    ['p99.9', latency.p999Ns],
  ];
  let lastLabelAt = Number.NEGATIVE_INFINITY;
  let labelLine = 0;
  for (const [label, ns] of marks) {
    if (ns === null) continue;
    const at = x(ns);
    labelLine = at - lastLabelAt < labelGapMin ? 1 - labelLine : 0;
    lastLabelAt = at;
    const labelY = plotTop - 8 - labelLine * 14;
    parts.push(
      `<line class="percentile" x1="${at.toFixed(2)}" x2="${at.toFixed(2)}" y1="${labelY + 4}" y2="${plotTop + plotHeight}" stroke="#333" stroke-dasharray="3 2" data-percentile="${label}"/>`,
      `<text class="label" x="${(at + 3).toFixed(2)}" y="${labelY}">${escapeXml(`${label} ${formatNs(ns)}`)}</text>`,
    );
  }
  parts.push(
    `<text class="label" x="${plotLeft + plotWidth / 2}" y="${histogramHeight - 6}" text-anchor="middle">round trip (log scale); bar height: round trips (log scale)</text>`,
  );
  return svgFrame(
    id,
    `${name}: ${latency.samples} round trips`,
    `Histogram of ${name} round trips in log-scale buckets (${bucketsPerDecade} per decade), counts on a log scale, with p50, p99 and p99.9 marked.`,
    histogramHeight,
    parts,
  );
}

/** The kick measurements of a report with their names: the kick, and the oversubscribed one if run. */
export function kickMeasurements(report: WorkersBenchReport): [string, KickFigures][] {
  const measurements: [string, KickFigures][] = [];
  if (report.kick) measurements.push([`sibling kick (${report.kick.threads} threads)`, report.kick]);
  if (report.kickOversubscribed) {
    measurements.push([
      `sibling kick (${report.kickOversubscribed.threads} threads)`,
      report.kickOversubscribed,
    ]);
  }
  return measurements;
}

/** The report's section for a `--kick` run: a percentile table and a histogram per series. */
export function kickReportSection(report: WorkersBenchReport): string {
  const measurements = kickMeasurements(report);
  const parts: string[] = [
    '<section id="kick-latency"><h2>Kick latency</h2>',
    `<p>Round trips timed one by one on ${escapeXml(report.machine.cpuModel)} (${report.machine.cpus} CPUs), Node ${escapeXml(report.machine.node)}, net of the clock bracket. p99.9 needs ${p999SamplesMin.toLocaleString('en-US')} round trips or more.</p>`,
  ];
  measurements.forEach(([kickName, kick], measurement) => {
    const rows = kickSeries(kick, kickName).map(
      ({ name, latency }) =>
        `<tr><td>${escapeXml(name)}</td><td class="num">${latency.samples}</td>${[latency.p50Ns, latency.p90Ns, latency.p99Ns, latency.p999Ns, latency.maxNs].map((ns) => `<td class="num">${escapeXml(formatNs(ns))}</td>`).join('')}</tr>`,
    );
    parts.push(
      `<table class="latency" data-measurement="${measurement}"><thead><tr><th>round trip</th><th>samples</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
      `<p>Ratio to the raw ${kick.baseline === 'spin' ? 'spin' : 'wait/notify'} ping-pong (${kick.threads} threads on ${kick.cpus} CPUs): p50 ${kick.ratioP50.toFixed(2)}, p99 ${kick.ratioP99.toFixed(2)}.</p>`,
    );
    // The raw ping-pongs are the same in both measurements: drawn once.
    const series = kickSeries(kick, kickName).filter((_, index) => measurement === 0 || index === 0);
    series.forEach(({ name, latency }, index) => {
      parts.push(
        `<h3>${escapeXml(name)}: ${latency.samples} round trips</h3>`,
        latencyHistogramSvg(
          `chart-latency-${measurement}-${index}`,
          name,
          latency,
          seriesColors[(measurement * 3 + index) % seriesColors.length],
        ),
      );
    });
  });
  parts.push('</section>');
  return parts.join('\n');
}
