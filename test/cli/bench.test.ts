import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('asi-emu bench --backend sim (the built binary)', () => {
  it('writes the documented JSON shape and prints the table and verdicts', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const out = join(directory, 'out.json');
    const run = runCli([
      'bench',
      '--backend',
      'sim',
      '--policies',
      'none,coschedule,asi',
      '--mix',
      'sysbench-cpu',
      '--exits',
      '3000',
      '--seed',
      '1',
      '--json',
      out,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/policy\s+mix\s+guest share\s+overhead vs none/);
    expect(run.stdout).toMatch(/asi on sysbench-cpu\s+safe/);
    expect(run.stdout).toMatch(/none on sysbench-cpu\s+UNSAFE: breaks INV-1/);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.results.map((result: { policy: string }) => result.policy)).toEqual([
      'none',
      'coschedule',
      'asi',
    ]);
    for (const result of json.results) {
      for (const key of [
        'policy',
        'mix',
        'guestShare',
        'overheadVsNone',
        'exits',
        'isolatedExitShare',
        'switchesToFullPer1kExits',
        'kicksPer1kExits',
        'heldCycles',
        'flushes',
        'faultsByHandler',
        'violations',
      ]) {
        expect(result, key).toHaveProperty(key);
      }
      expect(result.guestShare).toBeGreaterThan(0);
      expect(result.guestShare).toBeLessThanOrEqual(1);
      expect(Object.keys(result.violations)).toContain('INV-1');
    }
    expect(json.results[0].overheadVsNone).toBe(0);
    expect(json.results[2].violations['INV-1']).toBe(0);
    expect(readdirSync(directory)).toEqual(['out.json']); // no temp file left behind
  });

  it('--exit-rate 1000 runs every vCPU at ~1,000 exits/s of modelled time: none achieves it within 10%', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const out = join(directory, 'rate.json');
    const run = runCli([
      'bench',
      '--policies',
      'none,asi',
      '--exit-rate',
      '1000',
      '--exits',
      '3000',
      '--json',
      out,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/1000 exits\/s per vCPU/);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    const none = json.results.find((result: { policy: string }) => result.policy === 'none');
    expect(none.exitsPerSecondTarget).toBe(1000);
    expect(Math.abs(none.achievedExitsPerSecond / 1000 - 1)).toBeLessThan(0.1);
    for (const result of json.results) {
      for (const key of ['guestWork', 'achievedExitsPerSecond', 'exposure'])
        expect(result, key).toHaveProperty(key);
      expect(result.exposure).toHaveProperty('shareOfGuest');
    }
  });

  it('is deterministic: the same seed writes the same numbers', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const args = ['bench', '--policies', 'asi', '--exits', '1000', '--seed', '9', '--json'];
    runCli([...args, join(directory, 'a.json')]);
    runCli([...args, join(directory, 'b.json')]);
    const a = JSON.parse(readFileSync(join(directory, 'a.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(directory, 'b.json'), 'utf8'));
    expect(a.results).toEqual(b.results);
  });

  it('takes a config file', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const config = join(directory, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
        run: { exits: 500 },
      }),
    );
    const run = runCli(['bench', '--config', config, '--policies', 'asi']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/1 cores x 2 threads, 500 exits per run/);
  });

  it('--set sets any config field, over the config file', () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const config = join(directory, 'config.json');
    writeFileSync(config, JSON.stringify({ machine: { cores: 2 }, run: { exits: 200 } }));
    const run = runCli([
      'bench',
      '--config',
      config,
      '--set',
      'machine.cores=1',
      '--set',
      'workload.mix=idle-tracing',
      '--set',
      'policies=["none","asi"]',
      '--set',
      'costs.ipiDelivery=3000',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/1 cores x 2 threads, 200 exits per run/);
    expect(run.stdout).toMatch(/^asi\s+idle-tracing/m);
    expect(run.stdout).not.toMatch(/^coschedule/m);
  });

  it("runs the config file's mix (a user-defined one too) and policies unless --mix and --policies say otherwise", () => {
    const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bench-'));
    const config = join(directory, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        workload: {
          mix: { name: 'my-mix', source: 'made up for this test', weights: { EPT_MISCONFIG: 60, HLT: 40 } },
        },
        policies: ['none', 'asi'],
        run: { exits: 300 },
      }),
    );
    const out = join(directory, 'out.json');
    expect(runCli(['bench', '--config', config, '--json', out]).code).toBe(0);
    const fromFile = JSON.parse(readFileSync(out, 'utf8')).results;
    expect(
      fromFile.map((result: { policy: string; mix: string }) => `${result.policy}/${result.mix}`),
    ).toEqual(['none/my-mix', 'asi/my-mix']);
    expect(
      runCli(['bench', '--config', config, '--mix', 'all-fast', '--policies', 'coschedule', '--json', out])
        .code,
    ).toBe(0);
    const fromFlags = JSON.parse(readFileSync(out, 'utf8')).results;
    expect(
      fromFlags.map((result: { policy: string; mix: string }) => `${result.policy}/${result.mix}`),
    ).toEqual(['coschedule/all-fast']);
  });
});

