import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { exitRateRange } from '../../src/cli/commands/sweep.js';
import { cliPath, runCli } from './run-cli.js';

/** Issue 20 item 3: `asi-emu sweep` (CLI: the JSON, the report, bad input, progress). */

const temporaryDirectories: string[] = [];
function temporaryDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'asi-sweep-cli-'));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of temporaryDirectories) rmSync(directory, { recursive: true, force: true });
});

interface SweepResult {
  policy: string;
  mix: string;
  repeats: number;
  overheadVsNone: number;
  overheadVsNoneCi95: number | null;
  guestWork: number;
  guestWorkCi95: number | null;
  achievedExitsPerSecond: number;
  achievedExitsPerSecondCi95: number | null;
  exitsPerSecondTarget: number | null;
  perRepeat: { seed: number; overheadVsNone: number }[];
}

interface SweepDocument {
  format: string;
  schemaVersion: number;
  tool: { name: string; version: string };
  backend: string;
  vary: { path: string; values: number[]; scale: string };
  policies: string[];
  repeatSeeds: number[];
  run: { exits: number; repeats: number; seed: number };
  points: { value: number; results: SweepResult[] }[];
}

const require = createRequire(import.meta.url);

/** A published schema, found as a user finds it: through the package's exports. */
function schemaOf(name: string): object {
  return JSON.parse(readFileSync(require.resolve(`asi-emu/schema/${name}`), 'utf8'));
}

const small = ['--exits', '400', '--repeats', '2', '--seed', '3'];

