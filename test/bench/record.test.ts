import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  appendRecord,
  checkRecord,
  machineSlug,
  type RecordedRun,
  recordFileName,
} from '../../bench/record.js';

/** The tracked measurement history (issue 21, item 9): bench/record.ts and every file in bench/results/. */
const machine = { cpuModel: 'AMD EPYC', cpus: 2, node: 'v20.20.2', platform: 'linux-x64' };

function run(time: string, opsPerSecond: number): RecordedRun {
  return {
    time,
    commit: 'abc1234',
    dirty: false,
    loadAverage: { before: [1, 2, 3], after: [1.5, 2, 3] },
    figures: [{ suite: 'sim', name: 'asi / sysbench-cpu', opsPerSecond, rmePercent: 1, samples: 10 }],
  };
}

describe('bench records', () => {
  let directory = '';
  afterEach(() => {
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  it('names a file by date, suite and machine', () => {
    expect(machineSlug(machine)).toBe('amd-epyc-2cpu');
    expect(machineSlug({ cpuModel: 'Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz', cpus: 16 })).toBe(
      'intel-xeon-platinum-8480-16cpu',
    );
    expect(recordFileName('2026-12-06', 'kick-breakdown', 'amd-epyc-2cpu')).toBe(
      '2026-12-06-kick-breakdown-amd-epyc-2cpu.json',
    );
    expect(() => recordFileName('06/12/2026', 'sim', 'x')).toThrow(/YYYY-MM-DD/);
    expect(() => recordFileName('2026-12-06', '../sim', 'x')).toThrow(/suite/);
  });

  it('appends a second run of the same day to the same file, and it passes the check', () => {
    directory = mkdtempSync(join(tmpdir(), 'asi-emu-record-'));
    const first = appendRecord(directory, 'sim', machine, run('2026-12-06T05:00:00.000Z', 1e7));
    const second = appendRecord(directory, 'sim', machine, run('2026-12-06T06:00:00.000Z', 1.1e7));
    expect(second).toBe(first);
    expect(readdirSync(directory)).toEqual(['2026-12-06-sim-amd-epyc-2cpu.json']);
    const record = JSON.parse(readFileSync(first, 'utf8'));
    expect(
      record.runs.map((r: RecordedRun) => (r.figures[0] as { opsPerSecond: number }).opsPerSecond),
    ).toEqual([1e7, 1.1e7]);
    expect(checkRecord(record, '2026-12-06-sim-amd-epyc-2cpu.json')).toEqual([]);
    expect(checkRecord(record, '2026-12-07-sim-amd-epyc-2cpu.json')).toEqual([
      'file name is not 2026-12-06-sim-amd-epyc-2cpu.json',
    ]);
    appendRecord(directory, 'sim', machine, run('2026-12-07T00:00:01.000Z', 1e7));
    expect(readdirSync(directory).sort()).toEqual([
      '2026-12-06-sim-amd-epyc-2cpu.json',
      '2026-12-07-sim-amd-epyc-2cpu.json',
    ]);
  });

  it('every tracked record in bench/results/ has the machine, load, commit and figures', () => {
    const results = join(import.meta.dirname, '../../bench/results');
    const files = readdirSync(results).filter((file) => file.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const problems = checkRecord(JSON.parse(readFileSync(join(results, file), 'utf8')), file);
      expect(problems, file).toEqual([]);
    }
  });
});
