import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inputLimits, jsonDepth, readBoundedText, readJsonInput } from '../../src/config/input-limits.js';
import { UsageError } from '../../src/errors.js';
import { expectCleanError, filesUnder, fuzzReplayFile, hostileRoot, runHostile } from './harness.js';

/**
 * Issue 18, the input side: every hostile config, flag or replay file gets exit 2 and one line naming
 * the field or flag, no stack trace, no hang, and no output file left behind. Runs the built CLI
 * (`npm run build` first). Short runs (`--exits 200`) keep the file quick.
 */
const root = hostileRoot('inputs');
const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const bench = ['bench', '--policies', 'asi', '--exits', '200'];
let replayFile = '';
let replay: Record<string, unknown>;

/** A copy of the valid replay file with `edit` applied, written under the root. */
// biome-ignore lint/suspicious/noExplicitAny: a tampered file is any shape by design.
function tamperedReplay(name: string, edit: (document: any) => void): string {
  const document = structuredClone(replay);
  edit(document);
  const path = join(root.root, `${name}.replay.json`);
  writeFileSync(path, JSON.stringify(document));
  return path;
}

/** Runs `args` with `--json DIR/o.json` appended; asserts the clean refusal and that DIR stays empty. */
async function refusedWithoutOutput(args: string[], names: RegExp, jsonFlag = true): Promise<void> {
  const dir = root.dir('out');
  const run = await runHostile(jsonFlag ? [...args, '--json', join(dir, 'o.json')] : args);
  expectCleanError(run, 2, names);
  expect(filesUnder(dir)).toEqual([]);
}

beforeAll(async () => {
  replayFile = await fuzzReplayFile(root.dir('fuzz'));
  replay = JSON.parse(readFileSync(replayFile, 'utf8'));
}, 60_000);
afterAll(() => root.removeAll());

describe('the one bounded reader (in process, cap injected)', () => {
  const refuse = (accepted: string, got: unknown) => new UsageError('--config', accepted, got);

  it('stops a file past the cap and says the limit', () => {
    const path = join(root.root, 'just-over.json');
    writeFileSync(path, ' '.repeat(1025));
    expect(() => readBoundedText(path, 'config file', refuse, 1024)).toThrow(
      /at most 1024 bytes \(the input size limit\)/,
    );
    expect(readBoundedText(path, 'config file', refuse, 1025)).toHaveLength(1025);
  });

  it('stops /dev/zero at the cap', () => {
    expect(() => readBoundedText('/dev/zero', 'config file', refuse, 4096)).toThrow(/more than 4096 bytes/);
  });

  it('measures a million levels of nesting without recursion, strings skipped', () => {
    expect(jsonDepth(deep(1_000_000))).toBe(1_000_000);
    expect(jsonDepth('{"a":"[[[[\\"[[[","b":[1,[2]]}')).toBe(3);
    const path = join(root.root, 'deep-in-process.json');
    writeFileSync(path, deep(inputLimits.jsonDepthMax + 1));
    expect(() => readJsonInput(path, 'config file', refuse)).toThrow(/nested at most 64 levels/);
  });
});

