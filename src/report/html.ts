import { assert } from '../assert.js';
import type { RunResult } from '../backend/result.js';
import type { WorkersBenchReport } from '../backend/workers/benchmarks.js';
import { EventKind, type LoggedEvent } from '../invariants/event-log.js';
import { type InvariantId, invariantIds, invariantTitles, type Violation } from '../invariants/violation.js';
import { policies, safePolicyNames } from '../policy/index.js';
import { writeFileAtomic } from './atomic-write.js';
import { byReasonCells, byReasonHeader } from './by-reason.js';
import { kickReportSection } from './latency.js';
import { defaultCyclesPerMicrosecond, kickPairs, modeSlices } from './perfetto.js';
import { type BarGroup, barChart, escapeXml, seriesColors, timelineChart } from './svg.js';

/**
 * The self-contained HTML report (issue 6): one file, no network — inline CSS, inline SVG, no
 * scripts, and a Content-Security-Policy that forbids fetching anything — so it can be mailed,
 * attached to a CI run or opened offline.
 *
 * Sections: the machine, overhead vs `none` per policy and mix, exits handled in isolation, kicks per
 * 1,000 exits, a violations table with a verdict per run (and its first violation records), and a
 * mode timeline of a short window (one row per hyperthread).
 */
export interface HtmlTimeline {
  events: readonly LoggedEvent[];
  /** Hyperthreads of the machine (rows of the timeline). */
  threads: number;
  fromCycles: number;
  toCycles: number;
  /** Time units per microsecond: 3,000 for sim cycles (default), 1,000 for workers nanoseconds. */
  unitsPerMicrosecond?: number;
  /** Which run the events come from, e.g. "coschedule on sysbench-cpu, seed 5". */
  label?: string;
}

export interface HtmlReportInput {
  results: readonly RunResult[];
  title?: string;
  /** Shown as a key/value table (e.g. the machine summary or config). */
  machine?: object;
  timeline?: HtmlTimeline;
  /** `bench --backend workers --kick`: the kick latency percentiles and histograms (report/latency.ts). */
  kick?: WorkersBenchReport;
}

/** Records shown per broken invariant of a run: enough to act on, short enough to read. */
const recordsShownPerInvariant = 2;
/** Kept events shown under a record. */
const recentEventsShown = 12;

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;

/** 1 - guestShare / guestShare(none on the same mix, backend and seed); null without that baseline. */
export function overheadOf(result: RunResult, results: readonly RunResult[]): number | null {
  if (result.overheadVsNone !== null) return result.overheadVsNone;
  const baseline = results.find(
    (other) =>
      other.policy === 'none' &&
      other.mix === result.mix &&
      other.backend === result.backend &&
      other.seed === result.seed,
  );
  if (!baseline || baseline.guestShare <= 0) return null;
  return 1 - result.guestShare / baseline.guestShare;
}

export type Verdict = 'holds' | 'caught' | 'broken';

/**
 * holds: no violation. caught: an unsafe-by-design policy (none, l1d-flush, a planted bug, ...) broke
 * invariants, as it should — the monitor works. broken: a policy that should be safe (or one the
 * report does not know) broke one.
 */
export function verdictOf(result: RunResult): Verdict {
  const broken = invariantIds.some((id) => result.violations[id] > 0);
  if (!broken) return 'holds';
  // A bench result says whether its policy is meant to be safe (a user's module may say `safe: false`).
  const meant = (result as { meantToBeSafe?: boolean }).meantToBeSafe;
  const knownUnsafe =
    meant === false ||
    (meant === undefined &&
      result.policy in policies &&
      !(safePolicyNames as readonly string[]).includes(result.policy));
  return knownUnsafe ? 'caught' : 'broken';
}

function groupsBy(
  results: readonly RunResult[],
  value: (result: RunResult) => number | null,
  colorOf: (policy: string) => string,
): BarGroup[] {
  const mixes = [...new Set(results.map((result) => result.mix))];
  return mixes.map((mix) => ({
    label: mix,
    bars: results
      .filter((result) => result.mix === mix)
      .map((result) => ({
        label: results.some(
          (other) => other !== result && other.policy === result.policy && other.mix === mix,
        )
          ? `${result.policy} (${result.backend}, seed ${result.seed})`
          : result.policy,
        value: value(result),
        color: colorOf(result.policy),
        data: { policy: result.policy, mix, backend: result.backend },
      })),
  }));
}

