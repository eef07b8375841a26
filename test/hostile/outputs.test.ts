import { execFileSync, spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutputError, UsageError } from '../../src/errors.js';
import { fileNamePartLengthMax, safeFileNamePart } from '../../src/report/file-names.js';
import {
  checkOutputCollisions,
  nodeOutputFileSystem,
  type OutputFileSystem,
  writeOutputs,
} from '../../src/report/output-files.js';
import { cliPath } from '../cli/run-cli.js';
import { expectCleanError, filesUnder, fuzzReplayFile, hostileRoot, runHostile } from './harness.js';

/**
 * Issue 18, the output side: every output (`--json`, `--trace`, `--report`, `--out`) follows links,
 * writes devices and FIFOs in place, refuses outputs that collide, keeps data names out of paths,
 * writes all of a command's outputs or none, reports a refused write in one line (exit 2), and a
 * reader closing stdout early costs no stack trace. Runs the built CLI (dist/): `npm run build` first.
 */

const root = hostileRoot('outputs');
afterAll(() => root.removeAll());

/** The shortest bench that still runs two policies (two runs: per-run trace names). */
// One repeat: these tests are about where outputs go, not about statistics (and they stay short).
const shortBench = ['bench', '--exits', '200', '--repeats', '1', '--policies', 'none,asi'];
/** One run: `--trace FILE` is then FILE itself. */
const oneRunBench = ['bench', '--exits', '200', '--repeats', '1', '--policies', 'asi'];