describe('bad input: exit 2, one line naming the flag or field and what is accepted, no file written', () => {
  const directory = mkdtempSync(join(tmpdir(), 'asi-emu-bad-'));
  const write = (name: string, text: string) => {
    const path = join(directory, name);
    writeFileSync(path, text);
    return path;
  };
  const cases: [string, string[], RegExp][] = [
    ['unknown policy', ['bench', '--policies', 'asi,fast'], /--policies: .*asi.*\(got "fast"\)/],
    ['empty policy list', ['bench', '--policies', ','], /--policies/],
    ['unknown mix', ['bench', '--mix', 'netflix'], /--mix: .*sysbench-cpu/],
    ['exits zero', ['bench', '--exits', '0'], /--exits: an integer 1\.\./],
    ['exits not a number', ['bench', '--exits', 'many'], /--exits: an integer/],
    ['negative seed', ['bench', '--seed', '-1'], /--seed/],
    [
      'unknown backend',
      ['bench', '--backend', 'gpu'],
      /option '--backend <backend>' argument 'gpu' is invalid/,
    ],
    ['--kick on sim', ['bench', '--kick'], /--kick: only with --backend workers/],
    [
      'missing config file',
      ['bench', '--config', join(directory, 'nope.json')],
      /--config: a readable config file/,
    ],
    [
      'config not JSON',
      ['bench', '--config', write('bad.json', '{ machine: ')],
      /--config: a config file of valid JSON/,
    ],
    ['config an array', ['bench', '--config', write('array.json', '[1,2]')], /config|--config/],
    [
      'config zero cores',
      ['bench', '--config', write('cores.json', '{"machine":{"cores":0}}')],
      /machine\.cores: cores must be 1\.\.256/,
    ],
    ['config smt 5', ['bench', '--config', write('smt.json', '{"machine":{"smt":5}}')], /machine\.smt/],
    [
      'config l1d sets 48',
      ['bench', '--config', write('sets.json', '{"machine":{"l1d":{"sets":48}}}')],
      /machine\.l1d\.sets: .*power of two/,
    ],
    [
      'config memory too small',
      ['bench', '--config', write('memory.json', '{"machine":{"memoryMiB":4}}')],
      /machine\.memoryMiB: at least \d+ MiB/,
    ],
    [
      'config unknown mix',
      ['bench', '--config', write('mix.json', '{"workload":{"mix":"x"}}')],
      /workload\.mix/,
    ],
    [
      'config unknown exit reason in a mix',
      [
        'bench',
        '--config',
        write('reason.json', '{"workload":{"mix":{"name":"m","source":"s","weights":{"VMFUNC":1}}}}'),
      ],
      /workload\.mix\.weights\.VMFUNC: an exit reason/,
    ],
    [
      'config mix without source',
      ['bench', '--config', write('source.json', '{"workload":{"mix":{"name":"m","weights":{"HLT":1}}}}')],
      /workload\.mix\.source/,
    ],
    [
      'config negative cost',
      ['bench', '--config', write('cost.json', '{"costs":{"ipiDelivery":-5}}')],
      /costs\.ipiDelivery/,
    ],
    [
      'config unknown cost',
      ['bench', '--config', write('cost2.json', '{"costs":{"warpDrive":1}}')],
      /costs.*warpDrive|warpDrive.*costs/,
    ],
    [
      'config misspelt section',
      ['bench', '--config', write('section.json', '{"machin":{"cores":4}}')],
      /machin: not a config field; the fields are machine, workload, costs, run, policies/,
    ],
    [
      'config unknown policy',
      ['bench', '--config', write('policies.json', '{"policies":["asi","fast"]}')],
      /policies\[1\]: a list of policy names .*\(got "fast"\)/,
    ],
    [
      'config policies not a list',
      ['bench', '--config', write('policies2.json', '{"policies":"asi"}')],
      /policies: a list of policy names/,
    ],
    [
      'machine --json names a directory',
      ['machine', '--json', directory],
      /--json: a file path \(it names a directory\)/,
    ],
    [
      '--report names a directory (the --json file is not written either)',
      ['bench', '--report', directory],
      /--report: a file path \(it names a directory\)/,
    ],
    [
      '--trace under a file',
      ['bench', '--trace', join(write('plain.txt', 'x'), 'trace.json')],
      /--trace: a path under a directory/,
    ],
    [
      '--trace with the workers kick benchmark',
      ['bench', '--backend', 'workers', '--kick', '--trace', join(directory, 'trace.json')],
      /--trace: a policy run, not with --kick/,
    ],
    ['config run exits 0', ['bench', '--config', write('run.json', '{"run":{"exits":0}}')], /run\.exits/],
    [
      'config injection on a missing thread',
      [
        'bench',
        '--config',
        write('inject.json', '{"workload":{"injections":[{"thread":99,"atCycles":1,"vector":"nmi"}]}}'),
      ],
      /workload\.injections\[0\]\.thread/,
    ],
    [
      'config bad vector',
      [
        'bench',
        '--config',
        write('vector.json', '{"workload":{"injections":[{"thread":0,"atCycles":1,"vector":"smi"}]}}'),
      ],
      /workload\.injections\[0\]\.vector/,
    ],
    [
      'fuzz --out names a file',
      ['fuzz', '--policy', 'asi', '--cases', '5', '--seed', '1', '--out', write('replays.txt', 'x')],
      /--out: a directory path \(it names a file\)/,
    ],
    [
      '--set without a section',
      ['bench', '--set', 'cores=4'],
      /--set: PATH=VALUE with PATH a config field under machine/,
    ],
    ['--set without a value', ['bench', '--set', 'machine.cores'], /--set: PATH=VALUE/],
    ['--set a bad value', ['bench', '--set', 'machine.smt=5'], /machine\.smt: smt must be 1\.\.4/],
    ['--exit-rate 0', ['bench', '--exit-rate', '0'], /--exit-rate: a number 1\.\.10000000/],
    ['--exit-rate not a number', ['bench', '--exit-rate', 'fast'], /--exit-rate: a number 1\.\.10000000/],
    [
      '--set a removed cost',
      ['bench', '--set', 'costs.guestQuantum=1000'],
      /costs\.guestQuantum: removed .*workload\.exitsPerSecond/,
    ],
    ['machine --cores 0', ['machine', '--cores', '0'], /--cores: an integer 1\.\.256/],
    ['machine --smt 9', ['machine', '--smt', '9'], /--smt: an integer 1\.\.4/],
    ['unknown option', ['bench', '--fast'], /unknown option '--fast'/],
    ['unknown command', ['benchmark'], /unknown command/],
  ];
  it.each(cases)('%s', (_title, args, message) => {
    const out = join(directory, `out-${_title.replace(/\W+/g, '-')}.json`);
    const run = runCli([...args, ...(args[0] === 'bench' ? ['--json', out] : [])]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(out)).toBe(false);
  });
});