function formatRecord(record: Violation): string {
  const threads = record.threads.map((thread, i) => `ht${thread} (${record.modes[i] ?? '?'})`).join(', ');
  const where: string[] = [];
  if (record.address) where.push(`address ${record.address}`);
  if (record.line)
    where.push(`line: pfn ${record.line.pfn}, line ${record.line.lineInPage}, domain ${record.line.domain}`);
  const recent = (record.recentEvents ?? []).slice(-recentEventsShown);
  return [
    '<li class="record">',
    `<b>${escapeXml(record.id)}</b> ${escapeXml(invariantTitles[record.id] ?? '')}<br>`,
    `${escapeXml(record.detail)}<br>`,
    `<span class="dim">threads ${escapeXml(threads)}; time ${Math.round(record.timeCycles)}; step ${record.step}`,
    where.length > 0 ? `; ${escapeXml(where.join('; '))}` : '',
    '</span>',
    recent.length > 0 ? `<pre>${escapeXml(recent.join('\n'))}</pre>` : '',
    '</li>',
  ].join('');
}

function violationsTable(results: readonly RunResult[]): string {
  const rows = results.map((result) => {
    const verdict = verdictOf(result);
    const broken = invariantIds.filter((id) => result.violations[id] > 0);
    const counts =
      broken.length === 0
        ? '0'
        : broken
            .map(
              (id) =>
                `<span class="badge" title="${escapeXml(invariantTitles[id])}">${id} × ${result.violations[id]}</span>`,
            )
            .join(' ');
    const verdictText = {
      holds: `holds every invariant in ${result.exits} exits`,
      caught: `caught: unsafe by design, broke ${broken.join(', ')}`,
      broken: `BROKEN: broke ${broken.join(', ')}`,
    }[verdict];
    const records = broken.flatMap((id) =>
      result.violationRecords.filter((record) => record.id === id).slice(0, recordsShownPerInvariant),
    );
    const detail =
      records.length > 0
        ? `<tr class="records"><td colspan="7"><details><summary>first violations of ${escapeXml(result.policy)} on ${escapeXml(result.mix)}</summary><ul>${records.map(formatRecord).join('')}</ul></details></td></tr>`
        : '';
    return (
      `<tr class="verdict-${verdict}" data-policy="${escapeXml(result.policy)}" data-mix="${escapeXml(result.mix)}">` +
      `<td>${escapeXml(result.policy)}</td><td>${escapeXml(result.mix)}</td><td>${escapeXml(result.backend)}</td>` +
      `<td class="num">${result.seed}</td><td class="num">${result.exits}</td><td>${counts}${result.deadlocked ? ' <span class="badge">deadlocked</span>' : ''}</td>` +
      `<td class="verdict">${escapeXml(verdictText)}</td></tr>${detail}`
    );
  });
  return [
    '<table id="violations-table"><thead><tr><th>policy</th><th>mix</th><th>backend</th><th>seed</th><th>exits</th><th>violations</th><th>verdict</th></tr></thead>',
    `<tbody>${rows.join('\n')}</tbody></table>`,
  ].join('\n');
}

/**
 * Each run's exits by reason and handler variant, as perf kvm stat report shows them (the table of
 * `bench --by-reason`), each in a details element: the first run open, the others one click away.
 */
function byReasonSection(results: readonly RunResult[]): string {
  const header = `<tr>${byReasonHeader.map((name) => `<th>${escapeXml(name)}</th>`).join('')}</tr>`;
  const runs = results.map((result, index) => {
    const rows = result.byReason.map(
      (row) =>
        `<tr data-reason="${escapeXml(row.reason)}" data-variant="${escapeXml(row.variant)}">${byReasonCells(
          row,
        )
          .map((cell, column) =>
            column < 2 ? `<td>${escapeXml(cell)}</td>` : `<td class="num">${escapeXml(cell)}</td>`,
          )
          .join('')}</tr>`,
    );
    return (
      `<details class="by-reason" data-policy="${escapeXml(result.policy)}" data-mix="${escapeXml(result.mix)}"${index === 0 ? ' open' : ''}>` +
      `<summary>${escapeXml(result.policy)} on ${escapeXml(result.mix)} (${escapeXml(result.backend)}): ${result.byReason.length} exit reasons and variants</summary>` +
      `<table><thead>${header}</thead><tbody>${rows.join('')}</tbody></table></details>`
    );
  });
  return [
    '<section id="by-reason"><h2>VM exits by reason</h2>',
    '<p>Per exit reason and handler variant, as <code>perf kvm stat report</code> shows them, sorted by total time from exit to the next entry (in cycles): how often, how much of the time, how often handled without leaving isolation, and the switches to full and kicks it cost.</p>',
    ...runs,
    '</section>',
  ].join('\n');
}

