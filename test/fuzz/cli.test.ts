import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerFuzzCommand } from '../../src/cli/commands/fuzz.js';
import { registerReplayCommand } from '../../src/cli/commands/replay.js';
import { reportError } from '../../src/cli/errors.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { inProcessExecutor } from '../../src/fuzz/executor.js';
import { readReplayFile } from '../../src/fuzz/replay-format.js';
import { readSummaryFile } from '../../src/fuzz/summary.js';

/**
 * `asi-emu fuzz` and `asi-emu replay` as users run them: exit codes (0 clean, 1 violation, 2 bad
 * input with one line naming the flag), and a campaign killed with SIGKILL mid-run, which must leave
 * whole files only and every case it reported. The child processes run the built CLI (dist/).
 */
const root = mkdtempSync(join(tmpdir(), 'asi-emu-fuzz-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const repository = join(import.meta.dirname, '..', '..');
const cli = join(repository, 'dist', 'src', 'cli', 'main.js');

/** Runs the fuzz and replay commands in this process; resolves to the exit code and stderr. */
async function runCommands(args: string[]): Promise<{ code: number; stderr: string }> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerFuzzCommand(program);
  registerReplayCommand(program);
  let stderr = '';
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, stderr };
  } catch (error) {
    return { code: reportError(error, (text) => (stderr += text)), stderr };
  } finally {
    process.exitCode = saved;
  }
}

function requireBuild(): void {
  if (!existsSync(cli) || !existsSync(join(repository, 'dist', 'workers', 'fuzz-case.worker.js'))) {
    throw new Error('run `npm run build` first: the CLI and its pool workers run from dist/');
  }
}

describe('asi-emu fuzz: bad input exits 2 with one line naming the flag', () => {
  const out = join(root, 'unused');
  const cases: [string[], RegExp][] = [
    [['fuzz', '--policy', 'asi', '--cases', '5', '--out', out], /--seed: an integer/],
    [['fuzz', '--policy', 'asi', '--seed', '1', '--out', out], /--cases: exactly one of --cases N or --time/],
    [
      ['fuzz', '--policy', 'asi', '--cases', '5', '--time', '5s', '--seed', '1', '--out', out],
      /--cases: exactly one/,
    ],
    [
      ['fuzz', '--policy', 'nope', '--cases', '5', '--seed', '1', '--out', out],
      /--policy: one of none, .*planted-/,
    ],
    [['fuzz', '--policy', 'asi', '--cases', '5', '--seed', '1'], /--out: a directory/],
    [
      ['fuzz', '--policy', 'asi', '--cases', '5', '--seed', '1', '--shard', '4/3', '--out', out],
      /--shard: i\/n/,
    ],
    [
      ['fuzz', '--policy', 'asi', '--time', '5x', '--seed', '1', '--out', out],
      /--time: a duration such as 60s/,
    ],
    [['fuzz', '--policy', 'asi', '--cases', '0', '--seed', '1', '--out', out], /--cases: an integer 1\.\./],
    [
      ['fuzz', '--policy', 'asi', '--cases', '5', '--seed', '1', '--jobs', '0', '--out', out],
      /--jobs: an integer 1\.\.256/,
    ],
    [
      ['fuzz', '--policy-module', join(root, 'missing.mjs'), '--cases', '5', '--seed', '1', '--out', out],
      /--policy-module:/,
    ],
    [['fuzz', 'merge', join(root, 'a.json')], /--out: a file for the merged summary/],
    [['replay', join(root, 'missing.replay.json')], /missing\.replay\.json: a readable replay file/],
  ];
  for (const [args, message] of cases) {
    it(args.slice(0, 4).join(' '), async () => {
      const { code, stderr } = await runCommands(args);
      expect(code).toBe(2);
      expect(stderr).toMatch(message);
      expect(stderr.trim().split('\n')).toHaveLength(1);
    });
  }
});

describe('asi-emu fuzz merge', () => {
  it('merges shard summaries into --out (exit 0: nothing broken)', async () => {
    const paths: string[] = [];
    for (let index = 1; index <= 2; index++) {
      const { summaryPath } = await runCampaign({
        policy: { name: 'asi' },
        seed: 8,
        cases: 4,
        shard: { index, count: 2 },
        outDir: join(root, 'merge', `shard-${index}`),
        executor: inProcessExecutor(),
      });
      paths.push(summaryPath);
    }
    const merged = join(root, 'merge', 'merged.json');
    expect(await runCommands(['fuzz', 'merge', ...paths, '--out', merged])).toEqual({ code: 0, stderr: '' });
    expect(readSummaryFile(merged)).toMatchObject({ casesRun: 4, complete: true, violations: 0 });
  });
});

