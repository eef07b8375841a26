import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { cliPath, runCli } from './run-cli.js';

const require = createRequire(import.meta.url);

describe('asi-emu bench --backend workers (the built binary, real worker threads)', () => {
  it('runs the policies, writes JSON, a wall-time trace per run and the HTML report', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-workers-'));
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
      '--json',
      join(directory, 'out.json'),
      '--trace',
      join(directory, 'trace.json'),
      '--report',
      join(directory, 'report.html'),
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/asi on all-slow\s+safe/);
    expect(readdirSync(directory).sort()).toEqual([
      'out.json',
      'report.html',
      'trace.asi.all-slow.json',
      'trace.none.all-slow.json',
    ]);
    const json = JSON.parse(readFileSync(join(directory, 'out.json'), 'utf8'));
    expect(json.results.map((result: { policy: string }) => result.policy)).toEqual(['none', 'asi']);
    // The header promises wall time in the JSON: each workers result keeps its wallSeconds (issue 20).
    for (const result of json.results) {
      expect(result.wallSeconds).toBeGreaterThan(0);
      expect(result.perRepeat[0].wallSeconds).toBeGreaterThan(0);
    }
    expect(json.backend).toBe('workers');
    // The workload config the runs used (all-slow has no published rate: the default applies).
    expect(json.workload.guestQuantumCycles).toBeGreaterThan(0);
    expect(json.results[0].exitsPerSecondTarget).toBeGreaterThan(0);
    expect(json.mixes[0].name).toBe('all-slow');
    const schema = JSON.parse(readFileSync(require.resolve('asi-emu/schema/bench.schema.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    const trace = JSON.parse(readFileSync(join(directory, 'trace.asi.all-slow.json'), 'utf8'));
    expect(trace.otherData.backend).toBe('workers');
    expect(trace.otherData.clock).toMatch(/wall-clock/);
    const phases = new Set(trace.traceEvents.map((event: { ph: string }) => event.ph));
    for (const phase of ['M', 'X', 'i', 'C']) expect(phases).toContain(phase);
    // Kicks between the real threads show as flow arrows from the kicker to the exit they caused.
    expect(phases).toContain('s');
    const foreign = trace.traceEvents.filter(
      (event: { ph: string; name: string }) => event.ph === 'C' && event.name.endsWith('foreign L1D lines'),
    );
    expect(foreign.length).toBeGreaterThan(0);
    const html = readFileSync(join(directory, 'report.html'), 'utf8');
    expect(html).toContain('id="chart-timeline"');
    expect(html).toContain('(workers, wall time)');
  });

  it('the kick benchmark writes its JSON (issue 4 shape), percentiles from >= 10,000 trips (issue 20) and a report', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-kick-'));
    const out = join(directory, 'kick.json');
    const report = join(directory, 'kick.html');
    const run = runCli(['bench', '--backend', 'workers', '--kick', '--json', out, '--report', report], {
      timeoutMs: 180_000,
    });
    expect(run.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    for (const key of [
      'roundTripNs',
      'kicksPerSecond',
      'rawSpinRoundTripNs',
      'rawWaitRoundTripNs',
      'ratio',
      'threads',
      'cpus',
    ]) {
      expect(json.kick, key).toHaveProperty(key);
    }
    for (const key of ['exitsPerSecondPerThread', 'threads']) expect(json.exits, key).toHaveProperty(key);
    // Issue 20: the document says which tool and schema wrote it, and the published schema takes it.
    expect(json.format).toBe('asi-emu-kick-bench');
    expect(json.schemaVersion).toBe(1);
    expect(json.tool.name).toBe('asi-emu');
    const schema = JSON.parse(readFileSync(require.resolve('asi-emu/schema/bench.schema.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    // Issue 20: the kick and both raw ping-pongs as distributions; counts and order, never timings.
    for (const [name, series] of [
      ['kick', json.kick],
      ['kick.rawSpin', json.kick.rawSpin],
      ['kick.rawWait', json.kick.rawWait],
    ]) {
      expect(series.samples, name).toBeGreaterThanOrEqual(10_000);
      for (const key of ['p50Ns', 'p90Ns', 'p99Ns', 'p999Ns'])
        expect(typeof series[key], `${name}.${key}`).toBe('number');
      expect(series.p50Ns, name).toBeLessThanOrEqual(series.p90Ns);
      expect(series.p90Ns, name).toBeLessThanOrEqual(series.p99Ns);
      expect(series.p99Ns, name).toBeLessThanOrEqual(series.p999Ns);
      const counts: number[] = series.histogram.counts;
      expect(
        counts.reduce((sum, count) => sum + count, 0),
        name,
      ).toBe(series.samples);
    }
    for (const key of ['ratioP50', 'ratioP99']) expect(typeof json.kick[key], key).toBe('number');
    expect(run.stdout).toMatch(/round trip\s+samples\s+p50\s+p90\s+p99\s+p99\.9\s+max/);
    expect(run.stdout).toMatch(/ratio to raw (spin|wait\/notify): p50 [\d.]+, p99 [\d.]+/);
    // Not a terminal: no text histogram.
    expect(run.stdout).not.toContain('log-scale buckets');
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('<section id="kick-latency">');
    for (const index of [0, 1, 2]) expect(html).toContain(`id="chart-latency-0-${index}"`);
    expect(html).toContain('data-percentile="p99.9"');
  }, 200_000);
});

describe('the built binary: --version, --help of every command, machine, fuzz merge', () => {
  it('--version prints the package version', () => {
    const version = JSON.parse(
      readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8'),
    ).version;
    const run = runCli(['--version']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(version);
  });

  const commands = [
    ['bench'],
    ['fuzz'],
    ['fuzz', 'merge'],
    ['replay'],
    ['machine'],
    ['mixes'],
    ['policies'],
    ['config', 'init'],
  ];
  it.each(commands.map((argv) => [argv.join(' '), argv]))(
    'asi-emu %s --help: usage and exit 0',
    (_name, argv) => {
      const run = runCli([...(argv as string[]), '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`Usage: asi-emu ${(argv as string[]).join(' ')}`);
    },
  );

  it('machine prints what it built and writes its JSON', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-machine-'));
    const run = runCli(['machine', '--cores', '1', '--smt', '2', '--json', join(directory, 'machine.json')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/kvm:0/);
    const summary = JSON.parse(readFileSync(join(directory, 'machine.json'), 'utf8'));
    expect(summary.cores).toBe(1);
    expect(summary.threads).toBe(2);
  });

  it('fuzz in two shards, then fuzz merge: the merged summary counts every case', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-merge-'));
    for (const shard of ['1/2', '2/2']) {
      const run = runCli([
        'fuzz',
        '--policy',
        'asi',
        '--cases',
        '20',
        '--seed',
        '3',
        '--jobs',
        '1',
        '--shard',
        shard,
        '--out',
        directory,
      ]);
      expect(run.code).toBe(0);
    }
    const summaries = readdirSync(directory).filter((name) => name.startsWith('summary-shard'));
    expect(summaries).toHaveLength(2);
    const merged = join(directory, 'merged.json');
    const run = runCli(['fuzz', 'merge', ...summaries.map((name) => join(directory, name)), '--out', merged]);
    expect(run.code).toBe(0);
    const summary = JSON.parse(readFileSync(merged, 'utf8'));
    expect(summary.casesRun).toBe(20);
    expect(summary.complete).toBe(true);
  });
});

describe('progress on a terminal only', () => {
  const script = '/usr/bin/script';
  it.skipIf(!existsSync(script))(
    'bench draws a bar of its runs on a TTY (util-linux script), nothing in a pipe',
    () => {
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} bench --exits 2000 --policies none,asi --mix sysbench-cpu,idle-tracing`;
      const env = { ...process.env };
      delete env.CI;
      const onTty = spawnSync(script, ['-qc', command, '/dev/null'], {
        encoding: 'utf8',
        env,
        timeout: 120_000,
      });
      expect(onTty.status).toBe(0);
      // Every run of every repeat counts (5 repeats by default; none, asi and the kvm-default baseline
      // the sim runs in each repeat: 2 mixes x 5 x 3), and the label says which repeat.
      expect(onTty.stdout).toMatch(/bench \|.*\| 30\/30 runs \| asi on idle-tracing, repeat 5\/5/);
      const piped = runCli([
        'bench',
        '--exits',
        '2000',
        '--policies',
        'none,asi',
        '--mix',
        'sysbench-cpu,idle-tracing',
      ]);
      expect(piped.stderr).toBe('');
      expect(piped.stdout).not.toMatch(/runs \|/);
    },
  );
});
