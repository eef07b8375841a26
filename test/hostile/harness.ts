import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { cliPath } from '../cli/run-cli.js';

/**
 * The hostile-input suite's harness (issue 18): runs the built CLI (dist/) as a user would, always
 * under a wall-clock limit, and checks what a bad input must give: the exit code, one line on stderr
 * naming the field, flag or hook, no stack trace, and (with `dir`) no file left behind.
 */
export interface HostileRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run was killed at its time limit: a hang. */
  timedOut: boolean;
  wallMs: number;
}

export interface HostileOptions {
  cwd?: string;
  /** Extra environment (the limits' test overrides, say). */
  env?: Record<string, string>;
  /** Default 30 s: every case is time-limited, a hang fails the case instead of the suite. */
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
}

export function runHostile(args: string[], options: HostileOptions = {}): Promise<HostileRun> {
  const startMs = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd,
      env: { ...process.env, CI: 'true', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, wallMs: performance.now() - startMs });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/**
 * A clean refusal: exit `code` (2 bad input, 1 a broken policy), stderr one line that matches
 * `names` (the field, flag or hook), no stack trace, no "internal error", and no hang.
 */
export function expectCleanError(run: HostileRun, code: 1 | 2, names: RegExp | string): void {
  const context = `exit ${run.code}${run.timedOut ? ' (timed out)' : ''}\nstderr:\n${run.stderr}\nstdout:\n${run.stdout}`;
  expect(run.timedOut, context).toBe(false);
  expect(run.code, context).toBe(code);
  const lines = run.stderr.trimEnd().split('\n');
  const errorLines = lines.filter((line) => line.startsWith('asi-emu: error:'));
  expect(errorLines.length, context).toBe(1);
  expect(errorLines[0], context).toMatch(names);
  expect(run.stderr, context).not.toMatch(/internal error|\n\s+at .+:\d+:\d+/);
}

/** A temporary directory for one test file, removed with `removeAll`. */
export function hostileRoot(prefix: string) {
  const root = mkdtempSync(join(tmpdir(), `asi-emu-hostile-${prefix}-`));
  return {
    root,
    /** A fresh empty directory under the root. */
    dir: (name: string): string => mkdtempSync(join(root, `${name}-`)),
    removeAll: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Every entry under `dir`, recursively, as paths relative to it (hidden temporary files included). */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/**
 * A real replay file to replay or tamper with: a short campaign of `policy` (an unsafe one, so it finds
 * a case) into `out`; the path of its first replay file.
 */
export async function fuzzReplayFile(
  out: string,
  policy = 'planted-lost-wakeup',
  cases = 20,
): Promise<string> {
  const args = ['fuzz', '--policy', policy, '--cases', String(cases), '--seed', '1', '--jobs', '1'];
  const run = await runHostile([...args, '--max-failures', '1', '--out', out], { timeoutMs: 60_000 });
  const file = readdirSync(out).find((name) => name.endsWith('.replay.json'));
  if (!file) throw new Error(`${args.join(' ')} wrote no replay file:\n${run.stderr}\n${run.stdout}`);
  return join(out, file);
}