/** Runs the built CLI; `args` is split on spaces (the paths here have none). */
function asiEmu(args: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('node', [cli, ...args.split(' ')], { encoding: 'utf8' });
}

/** Starts a campaign and SIGKILLs it once `until(stdout)` holds; resolves to the whole lines it printed. */
async function killCampaign(args: string, until: (stdout: string) => boolean): Promise<string> {
  const child = spawn('node', [cli, ...args.split(' ')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (until(stdout)) resolve();
    });
    child.on('exit', () => reject(new Error(`the campaign ended before it was killed:\n${stdout}`)));
  });
  child.kill('SIGKILL');
  await exited;
  expect(child.signalCode).toBe('SIGKILL');
  return stdout.slice(0, stdout.lastIndexOf('\n') + 1);
}

const count = (stdout: string, pattern: RegExp) => (stdout.match(pattern) ?? []).length;

describe('asi-emu fuzz and replay end to end (built CLI, child processes)', () => {
  it('exit 0 for a clean campaign; exit 1 with a replay that reruns to the same trace', () => {
    requireBuild();
    const clean = asiEmu(`fuzz --policy asi --cases 8 --seed 3 --jobs 1 --out ${join(root, 'clean')}`);
    expect(clean.stderr).toBe('');
    expect(clean.status).toBe(0);
    expect(clean.stdout).toMatch(/^fuzz: seed 3, policy asi/);
    expect(clean.stdout).toMatch(/8 cases .*no invariant broken/);

    const json = join(root, 'found-summary.json');
    const found = asiEmu(
      `fuzz --policy planted-no-flush-after-nmi --cases 6 --seed 1 --jobs 1 --out ${join(root, 'found')} --json ${json}`,
    );
    expect(found.status).toBe(1);
    expect(found.stdout).toMatch(/found: case \d+ breaks INV-2/);
    expect(found.stdout).toMatch(/shrunk: case \d+ \(INV-2\) to \d+ exits/);
    const summary = readSummaryFile(json);
    expect(summary.violations).toBeGreaterThan(0);

    const trace = join(root, 'trace.json');
    const replay = asiEmu(`replay ${join(root, summary.failures[0].replay)} --trace ${trace}`);
    expect(replay.status).toBe(1);
    expect(replay.stdout).toMatch(/violation INV-2 \(no foreign secrets/);
    expect(replay.stdout).toMatch(/last events before it:\n {2}t=/);
    expect(replay.stdout).toMatch(/trace hash [0-9a-f]{8}: identical to the recorded trace/);
    expect(JSON.parse(readFileSync(trace, 'utf8')).traceEvents.length).toBeGreaterThan(0);
  });

  it('--policy-module: a user policy loaded by path in every pool worker', () => {
    requireBuild();
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'user-policy.mjs');
    const run = asiEmu(
      `fuzz --policy-module ${fixture} --cases 8 --seed 1 --jobs 2 --max-failures 1 --out ${join(root, 'user')}`,
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/policy user-asi-no-barrier \(.*user-policy\.mjs\)/);
    expect(run.stdout).toMatch(/found: case \d+ breaks INV-[13]/);
  });

  // Two kill points: while cases are being found, and while shrunk files replace unshrunk ones.
  const killPoints: [string, (stdout: string) => boolean][] = [
    ['after 4 cases found', (stdout) => count(stdout, /^found: /gm) >= 4],
    ['after 2 shrunk files were rewritten', (stdout) => count(stdout, /^shrunk: /gm) >= 2],
  ];
  killPoints.forEach(([when, until], point) => {
    it(`SIGKILL mid-campaign (${when}) leaves whole files only, and every case it reported`, async () => {
      requireBuild();
      const out = join(root, `killed-${point}`);
      const reported = await killCampaign(
        `fuzz --policy planted-no-barrier --time 60s --seed 1 --jobs 2 --out ${out}`,
        until,
      );
      const files = readdirSync(out).filter((name) => !name.startsWith('.'));
      const replays = files.filter((name) => name.endsWith('.replay.json'));
      // Every case reported found has its (whole) replay file, shrunk or not yet.
      for (const [, file] of reported.matchAll(/^found: case \d+ breaks INV-\d+: .* -> (.+)$/gm)) {
        expect(replays).toContain(file);
      }
      for (const name of replays) expect(readReplayFile(join(out, name)).expected.failure).toMatch(/^INV-/);
      // The summary (rewritten after every finding) is whole too, and lists cases that were found.
      const summary = readSummaryFile(join(out, 'summary.json'));
      expect(summary.complete).toBe(false);
      for (const failure of summary.failures) expect(replays).toContain(failure.replay);
      // Nothing else but leftovers of an interrupted write, which are hidden temporaries.
      expect(files.filter((name) => !name.endsWith('.replay.json') && name !== 'summary.json')).toEqual([]);
    });
  });
});
