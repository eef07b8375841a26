import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/backend/result.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { EventKind } from '../../src/invariants/event-log.js';
import { zeroCounts } from '../../src/invariants/violation.js';
import { policyByName } from '../../src/policy/index.js';
import { overheadOf, renderHtmlReport, verdictOf, writeHtmlReport } from '../../src/report/html.js';
import { niceTicks } from '../../src/report/svg.js';
import { hasChromium, measureInChromium, screenshotInChromium } from '../helpers/chromium.js';
import { runWithEvents } from './run-with-events.js';

/** Temporary directories of this file, removed after its tests. */
const temporaryDirectories: string[] = [];
function temporaryDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of temporaryDirectories) rmSync(directory, { recursive: true, force: true });
});

function run(policy: string, mix: string): RunResult {
  const config = parseRunConfig({
    machine: { cores: 2, smt: 2, memoryMiB: 64, vms: [{ vcpus: 4, guestMemoryMiB: 1 }] },
    workload: { mix },
    run: { exits: 400, seed: 21 },
  });
  return runSim(config, policyByName(policy));
}

// asi first: the first policy's colour (blue) is checked on screen, and without ASI (issue 19) none draws
// no bar at all (its overhead, kicks and isolated share are 0).
const results = [
  ...['asi', 'none', 'l1d-flush', 'coschedule'].map((policy) => run(policy, 'sysbench-cpu')),
  ...['none', 'asi'].map((policy) => run(policy, 'idle-tracing')),
];
const traced = runWithEvents('coschedule', { run: { exits: 200, seed: 3 } });
const timeline = {
  events: traced.events,
  threads: traced.threads,
  fromCycles: 50_000,
  toCycles: 350_000,
  label: 'coschedule on sysbench-cpu <seed 3>',
};
const machine = { cores: 2, smt: 2, threads: 4, l1d: { sets: 64, ways: 12 } };
const html = renderHtmlReport({ results, title: 'test report', machine, timeline });

/** The `<svg id="...">...</svg>` element of a chart. */
function chart(id: string): string {
  const match = new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(html);
  expect(match, `chart ${id}`).not.toBeNull();
  return match?.[0] ?? '';
}

/** Widths of the bars of a chart, by policy and mix. */
function barWidths(svg: string): Map<string, number> {
  const widths = new Map<string, number>();
  for (const match of svg.matchAll(
    /<rect class="bar" [^>]*width="([\d.]+)"[^>]*data-policy="([^"]+)" data-mix="([^"]+)"/g,
  )) {
    widths.set(`${match[2]}/${match[3]}`, Number(match[1]));
  }
  return widths;
}

const byKey = (policy: string, mix: string) =>
  results.find((result) => result.policy === policy && result.mix === mix)!;