describe('asi-emu sweep', () => {
  const directory = temporaryDirectory();
  const jsonPath = join(directory, 'sweep.json');
  const reportPath = join(directory, 'sweep.html');
  const svgPath = join(directory, 'sweep.svg');
  const run = runCli([
    'sweep',
    '--policies',
    'none,asi,coschedule',
    '--mix',
    'sysbench-cpu',
    '--exit-rates',
    '1000,10000,100000',
    ...small,
    '--json',
    jsonPath,
    '--report',
    reportPath,
    '--svg',
    svgPath,
  ]);

  it('writes the JSON: every rate, every policy, with the repeated figures and their CIs', () => {
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const document = JSON.parse(readFileSync(jsonPath, 'utf8')) as SweepDocument;
    expect(document.format).toBe('asi-emu-sweep');
    expect(document.schemaVersion).toBe(1);
    expect(document.tool.name).toBe('asi-emu');
    expect(document.tool.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(document.backend).toBe('sim');
    expect(document.vary).toEqual({
      path: 'workload.exitsPerSecond',
      values: [1000, 10000, 100000],
      scale: 'log',
    });
    expect(document.policies).toEqual(['none', 'asi', 'coschedule']);
    expect(document.repeatSeeds).toHaveLength(2);
    expect(document.points.map((point) => point.value)).toEqual([1000, 10000, 100000]);
    for (const point of document.points) {
      expect(point.results.map((result) => result.policy)).toEqual(['none', 'asi', 'coschedule']);
      for (const result of point.results) {
        expect(result.repeats).toBe(2);
        expect(result.exitsPerSecondTarget).toBe(point.value);
        expect(result.perRepeat.map((repeat) => repeat.seed)).toEqual(document.repeatSeeds);
        for (const figure of ['overheadVsNone', 'guestWork', 'achievedExitsPerSecond'] as const) {
          expect(typeof result[figure], `${result.policy} ${figure}`).toBe('number');
          expect(typeof result[`${figure}Ci95`], `${result.policy} ${figure}Ci95`).toBe('number');
        }
      }
      const [none, asi, coschedule] = point.results;
      expect(none.overheadVsNone).toBe(0);
      expect(none.overheadVsNoneCi95).toBe(0);
      expect(asi.overheadVsNoneCi95).toBeGreaterThan(0);
      expect(coschedule.overheadVsNone).toBeGreaterThan(0);
    }
    // The published schema holds, and each point's result is a bench result (bench.schema.json).
    const ajv = new Ajv({ allErrors: true, strict: true });
    const validSweep = ajv.compile(schemaOf('sweep.schema.json'));
    expect(validSweep(document), JSON.stringify(validSweep.errors)).toBe(true);
    ajv.addSchema(schemaOf('bench.schema.json'), 'bench');
    const validResult = ajv.compile({ $ref: 'bench#/definitions/result' });
    for (const result of document.points.flatMap((point) => point.results)) {
      expect(validResult(result), JSON.stringify(validResult.errors)).toBe(true);
    }
    // Exits cost more the more often they come: coschedule loses more guest work at 100,000 than at 1,000.
    const coschedule = document.points.map((point) => point.results[2].overheadVsNone);
    expect(coschedule[2]).toBeGreaterThan(coschedule[0]);
  });

  it('prints a table per mix (mean ± CI per rate) and writes the chart', () => {
    expect(run.stdout).toContain(
      'asi-emu sweep --backend sim: 2 cores x 2 threads, 400 exits per run, 2 repeats from seed 3',
    );
    expect(run.stdout).toMatch(
      /sysbench-cpu: overhead vs none\s+exitsPerSecond=1000\s+exitsPerSecond=10000\s+exitsPerSecond=100000/,
    );
    expect(run.stdout).toMatch(/\ncoschedule\s+[\d.]+% ± [\d.]+/);
    expect(run.stdout).toContain(`wrote ${reportPath}`);
    const html = readFileSync(reportPath, 'utf8');
    const lines = [...html.matchAll(/<polyline class="line" data-policy="([^"]+)"/g)].map(
      (match) => match[1],
    );
    expect(lines).toEqual(['none', 'asi', 'coschedule']);
    expect(readdirSync(directory).sort()).toEqual(['sweep.html', 'sweep.json', 'sweep.svg']);
  });

  it('--svg writes the same chart as a standalone SVG document (a style sheet of its own, no script)', () => {
    expect(run.stdout).toContain(`wrote ${svgPath}`);
    const svg = readFileSync(svgPath, 'utf8');
    expect(
      svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'),
    ).toBe(true);
    expect(svg).toContain('<style>svg .grid');
    expect(svg).not.toMatch(/<script|href=/);
    const lines = [...svg.matchAll(/<polyline class="line" data-policy="([^"]+)"/g)].map((match) => match[1]);
    expect(lines).toEqual(['none', 'asi', 'coschedule']);
    // The document's height is the heading plus the nested chart's.
    const outer = Number(/viewBox="0 0 760 ([0-9.]+)"/.exec(svg)?.[1]);
    const inner = Number(/<svg x="0" y="22" [^>]* height="([0-9.]+)"/.exec(svg)?.[1]);
    expect(outer).toBe(22 + inner);
  });

  it('a point is the bench comparison at that rate: same seeds, same figures', () => {
    const benchJson = join(directory, 'bench.json');
    const bench = runCli([
      'bench',
      '--policies',
      'none,asi,coschedule',
      '--exit-rate',
      '10000',
      ...small,
      '--json',
      benchJson,
    ]);
    expect(bench.code).toBe(0);
    const benchResults = JSON.parse(readFileSync(benchJson, 'utf8')).results as SweepResult[];
    const sweep = JSON.parse(readFileSync(jsonPath, 'utf8')) as SweepDocument;
    const point = sweep.points.find((candidate) => candidate.value === 10000);
    for (const [index, result] of (point?.results ?? []).entries()) {
      expect(result.overheadVsNone, result.policy).toBe(benchResults[index].overheadVsNone);
      expect(result.overheadVsNoneCi95, result.policy).toBe(benchResults[index].overheadVsNoneCi95);
    }
  });

  it('--vary sweeps another field (linear for a short span); --json - puts the JSON alone on stdout', () => {
    const varied = runCli([
      'sweep',
      '--policies',
      'none,asi',
      '--vary',
      'costs.ipiDelivery=1000,4000',
      ...small,
      '--json',
      '-',
    ]);
    expect(varied.code).toBe(0);
    const document = JSON.parse(varied.stdout) as SweepDocument;
    expect(document.vary).toEqual({ path: 'costs.ipiDelivery', values: [1000, 4000], scale: 'linear' });
    expect(document.points).toHaveLength(2);
    // The table goes to stderr when stdout holds the JSON.
    expect(varied.stderr).toMatch(/sysbench-cpu: overhead vs none\s+ipiDelivery=1000\s+ipiDelivery=4000/);
  });

  it('--exit-rates LOW..HIGH is the 1-3 series between them, both ends included', () => {
    expect(exitRateRange(1000, 100000)).toEqual([1000, 3000, 10000, 30000, 100000]);
    expect(exitRateRange(500, 5000)).toEqual([500, 1000, 3000, 5000]);
    expect(exitRateRange(1000, 2000)).toEqual([1000, 2000]);
  });
});

