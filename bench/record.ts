import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/report/atomic-write.js';
import type { BenchFigure } from './common.js';

/**
 * The tracked measurement history (issue 21, item 9): `npm run bench -- SUITE --record` appends the
 * run to `bench/results/<date>-<suite>-<machine>.json` (one file per suite, day and kind of machine;
 * a second run that day joins the first), written atomically. Each run carries the facts a figure needs
 * to be read later: the machine (CPU model and count, Node, platform), the load average before and
 * after, the commit (and whether the tree had changes), and the time. docs/performance.md says how to
 * read and compare them.
 */
export const recordFormat = 'asi-emu-bench-record';
export const recordVersion = 1;

export interface MachineFacts {
  cpuModel: string;
  cpus: number;
  node: string;
  platform: string;
}

export interface RecordedRun {
  /** ISO time the run ended. */
  time: string;
  /** `git rev-parse --short HEAD`, or 'unknown' outside a checkout. */
  commit: string;
  /** Uncommitted changes to tracked files when it ran. */
  dirty: boolean;
  /** os.loadavg() (1, 5, 15 minutes) before and after the run. */
  loadAverage: { before: number[]; after: number[] };
  v8Inlining?: string;
  /** Where the run came from when it was not `--record` (a moved table, a hand-run comparison). */
  source?: string;
  note?: string;
  figures: RecordedFigure[];
}

/**
 * A bench figure, or a figure in another unit (instructions per step, a ratio) from a table moved out
 * of docs/perf-log.md or a hand-run comparison: `value` (and `valueMax` for a range over runs) in `unit`.
 */
export type RecordedFigure =
  | BenchFigure
  | (Omit<BenchFigure, 'opsPerSecond'> & { value: number; valueMax?: number; unit: string });

export interface BenchRecord {
  format: typeof recordFormat;
  version: typeof recordVersion;
  suite: string;
  /** YYYY-MM-DD (UTC) of the runs. */
  date: string;
  /** A slug of the machine (`amd-epyc-2cpu`), as in the file name. */
  machineSlug: string;
  machine: MachineFacts;
  runs: RecordedRun[];
}

export function machineFacts(): MachineFacts {
  const list = cpus();
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cpus: list.length,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** `AMD EPYC` with 2 CPUs: `amd-epyc-2cpu`. */
export function machineSlug(machine: Pick<MachineFacts, 'cpuModel' | 'cpus'>): string {
  const model = machine.cpuModel
    .toLowerCase()
    .replace(/\(r\)|\(tm\)|processor|cpu @.*$/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${model || 'unknown'}-${machine.cpus}cpu`;
}

export function recordFileName(date: string, suite: string, slug: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`record date must be YYYY-MM-DD, got ${date}`);
  if (!/^[a-z0-9-]+$/.test(suite)) throw new Error(`record suite must be [a-z0-9-]+, got ${suite}`);
  return `${date}-${suite}-${slug}.json`;
}

/** The commit of the checkout at `cwd`, and whether its tracked files have changes. */
export function commitOf(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

/**
 * Adds `run` to the record of `suite` on `machine` for the run's date in `directory`, creating it if
 * needed; returns the file's path. The file is rewritten whole, atomically.
 */
export function appendRecord(
  directory: string,
  suite: string,
  machine: MachineFacts,
  run: RecordedRun,
): string {
  const date = run.time.slice(0, 10);
  const slug = machineSlug(machine);
  const path = join(directory, recordFileName(date, suite, slug));
  let record: BenchRecord = {
    format: recordFormat,
    version: recordVersion,
    suite,
    date,
    machineSlug: slug,
    machine,
    runs: [],
  };
  if (existsSync(path)) {
    const existing = JSON.parse(readFileSync(path, 'utf8')) as BenchRecord;
    if (existing.format !== recordFormat || existing.version !== recordVersion)
      throw new Error(`${path} is not a version ${recordVersion} ${recordFormat} file`);
    record = existing;
  }
  record.runs.push(run);
  writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, '--record');
  return path;
}

/** A quick check of a record's shape (test/bench/record.test.ts runs it on every tracked file). */
export function checkRecord(record: unknown, fileName: string): string[] {
  const problems: string[] = [];
  const r = record as Partial<BenchRecord>;
  if (r.format !== recordFormat) problems.push(`format is not ${recordFormat}`);
  if (r.version !== recordVersion) problems.push(`version is not ${recordVersion}`);
  if (typeof r.suite !== 'string' || typeof r.date !== 'string' || typeof r.machineSlug !== 'string')
    problems.push('suite, date and machineSlug are strings');
  else if (fileName !== recordFileName(r.date, r.suite, r.machineSlug))
    problems.push(`file name is not ${recordFileName(r.date, r.suite, r.machineSlug)}`);
  if (!r.machine || typeof r.machine.cpuModel !== 'string' || typeof r.machine.cpus !== 'number')
    problems.push('machine has cpuModel and cpus');
  if (!Array.isArray(r.runs) || r.runs.length === 0) problems.push('runs is a non-empty list');
  else
    r.runs.forEach((run, i) => {
      if (typeof run.time !== 'string' || typeof run.commit !== 'string')
        problems.push(`runs[${i}] has time and commit`);
      if (!run.loadAverage || !Array.isArray(run.loadAverage.before) || !Array.isArray(run.loadAverage.after))
        problems.push(`runs[${i}] has loadAverage.before and .after`);
      if (!Array.isArray(run.figures) || run.figures.length === 0) problems.push(`runs[${i}] has figures`);
      else
        for (const figure of run.figures) {
          const f = figure as { name?: unknown; opsPerSecond?: unknown; value?: unknown; unit?: unknown };
          const numeric =
            (typeof f.opsPerSecond === 'number' && Number.isFinite(f.opsPerSecond)) ||
            (typeof f.value === 'number' && Number.isFinite(f.value) && typeof f.unit === 'string');
          if (typeof f.name !== 'string' || !numeric)
            problems.push(
              `runs[${i}] figure ${JSON.stringify(f.name)} has a name and opsPerSecond or value and unit`,
            );
        }
    });
  return problems;
}

/** Loads the load average now (os.loadavg), rounded to two decimals. */
export function loadAverageNow(): number[] {
  return loadavg().map((value) => Math.round(value * 100) / 100);
}