describe('config files and --set', () => {
  it.concurrent('bench --config /dev/zero stops at the size cap', async () => {
    await refusedWithoutOutput([...bench, '--config', '/dev/zero'], /--config: .*at most 64 MiB/);
  });

  it.concurrent('machine --config /dev/zero stops at the size cap', async () => {
    await refusedWithoutOutput(['machine', '--config', '/dev/zero'], /--config: .*at most 64 MiB/);
  });

  it.concurrent('a config file one byte over 64 MiB is refused', async () => {
    const path = join(root.root, 'over-cap.json');
    writeFileSync(path, '');
    truncateSync(path, inputLimits.fileBytesMax + 1);
    await refusedWithoutOutput([...bench, '--config', path], /--config: .*at most 64 MiB/);
  });

  it.concurrent('a config nested 100,000 deep', async () => {
    const path = join(root.root, 'deep.json');
    writeFileSync(path, `{"machine":${deep(100_000)}}`);
    await refusedWithoutOutput([...bench, '--config', path], /--config: .*nested at most 64 levels/);
  });

  // 60,000 levels: one argument is at most 128 KiB on Linux (MAX_ARG_STRLEN); 100,000 would not start.
  it.concurrent('a --set value nested 60,000 deep', async () => {
    await refusedWithoutOutput([...bench, '--set', `machine.vms=${deep(60_000)}`], /--set: .*64 levels deep/);
  });

  it.concurrent('a JSON array as config', async () => {
    const path = join(root.root, 'array.json');
    writeFileSync(path, '[1,2]');
    await refusedWithoutOutput([...bench, '--config', path], /--config: a JSON object/);
  });

  it.concurrent('a config that is a string', async () => {
    const path = join(root.root, 'string.json');
    writeFileSync(path, '"machine"');
    await refusedWithoutOutput([...bench, '--config', path], /--config: a JSON object/);
  });

  it.concurrent('machine --config refuses a misspelt section as bench does', async () => {
    const path = join(root.root, 'misspelt.json');
    writeFileSync(path, '{"machin":{"cores":4}}');
    await refusedWithoutOutput(['machine', '--config', path], /machin: not a config field/);
    await refusedWithoutOutput([...bench, '--config', path], /machin: not a config field/);
  });

  it.concurrent('a config with duplicate policies', async () => {
    const path = join(root.root, 'dup-policies.json');
    writeFileSync(path, '{"policies":["asi","none","asi"]}');
    await refusedWithoutOutput(
      ['bench', '--exits', '200', '--config', path],
      /policies\[2\]: .*without repeats/,
    );
  });

  it.concurrent('--set cannot reach Object.prototype', async () => {
    await refusedWithoutOutput([...bench, '--set', 'machine.__proto__.cores=1'], /--set: PATH=VALUE/);
  });

  it.concurrent.each([
    ['machine.cores="x"', /machine\.cores/],
    ['machine.cores=-1', /machine\.cores: cores must be 1\.\.256/],
    ['machine.smt=1e309', /machine\.smt/],
    ['machine.l1d=5', /machine\.l1d/],
    ['machine.vms=[]', /machine\.vms: at least one VM/],
    ['machine.pageTablePoolPages=1e12', /machine\.pageTablePoolPages: .*16\.\.262144/],
    ['workload.mix=5', /workload\.mix/],
    ['workload.guestQuantumCycles="NaN"', /workload\.guestQuantumCycles/],
    ['costs.ipiDelivery=-1', /costs\.ipiDelivery/],
    ['costs=[]', /costs/],
    ['run.seed=1e300', /run\.seed: .*2\^53-1/],
    ['run.jitterCycles=-1', /run\.jitterCycles/],
    ['policies=5', /policies: a list of policy names/],
  ])('--set %s: wrong type or range, named', async (setting, names) => {
    const args = setting.startsWith('policies') ? ['bench', '--exits', '200'] : bench;
    await refusedWithoutOutput([...args, '--set', setting], names);
  });

  it.concurrent('mix weights of 1e308 (their sum overflows) are refused', async () => {
    const mix = '{"name":"m","source":"test","weights":{"HLT":1e308,"CPUID":1e308}}';
    await refusedWithoutOutput(
      [...bench, '--set', `workload.mix=${mix}`],
      /workload\.mix\.weights\.HLT: .*0\.\.1000000000000/,
    );
  });
});

