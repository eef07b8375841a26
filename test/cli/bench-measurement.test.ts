import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

/**
 * Issue 20 (items 1, 5, 6) through the built binary: repeats with 95% CIs, bench as a CI gate with
 * users' policy modules on both backends, and JSON documents that say which tool and schema wrote them.
 */
const require = createRequire(import.meta.url);
const packageVersion = (require('../../package.json') as { version: string }).version;
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const distPolicy = join(import.meta.dirname, '..', '..', 'dist', 'src', 'index.js');

/** The published schema, found as a user finds it: through the package's exports. */
function benchSchemaValidator() {
  const path = require.resolve('asi-emu/schema/bench.schema.json');
  const ajv = new Ajv({ allErrors: true, strict: true });
  return ajv.compile(JSON.parse(readFileSync(path, 'utf8')));
}

function directory(): string {
  return mkdtempSync(join(tmpdir(), 'asi-emu-measure-'));
}

/** A user's module next to the test's outputs: `members` spread into an asi copy, as a user would. */
function moduleFile(dir: string, name: string, members: string): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(
    path,
    `import { policies, definePolicy } from ${JSON.stringify(distPolicy)};\n` +
      `export default definePolicy({ ...policies.asi, name: '${name}', description: 'test module', ${members} });\n`,
  );
  return path;
}

interface ResultJson {
  policy: string;
  repeats: number;
  overheadVsNone: number;
  overheadVsNoneCi95: number;
  overheadVsKvmDefault: number;
  overheadVsKvmDefaultCi95: number;
  guestShareCi95: number;
  meantToBeSafe: boolean;
  perRepeat: { seed: number; overheadVsNone: number; overheadVsKvmDefault: number; guestShare: number }[];
  violations: Record<string, number>;
}

describe('bench --repeats: means with 95% CIs, paired seeds', () => {
  it('--repeats 5 --json on sysbench-cpu with none, asi and coschedule: CIs, per-repeat values, ± in the table, the schema', () => {
    const dir = directory();
    const out = join(dir, 'out.json');
    const run = runCli([
      'bench',
      '--policies',
      'none,asi,coschedule',
      '--mix',
      'sysbench-cpu',
      '--exits',
      '4000',
      '--repeats',
      '5',
      '--json',
      out,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/5 repeats from seed 1/);
    // e.g. `asi  sysbench-cpu  57.0% ± 0.6  10.0% ± 1.8 ...`
    expect(run.stdout).toMatch(/^asi\s+sysbench-cpu\s+\d+\.\d% ± \d+\.\d\s+\d+\.\d\d% ± \d+\.\d\d/m);
    expect(run.stdout).toMatch(/^coschedule\s+sysbench-cpu\s+\d+\.\d% ± \d+\.\d\s+\d+\.\d\d% ± \d+\.\d\d/m);
    expect(run.stdout).toMatch(/asi on sysbench-cpu\s+safe: no invariant broken in \d+ exits over 5 repeats/);

    const json = JSON.parse(readFileSync(out, 'utf8'));
    const validate = benchSchemaValidator();
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    expect(json.tool).toEqual({ name: 'asi-emu', version: packageVersion });
    expect(json.schemaVersion).toBe(1);
    expect(json.format).toBe('asi-emu-bench');
    expect(json.run.repeats).toBe(5);
    expect(json.repeatSeeds).toHaveLength(5);
    expect(json.repeatSeeds[0]).toBe(1);
    expect(json.mixes.map((mix: { name: string }) => mix.name)).toEqual(['sysbench-cpu']);
    expect(json.mixes[0].weights.MSR_WRITE).toBeGreaterThan(0);
    // The rate used: the mix's published one (no workload.exitsPerSecond was given), per result too.
    expect(json.mixes[0].exitsPerSecond).toBe(1143);
    expect(json.workload.exitsPerSecond).toBeUndefined();

    const results = json.results as ResultJson[];
    expect(results.map((result) => result.policy)).toEqual(['none', 'asi', 'coschedule']);
    for (const result of results) {
      expect(result.repeats).toBe(5);
      expect(result.perRepeat.map((repeat) => repeat.seed)).toEqual(json.repeatSeeds);
      expect(result.guestShareCi95).toBeGreaterThan(0);
      const mean = result.perRepeat.reduce((sum, repeat) => sum + repeat.overheadVsNone, 0) / 5;
      expect(result.overheadVsNone).toBeCloseTo(mean, 12);
    }
    // none against itself, paired: exactly 0 in every repeat, so its interval is exactly 0 wide.
    expect(results[0].perRepeat.every((repeat) => repeat.overheadVsNone === 0)).toBe(true);
    expect(results[0].overheadVsNoneCi95).toBe(0);
    for (const result of results.slice(1)) expect(result.overheadVsNoneCi95).toBeGreaterThan(0);
    // kvm-default is each repeat's second baseline on the sim, compared or not (issue 19 item 6).
    expect(run.stdout).toMatch(/overhead vs none\s+vs kvm-default/);
    for (const result of results) {
      const mean = result.perRepeat.reduce((sum, repeat) => sum + repeat.overheadVsKvmDefault, 0) / 5;
      expect(result.overheadVsKvmDefault).toBeCloseTo(mean, 12);
      expect(result.overheadVsKvmDefaultCi95).toBeGreaterThan(0);
    }
    expect(readdirSync(dir)).toEqual(['out.json']);
  });

  it('one repeat is the run bench always made: no intervals, and the JSON still validates', () => {
    const dir = directory();
    const out = join(dir, 'one.json');
    const run = runCli([
      'bench',
      '--policies',
      'none,asi',
      '--exits',
      '1000',
      '--repeats',
      '1',
      '--json',
      out,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/±/);
    expect(run.stdout).toMatch(/seed 1, 1 repeat/);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.results[1].overheadVsNoneCi95).toBeNull();
    expect(json.results[1].perRepeat).toHaveLength(1);
    const validate = benchSchemaValidator();
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
  });

  it('run.repeats in a config file, --repeats over it; bad values exit 2 naming the field or flag', () => {
    const dir = directory();
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ run: { exits: 500, repeats: 2 } }));
    const out = join(dir, 'out.json');
    expect(runCli(['bench', '--config', config, '--policies', 'asi', '--json', out]).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).results[0].repeats).toBe(2);
    expect(
      runCli(['bench', '--config', config, '--policies', 'asi', '--repeats', '3', '--json', out]).code,
    ).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).results[0].repeats).toBe(3);

    const zero = runCli(['bench', '--repeats', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toMatch(/--repeats: an integer 1\.\.1000 \(got "0"\)/);
    writeFileSync(config, JSON.stringify({ run: { repeats: 1.5 } }));
    const fraction = runCli(['bench', '--config', config]);
    expect(fraction.code).toBe(2);
    expect(fraction.stderr).toMatch(/run\.repeats/);
    const tooMany = runCli(['bench', '--set', 'run.repeats=5000']);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/run\.repeats: run\.repeats must be 1\.\.1000/);
  });
});