function errnoError(code: string, meaning: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${meaning}, ${syscall}`), { code, syscall });
}

/** A file system that fails the `failAt`-th write (1-based) with `error`. */
function failingWrites(failAt: number, error: NodeJS.ErrnoException): OutputFileSystem {
  let writes = 0;
  return {
    ...nodeOutputFileSystem,
    writeSync: (descriptor, buffer, offset, length) => {
      writes++;
      if (writes === failAt) throw error;
      return nodeOutputFileSystem.writeSync(descriptor, buffer, offset, length);
    },
  };
}

/** Runs the CLI with stdout into a reader that closes after the first chunk; returns stderr. */
function closeAfterFirstChunk(args: string[]): Promise<{ stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { ...process.env, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // A hang guard, far above a run's time even on a loaded machine, below the test's own 60 s limit.
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ stderr, code });
    });
  });
}

describe('outputs: standard output, links, devices and FIFOs', () => {
  it.concurrent('--json - prints pure JSON on stdout; the table goes to stderr; no file "-"', async () => {
    const cwd = root.dir('dash');
    const run = await runHostile([...shortBench, '--json', '-'], { cwd });
    expect(run.code, run.stderr).toBe(0);
    const json = JSON.parse(run.stdout) as { results: { policy: string }[] };
    expect(json.results.map((result) => result.policy)).toEqual(['none', 'asi']);
    expect(run.stderr).toMatch(/asi-emu bench --backend sim/);
    expect(run.stderr).toMatch(/sysbench-cpu/);
    expect(filesUnder(cwd)).toEqual([]);
  });

  it.concurrent('--json - with --trace: the "wrote" lines go to stderr too', async () => {
    const dir = root.dir('dash-trace');
    const run = await runHostile([...shortBench, '--json', '-', '--trace', join(dir, 't.json')]);
    expect(run.code, run.stderr).toBe(0);
    expect(() => JSON.parse(run.stdout)).not.toThrow();
    expect(run.stderr).toMatch(/wrote .*t\.asi\.sysbench-cpu\.json/);
    expect(filesUnder(dir)).toEqual(['t.asi.sysbench-cpu.json', 't.none.sysbench-cpu.json']);
  });

  it.concurrent('--json /dev/stdout prints on stdout and /dev/stdout stays a symlink', async () => {
    const cwd = root.dir('dev-stdout');
    const run = await runHostile([...shortBench, '--json', '/dev/stdout'], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(lstatSync('/dev/stdout').isSymbolicLink()).toBe(true);
    expect((JSON.parse(run.stdout) as { backend: string }).backend).toBe('sim');
    expect(run.stderr).toMatch(/guest share/);
  });

  it.concurrent('a link to a regular file stays a link; its target is replaced', async () => {
    const dir = root.dir('link');
    const target = join(dir, 'target.json');
    const link = join(dir, 'link.json');
    writeFileSync(target, 'old');
    symlinkSync('target.json', link);
    const run = await runHostile([...oneRunBench, '--json', link]);
    expect(run.code, run.stderr).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('target.json');
    expect((JSON.parse(readFileSync(target, 'utf8')) as { backend: string }).backend).toBe('sim');
    expect(filesUnder(dir)).toEqual(['link.json', 'target.json']);
  });

  it.concurrent('a dangling link: its target is created, the link stays a link', async () => {
    const dir = root.dir('dangling');
    const link = join(dir, 'report.html');
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real', 'made.html'), link);
    const run = await runHostile([...oneRunBench, '--report', link]);
    expect(run.code, run.stderr).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'real', 'made.html'), 'utf8')).toMatch(/^<!doctype html>/i);
    expect(filesUnder(dir)).toEqual(['real', 'real/made.html', 'report.html']);
  });

  it.concurrent('a chain of links is followed to its end; every link stays a link', async () => {
    const dir = root.dir('chain');
    writeFileSync(join(dir, 'end.json'), 'old');
    symlinkSync('end.json', join(dir, 'middle.json'));
    symlinkSync('middle.json', join(dir, 'first.json'));
    const run = await runHostile([...oneRunBench, '--trace', join(dir, 'first.json')]);
    expect(run.code, run.stderr).toBe(0);
    expect(lstatSync(join(dir, 'first.json')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(dir, 'middle.json')).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'end.json'), 'utf8'))).toHaveProperty('traceEvents');
    expect(filesUnder(dir)).toEqual(['end.json', 'first.json', 'middle.json']);
  });

  it.concurrent('a FIFO with a reader gets the JSON and stays a FIFO', async () => {
    const dir = root.dir('fifo');
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const chunks: Buffer[] = [];
    const read = new Promise<string>((resolve, reject) => {
      createReadStream(fifo)
        .on('data', (chunk) => chunks.push(chunk as Buffer))
        .on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
        .on('error', reject);
    });
    const run = await runHostile([...shortBench, '--json', fifo]);
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(await read) as { results: unknown[] }).results).toHaveLength(2);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(filesUnder(dir)).toEqual(['out.fifo']);
  });

  it.concurrent('a FIFO with no reader yet: it says on stderr that it waits, then writes', async () => {
    const dir = root.dir('fifo-wait');
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const child = spawn(process.execPath, [cliPath, ...oneRunBench, '--json', fifo], {
      env: { ...process.env, CI: 'true' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // A hang guard, far above a run's time even on a loaded machine, below the test's own 60 s limit.
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    let stderr = '';
    const waiting = new Promise<void>((resolve) => {
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (/waiting for a reader/.test(stderr)) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await waiting;
    expect(stderr).toMatch(/--json: waiting for a reader on the FIFO .*out\.fifo/);
    const text = await new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      createReadStream(fifo)
        .on('data', (chunk) => parts.push(chunk as Buffer))
        .on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
        .on('error', reject);
    });
    expect(await exited).toBe(0);
    clearTimeout(killer);
    expect((JSON.parse(text) as { backend: string }).backend).toBe('sim');
  });
});

describe('outputs: a write the system refuses is one line, exit 2, and leaves nothing', () => {
  it.concurrent('--json /dev/full: ENOSPC, and the trace beside it is not left', async () => {
    const dir = root.dir('full-json');
    const run = await runHostile([...shortBench, '--json', '/dev/full', '--trace', join(dir, 't.json')]);
    expectCleanError(run, 2, /--json: .*\/dev\/full.*ENOSPC \(no space left on device\)/);
    expect(filesUnder(dir)).toEqual([]);
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
  });

  it.concurrent('--trace /dev/full: ENOSPC, and neither the JSON nor the report is left', async () => {
    const dir = root.dir('full-trace');
    const run = await runHostile([
      ...oneRunBench,
      '--json',
      join(dir, 'o.json'),
      '--trace',
      '/dev/full',
      '--report',
      join(dir, 'r.html'),
    ]);
    expectCleanError(run, 2, /--trace: .*\/dev\/full.*(ENOSPC|no space)/);
    expect(filesUnder(dir)).toEqual([]);
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
  });

  it.concurrent('--report /dev/full: ENOSPC, and the JSON is not left', async () => {
    const dir = root.dir('full-report');
    const run = await runHostile([...shortBench, '--json', join(dir, 'o.json'), '--report', '/dev/full']);
    expectCleanError(run, 2, /--report: .*\/dev\/full.*ENOSPC/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it.concurrent('--trace /proc/version: exit 2 naming --trace, no stack', async () => {
    const run = await runHostile([...oneRunBench, '--trace', '/proc/version']);
    expectCleanError(run, 2, /--trace: .*\/proc\/version/);
    expect(readFileSync('/proc/version', 'utf8')).toMatch(/^Linux/);
  });

  it.concurrent('a directory no one may create files in (/proc): exit 2 naming --json', async () => {
    const dir = root.dir('proc-dir');
    const run = await runHostile([
      ...oneRunBench,
      '--trace',
      join(dir, 't.json'),
      '--json',
      '/proc/asi-emu-hostile/o.json',
    ]);
    expectCleanError(run, 2, /--json: .*\/proc\/asi-emu-hostile/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it.concurrent('a copy of /dev/full (mknod) as --json stays a device, exit 2', async (context) => {
    const dir = root.dir('device-copy');
    const device = join(dir, 'full');
    try {
      execFileSync('mknod', [device, 'c', '1', '7']);
    } catch {
      context.skip(); // no CAP_MKNOD here: /dev/full itself is covered above
    }
    const run = await runHostile([...oneRunBench, '--json', device, '--report', join(dir, 'r.html')]);
    expectCleanError(run, 2, /--json: .*full.*ENOSPC/);
    expect(statSync(device).isCharacterDevice()).toBe(true);
    expect(filesUnder(dir)).toEqual(['full']);
  });
});

describe('outputs: colliding outputs are refused before any work runs', () => {
  const cases: [string, string[]][] = [
    ['--json x --trace x', ['--json', 'x', '--trace', 'x']],
    ['--json x --report x', ['--json', 'x', '--report', 'x']],
    ['--trace x --report x', ['--trace', 'x', '--report', 'x']],
  ];
  for (const [title, flags] of cases) {
    it.concurrent(`${title}: exit 2 naming both flags, nothing written`, async () => {
      const cwd = root.dir('collide');
      const run = await runHostile([...oneRunBench, ...flags], { cwd });
      expectCleanError(run, 2, new RegExp(`^asi-emu: error: ${flags[2]}: .*${flags[0]}`));
      expect(run.stdout).toBe('');
      expect(filesUnder(cwd)).toEqual([]);
    });
  }

  it.concurrent('a link and its target collide', async () => {
    const dir = root.dir('collide-link');
    writeFileSync(join(dir, 'target.json'), 'keep');
    symlinkSync('target.json', join(dir, 'link.json'));
    const run = await runHostile([
      ...oneRunBench,
      '--json',
      join(dir, 'target.json'),
      '--report',
      join(dir, 'link.json'),
    ]);
    expectCleanError(run, 2, /--report: .*--json/);
    expect(readFileSync(join(dir, 'target.json'), 'utf8')).toBe('keep');
  });

  it.concurrent('a per-run trace name that is the --json file collides', async () => {
    const dir = root.dir('collide-per-run');
    const run = await runHostile([
      ...shortBench,
      '--json',
      join(dir, 't.asi.sysbench-cpu.json'),
      '--trace',
      join(dir, 't.json'),
    ]);
    expectCleanError(run, 2, /--trace: .*--json/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it.concurrent('- and /dev/stdout are one stream: they collide', async () => {
    const run = await runHostile([...oneRunBench, '--json', '-', '--report', '/dev/stdout']);
    expectCleanError(run, 2, /--report: .*--json.*standard output/);
    expect(run.stdout).toBe('');
  });

  it.concurrent('--trace - with several runs is refused (one trace per file)', async () => {
    const run = await runHostile([...shortBench, '--trace', '-']);
    expectCleanError(run, 2, /--trace: .*several runs/);
  });
});

describe('outputs: names from data never leave the output directory', () => {
  for (const name of ['../../x', 'a/b', '.hidden\\name']) {
    it.concurrent(`a user mix named ${JSON.stringify(name)}: every trace stays in the trace's directory`, async () => {
      const base = root.dir('mix-name');
      const dir = join(base, 'deep', 'traces');
      mkdirSync(dir, { recursive: true });
      const config = join(base, 'config.json');
      writeFileSync(
        config,
        JSON.stringify({
          workload: {
            mix: { name, source: 'a hostile test', weights: { MSR_WRITE: 50, CPUID: 50 } },
          },
        }),
      );
      const run = await runHostile([...shortBench, '--config', config, '--trace', join(dir, 't.json')]);
      expect(run.code, run.stderr).toBe(0);
      const traces = readdirSync(dir).sort();
      expect(traces).toHaveLength(2);
      for (const trace of traces) expect(trace).toMatch(/^t\.(none|asi)\.[A-Za-z0-9_][A-Za-z0-9._-]*\.json$/);
      expect(filesUnder(base).filter((path) => !path.startsWith('deep'))).toEqual(['config.json']);
      expect(existsSync(join(base, 'x'))).toBe(false);
    });
  }

  it('safeFileNamePart: no separator, no leading dot, no NUL, bounded, long names kept apart', () => {
    for (const name of ['../../x', 'a/b', 'a\\b', '.', '..', '', 'nul\0byte', '\n']) {
      const safe = safeFileNamePart(name);
      expect(safe).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
    }
    expect(safeFileNamePart('planted-lost-wakeup')).toBe('planted-lost-wakeup');
    const long = safeFileNamePart('m'.repeat(500));
    expect(long.length).toBeLessThanOrEqual(fileNamePartLengthMax);
    expect(long).not.toBe(safeFileNamePart(`${'m'.repeat(499)}n`));
  });
});