describe('asi-emu sweep refuses bad input before it runs: one line naming the flag, exit 2, no file', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'a value the config refuses',
      ['--vary', 'costs.ipiDelivery=-5,1000'],
      /^asi-emu: error: --vary: values the config accepts for costs\.ipiDelivery \(costs\.ipiDelivery: .*\) \(got "costs\.ipiDelivery=-5"\)\n$/,
    ],
    [
      'a field the config does not have',
      ['--vary', 'costs.noSuchCost=1,2'],
      /^asi-emu: error: --vary: values the config accepts for costs\.noSuchCost \(costs: Unrecognized key: "noSuchCost"\)/,
    ],
    [
      'a section that is not one',
      ['--vary', 'policies=1,2'],
      /^asi-emu: error: --vary: PATH=V1,V2,\.\.\. with PATH a numeric config field/,
    ],
    [
      "the seed (the sweep's own)",
      ['--vary', 'run.seed=1,2'],
      /^asi-emu: error: --vary: .*not run\.seed or run\.repeats/,
    ],
    [
      'values that are not numbers',
      ['--vary', 'costs.ipiDelivery=fast,slow'],
      /^asi-emu: error: --vary: numbers after costs\.ipiDelivery=/,
    ],
    ['one value', ['--vary', 'costs.ipiDelivery=1000'], /^asi-emu: error: --vary: 2\.\.50 values/],
    [
      'a rate out of range',
      ['--exit-rates', '0,1000'],
      /^asi-emu: error: --exit-rates: a number 1\.\.10000000 \(got "0"\)/,
    ],
    ['a rate twice', ['--exit-rates', '1000,1000'], /^asi-emu: error: --exit-rates: distinct values/],
    [
      'a backward range',
      ['--exit-rates', '5000..1000'],
      /^asi-emu: error: --exit-rates: a range LOW\.\.HIGH/,
    ],
    [
      'two varied fields',
      ['--exit-rates', '1000,2000', '--vary', 'costs.ipiDelivery=1,2'],
      /^asi-emu: error: --vary: one varied field: --vary, or --exit-rates/,
    ],
    [
      'a log axis with 0',
      ['--vary', 'costs.ipiDelivery=0,1000', '--x-scale', 'log'],
      /^asi-emu: error: --x-scale: linear when a value is 0 or below/,
    ],
    [
      'an unknown policy',
      ['--policies', 'none,asi-turbo'],
      /^asi-emu: error: --policies: .*\(got "asi-turbo"\)/,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(name, () => {
      const directory = temporaryDirectory();
      const refused = runCli(['sweep', ...args, ...small, '--json', join(directory, 'out.json')]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(message);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stdout).toBe('');
      expect(readdirSync(directory)).toEqual([]);
    });
  }

  it('two outputs in one place', () => {
    const directory = temporaryDirectory();
    const path = join(directory, 'same');
    const refused = runCli(['sweep', ...small, '--json', path, '--report', path]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^asi-emu: error: --report: an output apart from --json/);
    expect(readdirSync(directory)).toEqual([]);
  });
});

describe('sweep progress on a terminal only', () => {
  const script = '/usr/bin/script';
  it.skipIf(!existsSync(script))(
    'draws one bar over every run of every point (util-linux script), nothing in a pipe',
    () => {
      const args = ['sweep', '--policies', 'none,asi', '--exit-rates', '1000,30000', ...small];
      const env = { ...process.env };
      delete env.CI;
      const command = [process.execPath, cliPath, ...args].map((part) => JSON.stringify(part)).join(' ');
      const onTty = spawnSync(script, ['-qc', command, '/dev/null'], {
        encoding: 'utf8',
        env,
        timeout: 120_000,
      });
      expect(onTty.status).toBe(0);
      // 2 rates x 2 repeats x (none, kvm-default as the second baseline, asi): 12 runs; the last label
      // names the point.
      expect(onTty.stdout).toMatch(
        /sweep \|.*\| 100% \| 12\/12 runs \| asi on sysbench-cpu, repeat 2\/2, workload\.exitsPerSecond=30000 \| [\d:]+ elapsed, ETA/,
      );
      const piped = runCli(args);
      expect(piped.code).toBe(0);
      expect(piped.stderr).toBe('');
      expect(piped.stdout).not.toMatch(/runs \|/);
    },
  );
});
