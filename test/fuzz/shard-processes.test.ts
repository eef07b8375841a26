import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerFuzzCommand } from '../../src/cli/commands/fuzz.js';
import { readReplayFile } from '../../src/fuzz/replay-format.js';
import { type FuzzSummary, readSummaryFile } from '../../src/fuzz/summary.js';

/**
 * A campaign as a batch system runs it (docs/scale.md): the shard script of
 * examples/k8s-fuzz-indexed-job.yaml, as written there, in one process per shard with its
 * JOB_COMPLETION_INDEX, each writing its own directory, then the file's merge script once. The merged
 * summary must find what one unsharded `asi-emu fuzz` process finds, and its replay paths must lead to
 * the shards' replay files. The scripts call `asi-emu`: a shim on PATH runs the built CLI (dist/).
 */
const repository = join(import.meta.dirname, '..', '..');
const cli = join(repository, 'dist', 'src', 'cli', 'main.js');
const manifestPath = join(repository, 'examples', 'k8s-fuzz-indexed-job.yaml');
const workflowPath = join(repository, 'examples', 'ci-fuzz-matrix.yml');
const root = mkdtempSync(join(tmpdir(), 'asi-emu-shard-processes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The `- |` block scalars of a YAML file (the containers' scripts), dedented. */
function blockScripts(yaml: string): string[] {
  const lines = yaml.split('\n');
  const scripts: string[] = [];
  lines.forEach((line, at) => {
    if (line.trim() !== '- |') return;
    const parentIndent = line.indexOf('-');
    const body: string[] = [];
    for (const next of lines.slice(at + 1)) {
      if (next.trim() !== '' && next.search(/\S/) <= parentIndent) break;
      body.push(next);
    }
    const indent = Math.min(...body.filter((text) => text.trim() !== '').map((text) => text.search(/\S/)));
    scripts.push(body.map((text) => text.slice(indent)).join('\n'));
  });
  return scripts;
}

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` with sh, as the container's `command: [sh, -c]` does. */
function runScript(script: string, env: Record<string, string>): Promise<Exit> {
  return new Promise((done, fail) => {
    const child = spawn('sh', ['-c', script], { env: { ...process.env, ...env }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** What a campaign found, without where its files are and how fast it ran. */
function findings(summary: FuzzSummary) {
  return {
    casesRun: summary.casesRun,
    complete: summary.complete,
    byFailure: summary.byFailure,
    failures: summary.failures.map(({ replay: _replay, ...rest }) => rest),
  };
}

describe('a campaign as an Indexed Job: shards in separate processes, then one merge', () => {
  it('the merged shards find what one unsharded process finds, with every replay file reachable', async () => {
    if (!existsSync(cli)) throw new Error('run `npm run build` first: the scripts run the built CLI');
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const shim = join(bin, 'asi-emu');
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`);
    chmodSync(shim, 0o755);

    const scripts = blockScripts(readFileSync(manifestPath, 'utf8'));
    expect(scripts).toHaveLength(2);
    const [shardScript, mergeScript] = scripts;
    // Six cases of this seed hold three failures of the planted bug, one or two per shard.
    const shards = 3;
    const campaign = { POLICY: 'planted-no-flush-after-nmi', SEED: '11', CASES: '6' };
    const results = join(root, 'results');
    const env = {
      ...campaign,
      SHARDS: String(shards),
      JOBS: '1',
      OUT: results,
      PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
    };

    const unshardedOut = join(root, 'unsharded');
    const [unsharded, ...shardRuns] = await Promise.all([
      runScript(
        `asi-emu fuzz --policy "$POLICY" --seed "$SEED" --cases "$CASES" --jobs 1 --out "${unshardedOut}" --no-progress`,
        env,
      ),
      ...Array.from({ length: shards }, (_, index) =>
        runScript(shardScript, { ...env, JOB_COMPLETION_INDEX: String(index) }),
      ),
    ]);
    expect(unsharded.code, unsharded.stderr).toBe(1); // the planted bug is found
    shardRuns.forEach((run, index) => {
      // The script turns "found failures" (1) into success: the pod's work is done.
      expect(run.code, run.stderr).toBe(0);
      const summaryPath = join(results, `shard-${index + 1}`, `summary-shard-${index + 1}-of-${shards}.json`);
      const summary = readSummaryFile(summaryPath);
      expect(summary.shards).toEqual([{ shard: `${index + 1}/${shards}`, casesRun: 2, complete: true }]);
      expect(summary.complete).toBe(false); // one shard is not the whole campaign
    });

    const merge = await runScript(mergeScript, env);
    expect(merge.code, merge.stderr).toBe(1); // the merged campaign has failures
    const mergedPath = join(results, 'summary.json');
    const merged = readSummaryFile(mergedPath);
    const whole = readSummaryFile(join(unshardedOut, 'summary.json'));
    expect(whole.violations).toBeGreaterThan(0);
    expect(findings(merged)).toEqual(findings(whole));
    expect(merged.shards.map((run) => run.shard).sort()).toEqual(['1/3', '2/3', '3/3']);
    for (const failure of merged.failures) {
      const path = resolve(dirname(mergedPath), failure.replay);
      expect(path.startsWith(join(results, 'shard-'))).toBe(true);
      expect(readReplayFile(path).expected.traceHash).toBe(failure.traceHash);
    }
  }, 300_000);

  it('the example files call asi-emu fuzz and fuzz merge with options the CLI has', () => {
    const program = new Command();
    registerFuzzCommand(program);
    const fuzz = program.commands.find((command) => command.name() === 'fuzz');
    const merge = fuzz?.commands.find((command) => command.name() === 'merge');
    const optionsOf = (command: Command | undefined) =>
      new Set(command?.options.map((option) => option.long));
    const known = { fuzz: optionsOf(fuzz), merge: optionsOf(merge) };
    for (const path of [manifestPath, workflowPath]) {
      // Comment lines left out; commands continued with a backslash are one command.
      const text = readFileSync(path, 'utf8')
        .split('\n')
        .filter((line) => !line.trim().startsWith('#'))
        .join('\n')
        .replace(/\\\n\s*/g, ' ');
      const commands = [...text.matchAll(/(?:asi-emu|dist\/src\/cli\/main\.js) fuzz( merge)?([^\n]*)/g)];
      expect(commands.length, path).toBeGreaterThanOrEqual(2);
      for (const [, isMerge, rest] of commands) {
        const flags = [...rest.matchAll(/(?<=\s)--[a-z-]+/g)].map(([flag]) => flag);
        const accepted = isMerge ? known.merge : known.fuzz;
        for (const flag of flags) expect(accepted.has(flag), `${path}: ${flag}`).toBe(true);
        if (!isMerge) expect(flags, path).toEqual(expect.arrayContaining(['--shard', '--out', '--seed']));
      }
    }
  });
});