describe('outputs: all or none (injected faults, in-process)', () => {
  it('ENOSPC on the second of three outputs leaves no output and no temporary', async () => {
    const dir = root.dir('inject-second');
    const files = ['a.json', 'b.json', 'c.html'].map((name, index) => ({
      flag: ['--json', '--trace', '--report'][index],
      path: join(dir, name),
      contents: `contents of ${name}`,
    }));
    const fileSystem = failingWrites(2, errnoError('ENOSPC', 'no space left on device', 'write'));
    const failure = await writeOutputs(files, { fileSystem }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OutputError);
    expect((failure as OutputError).flag).toBe('--trace');
    expect((failure as Error).message).toMatch(
      /--trace: cannot write .*b\.json.*ENOSPC \(no space left on device\)/,
    );
    expect(filesUnder(dir)).toEqual([]);
  });

  it('an existing output is kept whole when a later one fails (EROFS)', async () => {
    const dir = root.dir('inject-keep');
    writeFileSync(join(dir, 'a.json'), 'previous run');
    const files = [
      { flag: '--json', path: join(dir, 'a.json'), contents: 'new' },
      { flag: '--report', path: join(dir, 'r.html'), contents: 'new' },
    ];
    const fileSystem = failingWrites(2, errnoError('EROFS', 'read-only file system', 'write'));
    await expect(writeOutputs(files, { fileSystem })).rejects.toThrow(
      /--report: .*EROFS \(read-only file system\)/,
    );
    expect(filesUnder(dir)).toEqual(['a.json']);
    expect(readFileSync(join(dir, 'a.json'), 'utf8')).toBe('previous run');
  });

  it('a failing rename removes every temporary not yet renamed', async () => {
    const dir = root.dir('inject-rename');
    const fileSystem: OutputFileSystem = {
      ...nodeOutputFileSystem,
      renameSync: () => {
        throw errnoError('EACCES', 'permission denied', 'rename');
      },
    };
    const files = [
      { flag: '--json', path: join(dir, 'a.json'), contents: 'a' },
      { flag: '--trace', path: join(dir, 'b.json'), contents: 'b' },
    ];
    await expect(writeOutputs(files, { fileSystem })).rejects.toThrow(/--json: .*EACCES/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it('a device is written only after every temporary is whole', async () => {
    const dir = root.dir('inject-order');
    const opened: string[] = [];
    const fileSystem: OutputFileSystem = {
      ...nodeOutputFileSystem,
      openSync: (path, flags, mode) => {
        opened.push(path);
        return nodeOutputFileSystem.openSync(path, flags, mode);
      },
    };
    await writeOutputs(
      [
        { flag: '--json', path: '/dev/null', contents: 'x' },
        { flag: '--trace', path: join(dir, 't.json'), contents: 't' },
      ],
      { fileSystem },
    );
    expect(opened[opened.length - 1]).toBe('/dev/null');
    expect(filesUnder(dir)).toEqual(['t.json']);
  });

  it('checkOutputCollisions: the same new path twice is a UsageError naming both flags', () => {
    const dir = root.dir('collide-unit');
    expect(() =>
      checkOutputCollisions([
        { flag: '--json', path: join(dir, 'x') },
        { flag: '--trace', path: join(dir, '.', 'x') },
      ]),
    ).toThrow(UsageError);
    expect(() =>
      checkOutputCollisions([
        { flag: '--json', path: '-' },
        { flag: '--trace', path: join(dir, '-') },
      ]),
    ).not.toThrow();
  });
});

describe('outputs: replay and fuzz', () => {
  let replayFile = '';
  beforeAll(async () => {
    replayFile = await fuzzReplayFile(root.dir('fuzz-planted'));
  }, 60_000);

  it.concurrent('replay --trace /dev/full: exit 2 naming --trace', async () => {
    const run = await runHostile(['replay', replayFile, '--trace', '/dev/full']);
    expectCleanError(run, 2, /--trace: .*\/dev\/full.*ENOSPC/);
  });

  it.concurrent('replay --trace - prints the trace on stdout and the text on stderr', async () => {
    const run = await runHostile(['replay', replayFile, '--trace', '-']);
    expect(run.code, run.stderr).toBe(1);
    expect(JSON.parse(run.stdout)).toHaveProperty('traceEvents');
    expect(run.stderr).toMatch(/^replay .*policy planted-lost-wakeup/);
  });

  it.concurrent('replay --trace - | (closes early): no stack, the exit code is the verdict', async () => {
    const run = await closeAfterFirstChunk(['replay', replayFile, '--trace', '-']);
    expect(run.stderr).not.toMatch(/EPIPE|internal error|\n\s+at .+:\d+:\d+/);
    expect(run.code).toBe(1);
  });

  it.concurrent('fuzz --json - prints the summary JSON on stdout', async () => {
    const out = root.dir('fuzz-json');
    const run = await runHostile([
      'fuzz',
      '--policy',
      'asi',
      '--cases',
      '4',
      '--seed',
      '1',
      '--jobs',
      '1',
      '--out',
      out,
      '--json',
      '-',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { casesRun: number; violations: number };
    expect(summary.casesRun).toBe(4);
    expect(run.stderr).toMatch(/^fuzz: seed 1/);
    expect(existsSync(join(out, '-'))).toBe(false);
  });

  it.concurrent('fuzz merge --out - prints the merged summary on stdout', async () => {
    const out = dirname(replayFile);
    const before = filesUnder(out);
    const run = await runHostile(['fuzz', 'merge', join(out, 'summary.json'), '--out', '-'], { cwd: out });
    expect(run.code, run.stderr).toBe(1); // the planted bug's failures, merged
    const merged = JSON.parse(run.stdout) as { casesRun: number; failures: { replay: string }[] };
    expect(merged.casesRun).toBe(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).casesRun);
    expect(merged.casesRun).toBeGreaterThan(0);
    expect(merged.failures.every((failure) => existsSync(join(out, failure.replay)))).toBe(true);
    expect(filesUnder(out)).toEqual(before);
  });
});

describe('outputs: a reader that closes stdout early', () => {
  for (const attempt of [1, 2, 3]) {
    it.concurrent(`bench | (closes early), attempt ${attempt}: no stack, no internal error`, async () => {
      const run = await closeAfterFirstChunk([...shortBench, '--exits', String(200 + attempt)]);
      expect(run.stderr).not.toMatch(/EPIPE|internal error|\n\s+at .+:\d+:\d+/);
      expect(run.code).toBe(0);
    });
  }
});