describe('bench --fail-on-violation: a CI gate', () => {
  it('--policies asi,none exits 0: none is unsafe by design, asi holds', () => {
    const run = runCli([
      'bench',
      '--fail-on-violation',
      '--policies',
      'asi,none',
      '--exits',
      '2000',
      '--repeats',
      '2',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/none on sysbench-cpu\s+UNSAFE: breaks INV-1/);
  });

  it('a planted policy module (asi without its entry barrier) exits 1 and says which policy broke what', () => {
    const dir = directory();
    const out = join(dir, 'out.json');
    const run = runCli([
      'bench',
      '--fail-on-violation',
      '--policies',
      'asi,none',
      '--policy-module',
      join(fixtures, 'user-policy.mjs'),
      '--exits',
      '2000',
      '--repeats',
      '2',
      '--json',
      out,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /--fail-on-violation: user-asi-no-barrier on sysbench-cpu is meant to be safe and broke INV-1 x\d+/,
    );
    expect(run.stderr).not.toMatch(/\bnone on\b|\basi on\b/);
    // One table: the user's policy beside the built-ins, and the JSON is still written.
    expect(run.stdout).toMatch(/^asi\s+sysbench-cpu/m);
    expect(run.stdout).toMatch(/^user-asi-no-barrier\s+sysbench-cpu/m);
    expect(run.stdout).toMatch(/user-asi-no-barrier on sysbench-cpu\s+UNSAFE \(a policy meant to be safe\)/);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.results.map((result: ResultJson) => result.policy)).toEqual([
      'asi',
      'none',
      'user-asi-no-barrier',
    ]);
    expect(json.results.map((result: ResultJson) => result.meantToBeSafe)).toEqual([true, false, true]);
    expect(json.policyModules[0]).toMatchObject({ name: 'user-asi-no-barrier', safe: true });
    expect(json.policyModules[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    const validate = benchSchemaValidator();
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    // Without the flag the same findings are findings, not a failure of the command.
    const plain = runCli([
      'bench',
      '--policies',
      'none',
      '--policy-module',
      join(fixtures, 'user-policy.mjs'),
      '--exits',
      '1000',
      '--repeats',
      '1',
    ]);
    expect(plain.code).toBe(0);
  });

  it('a module that says safe: false is not held to the invariants; a safe module that holds them passes', () => {
    const dir = directory();
    const unsafe = moduleFile(dir, 'demo-no-barrier', 'safe: false, mayEnter: () => true');
    const gate = ['bench', '--fail-on-violation', '--policies', 'none', '--exits', '1000', '--repeats', '1'];
    const run = runCli([...gate, '--policy-module', unsafe]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/demo-no-barrier on sysbench-cpu\s+UNSAFE: breaks INV-1/);
    const safe = moduleFile(dir, 'my-asi', 'safe: true');
    const held = runCli([...gate, '--policy-module', safe]);
    expect(held.code).toBe(0);
    expect(held.stdout).toMatch(/my-asi on sysbench-cpu\s+safe/);
  });

  it('--policy-module on the workers backend: the same table and gate', () => {
    const run = runCli(
      [
        'bench',
        '--backend',
        'workers',
        '--fail-on-violation',
        '--policies',
        'asi',
        '--policy-module',
        join(fixtures, 'user-policy.mjs'),
        '--exits',
        '3000',
      ],
      { timeoutMs: 180_000 },
    );
    expect(run.stdout).toMatch(/^asi\s+sysbench-cpu/m);
    expect(run.stdout).toMatch(/^user-asi-no-barrier\s+sysbench-cpu/m);
    expect(run.stdout).toMatch(/seed 1, 1 repeat/);
    // Real threads: whether this short run caught the missing barrier depends on the schedule, and
    // the exit code says whether it did.
    const caught = /user-asi-no-barrier on sysbench-cpu\s+UNSAFE/.test(run.stdout);
    expect(run.code).toBe(caught ? 1 : 0);
    if (caught) expect(run.stderr).toMatch(/--fail-on-violation: user-asi-no-barrier on sysbench-cpu/);
  }, 200_000);

  it('a module hook that throws is that policy’s failure: exit 1 naming the policy and hook, with its stack', () => {
    const run = runCli([
      'bench',
      '--policies',
      'none',
      '--policy-module',
      join(fixtures, 'crash-policy.mjs'),
      '--exits',
      '1000',
      '--repeats',
      '1',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /policy crash-at-entry \(.*crash-policy\.mjs\) failed: hook mayEnter threw: planted crash/,
    );
    expect(run.stderr).toMatch(/crash-policy\.mjs:\d+/);
  });

  it('bad modules exit 2: a bad `safe`, a built-in’s name, one module twice', () => {
    const dir = directory();
    const badSafe = join(dir, 'bad-safe.mjs');
    writeFileSync(badSafe, "export default { name: 'bad-safe', description: 'x', safe: 'no' };\n");
    const run = runCli(['bench', '--policy-module', badSafe, '--exits', '500', '--repeats', '1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /--policy-module .*bad-safe\.mjs: policy\.safe: one of true, false \(got "no"\)/,
    );
    const builtinName = join(dir, 'named-asi.mjs');
    writeFileSync(builtinName, "export default { name: 'asi', description: 'x' };\n");
    const clash = runCli(['bench', '--policy-module', builtinName]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(
      /--policy-module: a module whose policy has a name of its own .*named asi, as a built-in policy/,
    );
    const mine = moduleFile(dir, 'mine', 'safe: true');
    const out = join(dir, 'out.json');
    const twice = runCli(['bench', '--policy-module', mine, '--policy-module', mine, '--json', out]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/named mine, as another --policy-module/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('JSON that lasts: every result document says which tool and schema wrote it', () => {
  it('the fuzz summary and its replay files carry tool and schemaVersion; listings stay plain arrays', () => {
    const dir = directory();
    const out = join(dir, 'fuzz-out');
    const run = runCli([
      'fuzz',
      '--policy',
      'none',
      '--cases',
      '3',
      '--seed',
      '1',
      '--jobs',
      '1',
      '--out',
      out,
    ]);
    expect(run.code).toBe(1); // none breaks INV-1
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.tool).toEqual({ name: 'asi-emu', version: packageVersion });
    expect(summary.schemaVersion).toBe(1);
    const replayName = readdirSync(out).find((name) => name.endsWith('.replay.json'));
    expect(replayName).toBeDefined();
    const replay = JSON.parse(readFileSync(join(out, replayName as string), 'utf8'));
    expect(replay.tool).toEqual({ name: 'asi-emu', version: packageVersion });
    expect(replay.schemaVersion).toBe(3);
    // The replay file with its tool field reads back (the strict reader accepts it).
    expect(runCli(['replay', join(out, replayName as string)]).code).toBe(1);

    for (const command of ['mixes', 'policies']) {
      const listing = runCli([command, '--json']);
      expect(listing.code).toBe(0);
      expect(Array.isArray(JSON.parse(listing.stdout)), command).toBe(true);
    }
  });
});