/** A key/value table (the machine, a run's settings); long values are cut. */
export function machineTable(machine: object): string {
  const rows = Object.entries(machine).map(([key, value]) => {
    let text = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    if (text.length > 300) text = `${text.slice(0, 297)}...`;
    return `<tr><th>${escapeXml(key)}</th><td>${escapeXml(text)}</td></tr>`;
  });
  return `<table id="machine-table" class="kv"><tbody>${rows.join('')}</tbody></table>`;
}

function timelineSection(timeline: HtmlTimeline): string {
  const unitsPerMicrosecond = timeline.unitsPerMicrosecond ?? defaultCyclesPerMicrosecond;
  const events = timeline.events;
  const slices = modeSlices(events, timeline.threads, timeline.toCycles);
  const violations = events
    .filter((event) => event.kind === EventKind.violation)
    .map((event) => ({ thread: event.thread, timeCycles: event.timeCycles, id: `INV-${event.a}` }));
  const chart = timelineChart({
    id: 'chart-timeline',
    title: `Mode timeline, ${Math.round(timeline.fromCycles)}..${Math.round(timeline.toCycles)}`,
    description:
      'One row per hyperthread: its mode over time (guest, isolated, full, held, idle, vmm), kicks as arrows from kicker to the exit they caused, violations as red marks.',
    threads: timeline.threads,
    slices,
    kicks: kickPairs(events, timeline.threads),
    violations,
    fromCycles: timeline.fromCycles,
    toCycles: timeline.toCycles,
    unitsPerMicrosecond,
  });
  const unit = unitsPerMicrosecond === defaultCyclesPerMicrosecond ? 'virtual cycles at 3 GHz' : 'time units';
  const heading = timeline.label ? `Mode timeline: ${escapeXml(timeline.label)}` : 'Mode timeline';
  return `<section id="timeline"><h2>${heading}</h2><p>A window of ${Math.round(timeline.toCycles - timeline.fromCycles)} ${unit} (${((timeline.toCycles - timeline.fromCycles) / unitsPerMicrosecond).toFixed(1)} µs). Hover a slice, arrow or mark for its details.</p>${chart}</section>`;
}

/** The charts' own rules: also the style sheet of a standalone SVG (the sweep's `--svg`). */
export const chartStyles = `svg .grid { stroke: #eee; } svg .zero { stroke: #555; } svg .tick { fill: #666; } svg .label { fill: #222; }
svg .group { fill: #222; font-weight: 700; } svg .value { fill: #444; } svg .kick { stroke: #333; stroke-width: 1.2; }
svg .violation { fill: #c62828; stroke: #fff; stroke-width: 0.5; }
`;

