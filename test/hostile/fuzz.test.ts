import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSummaryFile } from '../../src/fuzz/summary.js';
import { cliPath } from '../cli/run-cli.js';
import { expectCleanError, hostileRoot, runHostile } from './harness.js';

/**
 * Issue 18, fuzz campaigns as a hostile (or just impatient) user drives them: bad flags, a second
 * campaign into the same directory, Ctrl-C while a hook loops, SIGKILL while findings come in.
 */
const temp = hostileRoot('fuzz');
afterAll(temp.removeAll);
const fixtures = join(import.meta.dirname, '..', 'fixtures');

describe('fuzz flags: one line naming the flag, exit 2, no --out directory made', () => {
  const cases: [string[], RegExp][] = [
    [['--policy', 'asi', '--cases', '5', '--seed', '1', '--case-timeout', '0'], /--case-timeout: a duration/],
    [
      ['--policy', 'asi', '--cases', '5', '--seed', '1', '--case-timeout', '11m'],
      /--case-timeout: a duration .* to 600 s/,
    ],
    [['--policy', 'asi', '--cases', '5', '--seed', '-1'], /--seed: an integer/],
    [['--policy', 'asi', '--cases', '1e3', '--seed', '1'], /--cases: an integer/],
    [['--policy', 'asi', '--cases', '5', '--seed', '1', '--jobs', '100000'], /--jobs: an integer 1\.\.256/],
    [['--policy', 'asi', '--cases', '5', '--seed', '1', '--max-failures', '0'], /--max-failures: an integer/],
    [['--policy', 'asi', '--cases', '5', '--seed', '1', '--shard', '0/0'], /--shard/],
    [['--policy', '../../etc/passwd', '--cases', '5', '--seed', '1'], /--policy: one of none/],
  ];
  for (const [args, message] of cases) {
    it.concurrent(args.join(' '), async () => {
      const out = join(temp.root, `never-${args.join('_').replace(/[^a-z0-9_-]/gi, '')}`);
      const run = await runHostile(['fuzz', ...args, '--out', out]);
      expectCleanError(run, 2, message);
      expect(existsSync(out)).toBe(false);
    });
  }

  it.concurrent('--out naming a file', async () => {
    const file = join(temp.root, 'a-file');
    writeFileSync(file, 'keep me');
    const run = await runHostile(['fuzz', '--policy', 'asi', '--cases', '5', '--seed', '1', '--out', file]);
    expectCleanError(run, 2, /--out: a directory path/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('a second campaign into the same --out', () => {
  it('is refused without --force (the first summary kept), and starts over with it', async () => {
    const out = temp.dir('again');
    const args = ['fuzz', '--policy', 'none', '--cases', '4', '--seed', '1', '--jobs', '1', '--out', out];
    const first = await runHostile(args);
    expect(first.code, first.stderr).toBe(1);
    const before = readFileSync(join(out, 'summary.json'), 'utf8');
    const again = await runHostile([...args.slice(0, 4), '2', ...args.slice(5)]);
    expectCleanError(again, 2, /--out: a directory without an earlier campaign’s summary \(or --force/);
    expect(readFileSync(join(out, 'summary.json'), 'utf8')).toBe(before);
    const forced = await runHostile([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(1);
    expect(readSummaryFile(join(out, 'summary.json')).campaign.seed).toBe(1);
  });
});

/** Starts the CLI, sends `signal` once `ready` matches its stdout (plus `afterMs`), and waits. */
function runThenSignal(
  args: string[],
  signal: NodeJS.Signals,
  ready: RegExp,
  afterMs: number,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string; afterSignalMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { ...process.env, CI: 'true', ...env },
    });
    let stdout = '';
    let stderr = '';
    let signalledAt = 0;
    const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (signalledAt === 0 && ready.test(stdout)) {
        signalledAt = -1;
        setTimeout(() => {
          signalledAt = performance.now();
          child.kill(signal);
        }, afterMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({
        code,
        stdout,
        stderr,
        afterSignalMs: signalledAt > 0 ? performance.now() - signalledAt : -1,
      });
    });
  });
}

describe('Ctrl-C and SIGKILL', () => {
  it.concurrent('the first Ctrl-C ends a campaign whose hook is stuck within a bound, and writes the summary', async () => {
    const out = temp.dir('sigint-hang');
    const run = await runThenSignal(
      // The watchdog would wait 60 s: the interrupt must not.
      [
        'fuzz',
        '--policy-module',
        join(fixtures, 'loop-forever-policy.mjs'),
        '--cases',
        '1000',
        '--seed',
        '1',
      ].concat(['--jobs', '1', '--case-timeout', '60s', '--out', out]),
      'SIGINT',
      /^fuzz: seed/m,
      1000,
    );
    expect(run.afterSignalMs).toBeGreaterThan(0);
    expect(run.afterSignalMs).toBeLessThan(5000);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/interrupted: stopping the cases in flight/);
    const summary = readSummaryFile(join(out, 'summary.json'));
    expect(summary.complete).toBe(false);
    expect(summary.casesRun).toBe(0);
  });

  it.concurrent('the first Ctrl-C of a busy campaign keeps every case it ran and every file it wrote', async () => {
    const out = temp.dir('sigint-busy');
    const run = await runThenSignal(
      ['fuzz', '--policy', 'l1d-flush', '--cases', '100000', '--seed', '3', '--jobs', '1', '--out', out],
      'SIGINT',
      /^found: /m,
      300,
    );
    expect(run.afterSignalMs).toBeLessThan(5000);
    expect(run.code, run.stderr).toBe(1);
    const summary = readSummaryFile(join(out, 'summary.json'));
    expect(summary.casesRun).toBeGreaterThan(0);
    const files = readdirSync(out).filter((file) => file.endsWith('.replay.json'));
    expect(files.sort()).toEqual(summary.failures.map((failure) => failure.replay).sort());
  });

  it.concurrent('after SIGKILL the summary lists every replay file on disk but the one being written', async () => {
    const out = temp.dir('sigkill');
    await runThenSignal(
      ['fuzz', '--policy', 'none', '--cases', '100000', '--seed', '5', '--jobs', '1', '--out', out],
      'SIGKILL',
      /^(found: .*\n){6}/m,
      0,
    );
    const summary = readSummaryFile(join(out, 'summary.json'));
    const files = readdirSync(out).filter((file) => file.endsWith('.replay.json'));
    expect(files.length).toBeGreaterThanOrEqual(6);
    // Replay files are written before the summary that lists them: at most the newest is not listed yet.
    expect(files.length - summary.failures.length).toBeLessThanOrEqual(1);
    for (const failure of summary.failures) expect(files).toContain(failure.replay);
  });
});