describe('HTML report', () => {
  it('has every chart with an id and a <title> first, and the violations table', () => {
    for (const id of ['chart-overhead', 'chart-isolated', 'chart-kicks', 'chart-timeline']) {
      expect(chart(id)).toMatch(
        new RegExp(`^<svg id="${id}"[^>]*role="img"[^>]*>\\n<title id="${id}-title">[^<]+</title>`),
      );
    }
    expect(html).toContain('<table id="violations-table">');
    expect(html).toContain('<table id="machine-table"');
    expect(html).toMatch(/<title>test report<\/title>/);
  });

  it('needs no network: no scripts, links, images or URLs, and a CSP that forbids fetching', () => {
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|https?:|src=|href=/i);
    for (const url of html.matchAll(/url\(([^)]*)\)/g)) expect(url[1]).toMatch(/^#/);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
  });

  it('bar lengths are proportional to the values (kicks per 1,000 exits)', () => {
    const widths = barWidths(chart('chart-kicks'));
    const coschedule = byKey('coschedule', 'sysbench-cpu');
    const asi = byKey('asi', 'sysbench-cpu');
    expect(coschedule.kicksPer1kExits).toBeGreaterThan(asi.kicksPer1kExits);
    expect(asi.kicksPer1kExits).toBeGreaterThan(0);
    const ratio = (widths.get('coschedule/sysbench-cpu') ?? 0) / (widths.get('asi/sysbench-cpu') ?? 1);
    expect(ratio).toBeCloseTo(coschedule.kicksPer1kExits / asi.kicksPer1kExits, 1);
    expect(widths.get('none/sysbench-cpu')).toBe(0);
    expect(widths.size).toBe(results.length);
  });

  it('overhead comes from the none baseline of the same mix when a result has none of its own', () => {
    const asi = byKey('asi', 'sysbench-cpu');
    expect(asi.overheadVsNone).toBeNull();
    const none = byKey('none', 'sysbench-cpu');
    expect(overheadOf(asi, results)).toBeCloseTo(1 - asi.guestShare / none.guestShare, 12);
    expect(overheadOf({ ...asi, overheadVsNone: 0.25 }, results)).toBe(0.25);
    expect(overheadOf(asi, [asi])).toBeNull();
    expect(chart('chart-overhead')).toContain(
      `${((1 - asi.guestShare / none.guestShare) * 100).toFixed(1)}%`,
    );
  });

  it('a negative value draws its bar left of the zero line; a missing one draws no bar but says n/a', () => {
    const asi = byKey('asi', 'sysbench-cpu');
    const page = renderHtmlReport({
      results: [
        { ...asi, policy: 'faster', overheadVsNone: -0.1 },
        { ...asi, policy: 'slower', overheadVsNone: 0.3 },
        { ...asi, policy: 'lonely', mix: 'other', overheadVsNone: null },
      ],
    });
    const svg = /<svg id="chart-overhead"[\s\S]*?<\/svg>/.exec(page)?.[0] ?? '';
    const zero = Number(/<line class="zero" x1="([\d.]+)"/.exec(svg)?.[1]);
    const rect = (policy: string) => {
      const match = new RegExp(
        `<rect class="bar" x="([\\d.]+)" y="[\\d.]+" width="([\\d.]+)"[^>]*data-policy="${policy}"`,
      ).exec(svg);
      return { x: Number(match?.[1]), width: Number(match?.[2]) };
    };
    expect(rect('faster').x + rect('faster').width).toBeCloseTo(zero, 1);
    expect(rect('slower').x).toBeCloseTo(zero, 1);
    expect(rect('slower').width / rect('faster').width).toBeCloseTo(3, 1);
    expect(svg).not.toContain('data-policy="lonely"');
    expect(svg).toContain('>n/a<');
  });

  it('gives each run a verdict: holds, caught (unsafe by design) or BROKEN (a safe policy broke one)', () => {
    expect(verdictOf(byKey('asi', 'sysbench-cpu'))).toBe('holds');
    expect(verdictOf(byKey('coschedule', 'sysbench-cpu'))).toBe('holds');
    expect(verdictOf(byKey('none', 'sysbench-cpu'))).toBe('caught');
    expect(verdictOf(byKey('l1d-flush', 'sysbench-cpu'))).toBe('caught');
    const brokenAsi: RunResult = {
      ...byKey('asi', 'sysbench-cpu'),
      violations: { ...zeroCounts(), 'INV-4': 2 },
      violationRecords: [
        {
          id: 'INV-4',
          threads: [0, 1],
          modes: ['full', 'guest'],
          detail: 'switched to full with sibling ht1 in the guest and not kicked',
          timeCycles: 1234,
          step: 56,
          recentEvents: ['t=1200 ht0 exit EPT_VIOLATION:alloc'],
        },
      ],
    };
    expect(verdictOf(brokenAsi)).toBe('broken');
    expect(verdictOf({ ...brokenAsi, policy: 'my-policy' })).toBe('broken');
    const page = renderHtmlReport({ results: [brokenAsi, byKey('none', 'sysbench-cpu')] });
    expect(page).toMatch(/<tr class="verdict-broken" data-policy="asi"[\s\S]*?BROKEN: broke INV-4/);
    expect(page).toMatch(/<tr class="verdict-caught" data-policy="none"[\s\S]*?caught: unsafe by design/);
    // The first record is there to act on: threads with modes, detail, time, step, recent events.
    expect(page).toContain('ht0 (full), ht1 (guest); time 1234; step 56');
    expect(page).toContain('switched to full with sibling ht1 in the guest and not kicked');
    expect(page).toContain('t=1200 ht0 exit EPT_VIOLATION:alloc');
  });

  it('escapes names: a hostile policy name stays text', () => {
    const page = renderHtmlReport({
      results: [{ ...byKey('asi', 'sysbench-cpu'), policy: '<script>alert("x")</script>' }],
      title: 'a & b',
    });
    expect(page).not.toContain('<script');
    expect(page).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(page).toContain('<h1>a &amp; b</h1>');
  });

  it('the timeline has one row per hyperthread and only slices inside its window', () => {
    const svg = chart('chart-timeline');
    for (let thread = 0; thread < traced.threads; thread++) expect(svg).toContain(`>ht${thread}</text>`);
    const slices = [...svg.matchAll(/<rect class="slice[^"]*" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)];
    expect(slices.length).toBeGreaterThan(10);
    const lefts = slices.map((slice) => Number(slice[1]));
    const rights = slices.map((slice) => Number(slice[1]) + Number(slice[2]));
    expect(Math.min(...lefts)).toBeGreaterThanOrEqual(56);
    expect(Math.max(...rights)).toBeLessThanOrEqual(760 - 10 + 0.01);
    expect(svg).toMatch(/data-mode="guest"/);
    expect(svg).toMatch(/data-mode="held"/);
    const kicksInWindow = traced.events.filter(
      (event) => event.kind === EventKind.kick && event.timeCycles > 60_000 && event.timeCycles < 340_000,
    );
    expect(kicksInWindow.length).toBeGreaterThan(0);
    expect(svg).toContain('<line class="kick"');
    expect(html).toContain('<h2>Mode timeline: coschedule on sysbench-cpu &lt;seed 3&gt;</h2>');
  });

  it('round tick values cover the range', () => {
    expect(niceTicks(0, 773)).toEqual([0, 200, 400, 600, 800]);
    expect(niceTicks(-0.1, 0.3)).toEqual([-0.1, 0, 0.1, 0.2, 0.3]);
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it('writeHtmlReport writes the file atomically', () => {
    const directory = temporaryDirectory('asi-html-');
    const path = join(directory, 'report.html');
    writeHtmlReport(path, { results, title: 'test report', machine, timeline });
    expect(readFileSync(path, 'utf8')).toBe(html);
    expect(readdirSync(directory)).toEqual(['report.html']);
  });

  it.skipIf(!hasChromium)(
    'renders in headless Chromium: every chart laid out with visible bars and slices, and a non-blank screenshot (skipped without /usr/bin/chromium: apt-get install -y chromium)',
    () => {
      const where = {
        directory: temporaryDirectory('asi-html-chromium-'),
        profile: temporaryDirectory('asi-chromium-profile-'),
      };
      // Measure what the browser laid out.
      const charts = measureInChromium<
        {
          id: string;
          width: number;
          height: number;
          title: string;
          shapes: number;
          visibleShapes: number;
        }[]
      >(
        html,
        `return [...document.querySelectorAll('svg.chart')].map((svg) => {
          const box = svg.getBoundingClientRect();
          const shapes = [...svg.querySelectorAll('rect.bar, rect.slice')].map((rect) => rect.getBoundingClientRect().width);
          return { id: svg.id, width: box.width, height: box.height, title: svg.querySelector('title')?.textContent ?? '',
                   shapes: shapes.length, visibleShapes: shapes.filter((width) => width > 0).length };
        });`,
        where,
      );
      expect(charts.map((entry) => entry.id)).toEqual([
        'chart-overhead',
        'chart-isolated',
        'chart-kicks',
        'chart-timeline',
      ]);
      for (const entry of charts) {
        expect(entry.width, entry.id).toBeGreaterThan(300);
        expect(entry.height, entry.id).toBeGreaterThan(50);
        expect(entry.title, entry.id).not.toBe('');
        expect(entry.shapes, entry.id).toBeGreaterThan(0);
      }
      // Every bar of a non-zero value is visible (none's own overhead and kicks are 0, and so is the
      // isolated share of a policy without ASI: issue 19).
      const visible = Object.fromEntries(charts.map((entry) => [entry.id, entry.visibleShapes]));
      expect(visible['chart-isolated']).toBe(results.filter((result) => result.isolatedExitShare > 0).length);
      expect(visible['chart-kicks']).toBe(results.filter((result) => result.kicksPer1kExits > 0).length);
      expect(visible['chart-timeline']).toBeGreaterThan(10);

      // The report itself, unchanged, as a screenshot: decoded, it shows the charts' colors.
      const screenshot = screenshotInChromium(html, where, 900, 3000);
      const image = decodePng(readFileSync(screenshot));
      expect(image.width).toBe(900);
      const colors = colorCounts(image);
      expect(colors.size, 'distinct colors').toBeGreaterThan(20);
      const white = colors.get(0xffffff) ?? 0;
      expect(white / (image.width * image.height)).toBeLessThan(0.97);
      // The timeline's guest green and held orange, and the first policy's bar blue, are drawn.
      for (const color of [0x43a047, 0xfb8c00, 0x1f77b4]) {
        expect(colors.get(color) ?? 0, `pixels of #${color.toString(16)}`).toBeGreaterThan(200);
      }
    },
  );
});

interface Image {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

/** A minimal PNG decoder (8-bit RGB or RGBA, no interlace): what Chromium's screenshots are. */
function decodePng(file: Buffer): Image {
  expect(file.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const data: Buffer[] = [];
  while (offset < file.length) {
    const length = file.readUInt32BE(offset);
    const type = file.subarray(offset + 4, offset + 8).toString('latin1');
    const body = file.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      expect(body[8], 'bit depth').toBe(8);
      expect([2, 6], 'color type').toContain(body[9]);
      expect(body[12], 'interlace').toBe(0);
      channels = body[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      data.push(body);
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const left = x >= channels ? pixels[y * stride + x - channels] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const upLeft = y > 0 && x >= channels ? pixels[(y - 1) * stride + x - channels] : 0;
      let predictor = 0;
      if (filter === 1) predictor = left;
      else if (filter === 2) predictor = up;
      else if (filter === 3) predictor = (left + up) >> 1;
      else if (filter === 4) {
        const estimate = left + up - upLeft;
        const [a, b, c] = [Math.abs(estimate - left), Math.abs(estimate - up), Math.abs(estimate - upLeft)];
        predictor = a <= b && a <= c ? left : b <= c ? up : upLeft;
      }
      pixels[y * stride + x] = (line[x] + predictor) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

function colorCounts(image: Image): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < image.pixels.length; i += image.channels) {
    const color = (image.pixels[i] << 16) | (image.pixels[i + 1] << 8) | image.pixels[i + 2];
    counts.set(color, (counts.get(color) ?? 0) + 1);
  }
  return counts;
}