const styles = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 820px; color: #222; background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.dim, .meta { color: #666; } pre { font-size: 12px; background: #f6f6f6; padding: 6px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { padding: 3px 6px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td:nth-child(-n+3) { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; } table.kv th { width: 30%; font-weight: 600; }
.badge { display: inline-block; padding: 0 5px; border-radius: 3px; background: #eee; margin: 1px; white-space: nowrap; }
tr.verdict-holds td.verdict { color: #2e7d32; } tr.verdict-caught td.verdict { color: #ef6c00; } tr.verdict-broken td.verdict { color: #c62828; font-weight: 700; }
tr.verdict-broken .badge, tr.verdict-caught .badge { background: #fde0dc; }
ul { padding-left: 18px; } li.record { margin-bottom: 8px; }
svg.chart { display: block; margin: 8px 0; max-width: 100%; height: auto; font-size: 11px; }
${chartStyles}`;

/** The whole report as one HTML string. */
export function renderHtmlReport(comparison: HtmlReportInput): string {
  const { results } = comparison;
  assert(Array.isArray(results), 'renderHtmlReport needs a results array');
  const title = comparison.title ?? 'asi-emu policy comparison';
  const policyOrder = [...new Set(results.map((result) => result.policy))];
  const colorOf = (policy: string) => seriesColors[policyOrder.indexOf(policy) % seriesColors.length];
  const backends = [...new Set(results.map((result) => result.backend))].join(', ');
  const seeds = [...new Set(results.map((result) => result.seed))].join(', ');

  const sections: string[] = [];
  if (comparison.machine)
    sections.push(`<section id="machine"><h2>Machine</h2>${machineTable(comparison.machine)}</section>`);
  if (comparison.kick) sections.push(kickReportSection(comparison.kick));
  if (results.length === 0) {
    if (!comparison.kick) sections.push('<section id="no-results"><p>No runs in this report.</p></section>');
  } else {
    sections.push(
      '<section id="overhead"><h2>Overhead vs none</h2>',
      '<p>Guest time lost against the unsafe <code>none</code> baseline on the same mix and seed: 1 − guest work / guest work of none (guest progress at SMT speed). Lower is cheaper.</p>',
      barChart({
        id: 'chart-overhead',
        title: 'Overhead vs none, per policy and mix',
        description:
          'Horizontal bars: for each exit mix, one bar per policy; the value is 1 - guestShare / guestShare(none).',
        groups: groupsBy(results, (result) => overheadOf(result, results), colorOf),
        format: percent,
      }),
      '</section>',
      '<section id="isolation"><h2>Exits handled in isolation</h2>',
      '<p>Share of workload exits handled entirely in the isolated KVM address space, with no switch to the full kernel address space.</p>',
      barChart({
        id: 'chart-isolated',
        title: 'Exits handled in isolation, per policy and mix',
        description: 'Horizontal bars: share of workload exits that never left the kvm:N address space.',
        groups: groupsBy(results, (result) => result.isolatedExitShare, colorOf),
        format: percent,
        domainMax: 1,
      }),
      '</section>',
      '<section id="kicks"><h2>Kicks per 1,000 exits</h2>',
      '<p>Sibling kicks (IPIs that force a sibling hyperthread out of the guest) sent per 1,000 workload exits.</p>',
      barChart({
        id: 'chart-kicks',
        title: 'Kicks per 1,000 exits, per policy and mix',
        description: 'Horizontal bars: sibling kicks sent per 1,000 workload exits.',
        groups: groupsBy(results, (result) => result.kicksPer1kExits, colorOf),
        format: (value) => value.toFixed(0),
      }),
      '</section>',
      byReasonSection(results),
      '<section id="invariants"><h2>Invariants</h2>',
      '<p>Violations per run with a verdict: <i>holds</i> (none), <i>caught</i> (an unsafe-by-design policy broke them, which shows the monitor can fail), <i>BROKEN</i> (a policy meant to be safe broke one).</p>',
      violationsTable(results),
      `<p class="dim">${invariantIds.map((id: InvariantId) => `${id}: ${escapeXml(invariantTitles[id])}`).join('<br>')}</p>`,
      '</section>',
    );
  }
  if (comparison.timeline) sections.push(timelineSection(comparison.timeline));

  return htmlPage(
    title,
    results.length === 0 && comparison.kick
      ? 'Sibling-kick latency on the workers backend (real threads).'
      : `${results.length} runs; backend ${escapeXml(backends || '-')}; seed ${escapeXml(seeds || '-')}.`,
    sections,
  );
}

/**
 * A self-contained page around `sections` (HTML): the report's styles, and a Content-Security-Policy
 * under which nothing is fetched. `meta` (HTML) is the line under the title; `extraStyles`, CSS of
 * the page's own charts.
 */
export function htmlPage(title: string, meta: string, sections: readonly string[], extraStyles = ''): string {
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // Nothing may be fetched: no scripts, no fonts, no images, no frames.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${styles}${extraStyles}</style>`,
    '</head>',
    '<body>',
    `<header><h1>${escapeXml(title)}</h1><p class="meta">${meta} Generated by asi-emu.</p></header>`,
    ...sections,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Writes the report atomically. */
export function writeHtmlReport(path: string, comparison: HtmlReportInput): void {
  writeFileAtomic(path, renderHtmlReport(comparison));
}