describe('flags and the bounds they advertise', () => {
  it.concurrent('--policies asi,asi', async () => {
    await refusedWithoutOutput(
      ['bench', '--exits', '200', '--policies', 'asi,asi'],
      /--policies: .*without repeats.*"asi"/,
    );
  });

  it.concurrent('--mix idle-tracing,idle-tracing', async () => {
    await refusedWithoutOutput([...bench, '--mix', 'idle-tracing,idle-tracing'], /--mix: .*without repeats/);
  });

  it.concurrent('--seed past 2^53-1 says 2^53-1, not 16 digits', async () => {
    const dir = root.dir('seed');
    const run = await runHostile([...bench, '--seed', '99999999999999999', '--json', join(dir, 'o.json')]);
    expectCleanError(run, 2, /--seed: an integer 0\.\.2\^53-1/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it.concurrent('machine --memory-mib 1048576 is past the advertised maximum', async () => {
    await refusedWithoutOutput(
      ['machine', '--memory-mib', '1048576'],
      /--memory-mib: an integer 1\.\.524288/,
    );
  });

  it.concurrent('machine.memoryMiB past the maximum, in a config', async () => {
    await refusedWithoutOutput(
      [...bench, '--set', 'machine.memoryMiB=1048576'],
      /machine\.memoryMiB: memoryMiB must be 1\.\.524288/,
    );
  });

  it.concurrent('a layout too large for any memory suggests no size past the maximum', async () => {
    const vms = '[{"vcpus":2,"guestMemoryMiB":524288},{"vcpus":2,"guestMemoryMiB":524288}]';
    const dir = root.dir('layout');
    const run = await runHostile([...bench, '--set', `machine.vms=${vms}`, '--json', join(dir, 'o.json')]);
    expectCleanError(run, 2, /machine\.memoryMiB: a layout that fits 524288 MiB/);
    expect(run.stderr).not.toMatch(/at least \d+ MiB/);
    expect(filesUnder(dir)).toEqual([]);
  });

  it.concurrent('an exit interval the run cannot make progress on (1e12)', async () => {
    await refusedWithoutOutput(
      [...bench, '--set', 'workload.exitIntervalCycles=1e12'],
      /workload\.exitIntervalCycles: at most 10000000/,
    );
  });
});

describe('the workers backend refuses up front', () => {
  const workers = ['bench', '--backend', 'workers', '--policies', 'asi', '--exits', '200'];

  it.concurrent('exitIntervalCycles=1e300 (was ~10 minutes of silence per run)', async () => {
    await refusedWithoutOutput(
      [...workers, '--set', 'workload.exitIntervalCycles=1e300'],
      /workload\.exitIntervalCycles/,
    );
  });

  it.concurrent('256 vCPUs (was a start-up timeout after 39 s at 3.6 GB)', async () => {
    const run = await runHostile([
      ...workers,
      '--set',
      'machine.cores=128',
      '--set',
      'machine.vms=[{"vcpus":256,"guestMemoryMiB":1}]',
    ]);
    expectCleanError(run, 2, /machine\.vms\[0\]\.vcpus: at most 64 vCPUs/);
    // Refused up front, before any worker or run starts (the error says so); a run that started
    // would end by the spawn's time limit instead. No wall-time bound: a loaded machine is slow.
  });

  it.concurrent('a confidential VM (was dropped silently)', async () => {
    await refusedWithoutOutput(
      [...workers, '--set', 'machine.vms=[{"vcpus":2,"guestMemoryMiB":1,"confidential":true}]'],
      /machine\.vms\[0\]\.confidential: false on the workers backend/,
    );
  });
});

describe('replay files', () => {
  it.concurrent('replay /dev/zero stops at the size cap', async () => {
    expectCleanError(
      await runHostile(['replay', '/dev/zero']),
      2,
      /\/dev\/zero: a replay file of at most 64 MiB/,
    );
  });

  it.concurrent('a replay file nested 100,000 deep', async () => {
    const path = join(root.root, 'deep.replay.json');
    writeFileSync(path, `{"format":"asi-emu-replay","case":${deep(100_000)}}`);
    expectCleanError(await runHostile(['replay', path]), 2, /nested at most 64 levels/);
  });

  it.concurrent('the untouched replay file replays (the fixture is valid)', async () => {
    const run = await runHostile(['replay', replayFile]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/violation INV-9/);
  });

  it.concurrent('100 M exits (would run for minutes)', async () => {
    const path = tamperedReplay('exits', (document) => {
      document.case.run.exits = 100_000_000;
    });
    const run = await runHostile(['replay', path]);
    expectCleanError(run, 2, /case\.run\.exits: at most 300, the fuzzer's own limit/);
    // Refused up front, before any worker or run starts (the error says so); a run that started
    // would end by the spawn's time limit instead. No wall-time bound: a loaded machine is slow.
  });

  it.concurrent('too many cores', async () => {
    const path = tamperedReplay('cores', (document) => {
      document.case.machine.cores = 64;
    });
    expectCleanError(await runHostile(['replay', path]), 2, /case\.machine\.cores: at most 2/);
  });

  it.concurrent('too many scheduler choices', async () => {
    const path = tamperedReplay('choices', (document) => {
      document.case.choices = new Array(100_000).fill(1);
    });
    expectCleanError(await runHostile(['replay', path]), 2, /case\.choices \(count\): at most 64/);
  });

  it.concurrent('a schedule naming a hyperthread that runs no vCPU', async () => {
    const path = tamperedReplay('schedule', (document) => {
      document.case.schedule = [{ thread: 99 }];
      document.case.choices = [];
    });
    expectCleanError(
      await runHostile(['replay', path]),
      2,
      /case\.schedule\[0\]\.thread: a hyperthread that runs a vCPU of this machine/,
    );
  });

  it.concurrent("drawn linux-asi settings on a policy that is not today's ASI", async () => {
    const path = tamperedReplay('linux-asi-on-asi', (document) => {
      document.case.linuxAsi = {};
    });
    expectCleanError(
      await runHostile(['replay', path]),
      2,
      /case\.linuxAsi: absent: policy planted-lost-wakeup/,
    );
  });

  it.concurrent('a host-process mix (class user) that names VM exits', async () => {
    const path = tamperedReplay('user-mix-vm-exits', (document) => {
      document.case.workload.mix.class = 'user';
    });
    expectCleanError(await runHostile(['replay', path]), 2, /case\.workload\.mix\.weights\./);
  });

  it.concurrent('a negative seed', async () => {
    const path = tamperedReplay('seed', (document) => {
      document.case.run.seed = -1;
    });
    expectCleanError(await runHostile(['replay', path]), 2, /case\.run\.seed/);
  });

  it.concurrent('no cycle cap (maxCycles 0)', async () => {
    const path = tamperedReplay('uncapped', (document) => {
      document.case.run.maxCycles = 0;
    });
    expectCleanError(await runHostile(['replay', path]), 2, /case\.run\.maxCycles/);
  });

  it.concurrent('a truncated replay file', async () => {
    const path = join(root.root, 'truncated.replay.json');
    writeFileSync(path, readFileSync(replayFile, 'utf8').slice(0, 500));
    expectCleanError(await runHostile(['replay', path]), 2, /a replay file of valid JSON/);
  });

  it.concurrent('a garbled replay file', async () => {
    const path = join(root.root, 'garbled.replay.json');
    writeFileSync(path, readFileSync(replayFile, 'utf8').replaceAll('"', "'"));
    expectCleanError(await runHostile(['replay', path]), 2, /a replay file of valid JSON/);
  });

  it.concurrent('another format (a fuzz summary)', async () => {
    const path = tamperedReplay('format', (document) => {
      document.format = 'asi-emu-fuzz-summary';
    });
    expectCleanError(await runHostile(['replay', path]), 2, /format: "asi-emu-replay"/);
  });

  it.concurrent('another schemaVersion', async () => {
    const path = tamperedReplay('version', (document) => {
      document.schemaVersion = 99;
    });
    expectCleanError(await runHostile(['replay', path]), 2, /schemaVersion: replay schema version 2/);
  });

  it.concurrent('--trace is not written for a refused file', async () => {
    const dir = root.dir('trace');
    const path = tamperedReplay('trace', (document) => {
      document.case.run.exits = 100_000_000;
    });
    expectCleanError(
      await runHostile(['replay', path, '--trace', join(dir, 't.json')]),
      2,
      /case\.run\.exits/,
    );
    expect(filesUnder(dir)).toEqual([]);
  });
});

describe('fuzz merge reads summaries through the same reader', () => {
  it.concurrent('a summary nested 100,000 deep', async () => {
    const path = join(root.root, 'deep-summary.json');
    writeFileSync(path, deep(100_000));
    const dir = root.dir('merge');
    const run = await runHostile(['fuzz', 'merge', path, '--out', join(dir, 'merged.json')]);
    expectCleanError(run, 2, /a fuzz summary nested at most 64 levels/);
    expect(filesUnder(dir)).toEqual([]);
  });
});
