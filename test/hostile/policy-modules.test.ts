import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/backend/workers/policy-spec.js';
import { ThreadPolicyView } from '../../src/cpu/policy-view.js';
import { readSummaryFile } from '../../src/fuzz/summary.js';
import { loadPolicyModule, PolicyHookError } from '../../src/policy/policy-module.js';
import { expectCleanError, fuzzReplayFile, hostileRoot, runHostile } from './harness.js';

/**
 * Issue 18, policy modules: one loader for every command, off the main thread and under a time limit;
 * every key and value of a module checked; hooks' return types checked; a read-only view; a throwing
 * hook reported once, with its hook and stack. The modules are written here, as a user would write
 * them (plain objects: no import of the package).
 */
const temp = hostileRoot('modules');
afterAll(temp.removeAll);
const fixtures = join(import.meta.dirname, '..', 'fixtures');
/** The import time limit, lowered for these tests (policy-probe.ts). */
const env = { ASI_EMU_POLICY_LOAD_TIMEOUT_MS: '3000' };

function writeModule(name: string, body: string): string {
  const path = join(temp.root, `${name}.mjs`);
  writeFileSync(path, body);
  return path;
}

/** A policy module exporting `{ name, description, ...members }` as its default export. */
function policyModule(name: string, members: string): string {
  return writeModule(
    name,
    `export default { name: '${name}', description: 'hostile test module', ${members} };\n`,
  );
}

function fuzzArgs(module: string, out: string, extra: string[] = []): string[] {
  return [
    'fuzz',
    '--policy-module',
    module,
    '--cases',
    '6',
    '--seed',
    '1',
    '--jobs',
    '1',
    '--out',
    out,
    ...extra,
  ];
}

describe('fuzz --policy-module refuses a bad module with one line naming the key (exit 2, nothing written)', () => {
  const cases: [string, () => string, RegExp][] = [
    [
      'a module that exports no policy',
      () => join(fixtures, 'not-a-policy.mjs'),
      /--policy-module: .*no policy exported/,
    ],
    ['a missing module', () => join(temp.root, 'missing.mjs'), /--policy-module: .*ENOENT/],
    [
      'a misspelt hook',
      () => policyModule('misspelt', 'mayEntre: () => true'),
      /policy\.mayEntre: a known policy key: one of .*mayEnter/,
    ],
    [
      'an invalid flushPoint',
      () => policyModule('bad-flush-point', "plantedBugs: { flushPoint: 'after_barrier' }"),
      /policy\.plantedBugs\.flushPoint: one of "after-barrier", "before-barrier" \(got "after_barrier"\)/,
    ],
    [
      'an invalid waitFor',
      () => policyModule('bad-wait-for', "plantedBugs: { waitFor: 'acks' }"),
      /policy\.plantedBugs\.waitFor: one of "mode", "ack"/,
    ],
    [
      'a planted-bug switch at the top level, where it was before issue 21',
      () => policyModule('old-switch', 'atomicEntry: false'),
      /policy\.atomicEntry: atomicEntry under plantedBugs: \{ atomicEntry: \.\.\. \}/,
    ],
    ['smt given as a string', () => policyModule('bad-smt', "smt: 'yes'"), /policy\.smt: one of true, false/],
    [
      'a hook that is not a function',
      () => policyModule('hook-not-function', 'mayEnter: true'),
      /policy\.mayEnter: a function/,
    ],
    [
      'a name with a path in it',
      () => writeModule('path-name', "export default { name: '../../escape', description: 'x' };\n"),
      /policy\.name: a name of 1\.\.64 letters/,
    ],
    [
      'no description',
      () => writeModule('no-description', "export default { name: 'nodesc' };\n"),
      /policy\.description: a string/,
    ],
    [
      'an array export',
      () => writeModule('array-export', 'export default [1, 2];\n'),
      /--policy-module .*: policy: a policy object/,
    ],
    [
      'a module that throws on import',
      () => writeModule('throws-on-import', "throw new Error('boom at import');\n"),
      /importing it threw: boom at import/,
    ],
    [
      'a module with a syntax error',
      () => writeModule('syntax-error', 'export default {;\n'),
      /importing it threw/,
    ],
  ];
  for (const [title, makeModule, message] of cases) {
    it.concurrent(title, async () => {
      const out = join(temp.root, `out-${title.replaceAll(' ', '-')}`);
      const run = await runHostile(fuzzArgs(makeModule(), out), { env });
      expectCleanError(run, 2, message);
      expect(existsSync(out)).toBe(false);
    });
  }

  it.concurrent('a module whose import never returns is stopped at the load time limit, off the main thread', async () => {
    const out = join(temp.root, 'out-loop-on-import');
    const run = await runHostile(fuzzArgs(join(fixtures, 'loop-on-import-policy.mjs'), out), {
      env,
      timeoutMs: 20_000,
    });
    // The message says the 3 s limit stopped it; the harness's 20 s kill (timedOut, checked by
    // expectCleanError) says it did not hang. No wall-clock bound: a loaded machine starts slowly.
    expectCleanError(run, 2, /--policy-module: .*still loading after 3 s/);
    expect(existsSync(out)).toBe(false);
  });

  it.concurrent('--policy naming another policy than the module holds', async () => {
    const run = await runHostile(
      [
        'fuzz',
        '--policy',
        'asi',
        ...fuzzArgs(join(fixtures, 'user-policy.mjs'), join(temp.root, 'out-name')).slice(1),
      ],
      { env },
    );
    expectCleanError(run, 2, /--policy: the name of the policy in --policy-module \(user-asi-no-barrier\)/);
  });

  it.concurrent('--case-timeout out of range', async () => {
    const run = await runHostile(
      fuzzArgs(join(fixtures, 'user-policy.mjs'), join(temp.root, 'out-ct'), ['--case-timeout', '5ms']),
    );
    expectCleanError(run, 2, /--case-timeout: a duration .* from 100 ms/);
  });
});

describe('hooks that return the wrong type or throw are a policy error naming the hook, filed once (exit 1)', () => {
  const cases: [string, string, RegExp][] = [
    [
      'mayEnter returns undefined',
      'mayEnter: () => undefined',
      /hook mayEnter returned undefined; it must return true or false/,
    ],
    ['mayEnter returns "no"', "mayEnter: () => 'no'", /hook mayEnter returned "no"/],
    [
      'flushBeforeEntry returns true',
      'flushBeforeEntry: () => true',
      /hook flushBeforeEntry returned boolean true; it must return a non-negative integer bit mask/,
    ],
    [
      'kickTargets returns an array',
      'kickOnExit: () => true, kickTargets: () => [1]',
      /hook kickTargets returned an array/,
    ],
    [
      'a hook that writes to its view',
      'mayEnter: (word, view) => { view.clockCycles = 1e12; return true; }',
      /hook mayEnter threw: Cannot add property clockCycles/,
    ],
    [
      'a hook that overwrites a view field',
      'kickOnExit: (view) => { view.thread = 99; return false; }',
      /hook kickOnExit threw: Cannot set property thread/,
    ],
    [
      'a hook that always throws',
      "kickOnExit: () => { throw new Error('planted throw'); }",
      /hook kickOnExit threw: planted throw/,
    ],
  ];
  for (const [title, members, message] of cases) {
    it.concurrent(title, async () => {
      const name = title
        .replace(/[^a-z]+/gi, '-')
        .toLowerCase()
        .replace(/-$/, '');
      const out = temp.dir(name);
      const run = await runHostile(fuzzArgs(policyModule(name, members), out), { env });
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).not.toMatch(/internal error|\n\s+at /);
      const summary = readSummaryFile(join(out, 'summary.json'));
      // Every case breaks the same way: one finding, one replay file, the rest counted as repeats.
      expect(summary.failures).toHaveLength(1);
      expect(summary.failures[0].failure).toBe('error');
      expect(summary.failures[0].detail).toMatch(message);
      expect(summary.failures[0].repeats).toBe(5);
      expect(readdirSync(out).filter((file) => file.endsWith('.replay.json'))).toHaveLength(1);
      expect(run.stdout).toMatch(/repeat: later cases fail as case 0 did/);
      // Reported once, as a policy error naming the hook; a hook that threw also shows where.
      expect(run.stdout.match(/^found: /gm)).toHaveLength(1);
      expect(run.stdout).toMatch(/^found: case 0 policy error in hook \w+: /m);
      if (/hook \w+ threw/.test(summary.failures[0].detail)) {
        expect(summary.failures[0].hookStack).toMatch(/\.mjs:\d+:\d+/);
        expect(run.stdout).toMatch(/^ {4}.*\.mjs:\d+:\d+/m);
      }
    });
  }

  it.concurrent('a hook that throws only once: the shrink stops with a note, no internal error', async () => {
    const module = policyModule(
      'throws-once',
      "kickOnExit: () => { if (!globalThis.__thrown) { globalThis.__thrown = true; throw new Error('only once'); } return false; }",
    );
    const out = temp.dir('throws-once');
    const run = await runHostile(fuzzArgs(module, out), { env });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(run.stdout).toMatch(/shrink: case \d+: shrink stopped \(not-reproduced\)/);
    const summary = readSummaryFile(join(out, 'summary.json'));
    expect(summary.failures.some((failure) => failure.shrinkNote?.includes('not-reproduced'))).toBe(true);
  });
});

describe('hangs: a hook that loops forever is a finding, never a hung command', () => {
  const loopModule = join(fixtures, 'loop-forever-policy.mjs');
  let out = '';
  let fuzzRun: Awaited<ReturnType<typeof runHostile>>;
  beforeAll(async () => {
    out = temp.dir('hang');
    fuzzRun = await runHostile(
      [
        'fuzz',
        '--policy-module',
        loopModule,
        '--time',
        '2s',
        '--case-timeout',
        '500ms',
        '--seed',
        '1',
        '--jobs',
        '1',
        '--out',
        out,
      ],
      { env, timeoutMs: 30_000 },
    );
  }, 40_000);

  it('fuzz --time 2s ends within its time plus the grace (one case time limit), with a hang finding naming the hook', () => {
    expect(fuzzRun.timedOut).toBe(false);
    expect(fuzzRun.code, fuzzRun.stderr).toBe(1);
    // The campaign: 2 s of drawing, then the case in flight on each worker is stopped within 1.25 x
    // 0.5 s, plus a worker's teardown (the documented grace). The process also starts and loads.
    const summaryWall = readSummaryFile(join(out, 'summary.json')).wallSeconds;
    expect(summaryWall).toBeGreaterThanOrEqual(2);
    expect(summaryWall).toBeLessThan(2 + 0.625 + 1.5);
    expect(fuzzRun.wallMs).toBeLessThan(15_000);
    expect(fuzzRun.stdout).toMatch(/found: case \d+ hang: hang in hook mayEnter: no progress for 0\.5 s/);
    const summary = readSummaryFile(join(out, 'summary.json'));
    expect(summary.failures[0]).toMatchObject({ failure: 'hang', hook: 'mayEnter', shrunk: false });
    expect(existsSync(join(out, summary.failures[0].replay))).toBe(true);
  });

  it('replay of the hang finding reports the hang (exit 1) instead of hanging', async () => {
    const summary = readSummaryFile(join(out, 'summary.json'));
    const run = await runHostile(
      [
        'replay',
        join(out, summary.failures[0].replay),
        '--policy-module',
        loopModule,
        '--case-timeout',
        '500ms',
      ],
      { env },
    );
    expect(run.timedOut).toBe(false);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/the run hung: hang in hook mayEnter/);
    expect(run.stdout).toMatch(/trace hash: none \(the run was stopped before it ended\)/);
  });
});

describe('a hang while shrinking stops the shrink and is reported as a hang', () => {
  it('a hook that loops only on one-thread cores: findings on two-thread cores, their shrinks stop at the hang', async () => {
    // Shrinking makes the machine smaller; the candidates with one thread a core loop in kickOnExit.
    const module = policyModule(
      'hang-when-small',
      'kickOnExit: (view) => { if (view.smt === 1) for (;;) {} return false; }',
    );
    const out = temp.dir('shrink-hang');
    const run = await runHostile([...fuzzArgs(module, out), '--case-timeout', '500ms'], {
      env,
      timeoutMs: 60_000,
    });
    expect(run.timedOut).toBe(false);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(
      /shrink: case \d+: shrink stopped \(hang\): hang in hook kickOnExit: no progress for 0\.5 s \(the unshrunk replay file stays\)/,
    );
    const summary = readSummaryFile(join(out, 'summary.json'));
    const stopped = summary.failures.filter((failure) =>
      failure.shrinkNote?.startsWith('shrink stopped (hang)'),
    );
    expect(stopped.length).toBeGreaterThan(0);
    for (const failure of stopped) {
      expect(failure.shrunk).toBe(false);
      expect(existsSync(join(out, failure.replay))).toBe(true);
    }
  }, 70_000);
});

describe('replay never runs code named in a replay file', () => {
  let replayPath = '';
  beforeAll(async () => {
    replayPath = await fuzzReplayFile(temp.dir('replay-source'), 'none', 2);
  }, 30_000);

  /** The replay file of `none`, edited to name another policy (and maybe a module). */
  function tampered(name: string, policy: Record<string, unknown>): string {
    const document = JSON.parse(readFileSync(replayPath, 'utf8'));
    document.policy = policy;
    const path = join(temp.root, `${name}.replay.json`);
    writeFileSync(path, JSON.stringify(document));
    return path;
  }

  it.concurrent('a file naming a module, without --policy-module: refused, and the module never runs', async () => {
    const marker = join(temp.root, 'marker-written');
    const file = tampered('names-module', { name: 'marker', module: join(fixtures, 'marker-policy.mjs') });
    const run = await runHostile(['replay', file], { env: { ...env, ASI_EMU_TEST_MARKER: marker } });
    expectCleanError(
      run,
      2,
      /--policy-module: the policy module this replay file was made with \(policy marker\)/,
    );
    expect(existsSync(marker)).toBe(false);
    // A relative module path in the file is not resolved anywhere either.
    const relative = tampered('names-relative-module', {
      name: 'marker',
      module: '../fixtures/marker-policy.mjs',
    });
    const again = await runHostile(['replay', relative], {
      env: { ...env, ASI_EMU_TEST_MARKER: marker },
      cwd: fixtures,
    });
    expectCleanError(again, 2, /--policy-module/);
    expect(existsSync(marker)).toBe(false);
  });

  it.concurrent('--policy-module whose policy has another name than the file records: both names', async () => {
    const file = tampered('other-name', { name: 'my-policy', module: '/nowhere/my-policy.mjs' });
    const run = await runHostile(['replay', file, '--policy-module', join(fixtures, 'user-policy.mjs')], {
      env,
    });
    expectCleanError(
      run,
      2,
      /--policy-module: a module whose policy is named my-policy .*its policy is named user-asi-no-barrier/,
    );
  });

  it.concurrent('a module changed since the file was written: said so, not called a determinism bug', async () => {
    const module = policyModule('changed-module', 'mayEnter: () => true');
    const file = tampered('changed', { name: 'changed-module', module, moduleSha256: '0'.repeat(64) });
    const run = await runHostile(['replay', file, '--policy-module', module], { env });
    expect(run.code, run.stderr).toBeLessThanOrEqual(1);
    expect(run.stdout).not.toMatch(/determinism bug/);
    if (!run.stdout.includes('identical to the recorded trace')) {
      expect(run.stdout).toMatch(/the policy module given is not the one that recorded it/);
    }
  });

  it.concurrent('a file naming an unknown built-in policy and no module', async () => {
    const run = await runHostile(['replay', tampered('unknown-builtin', { name: 'not-a-policy' })]);
    expectCleanError(run, 2, /policy\.name: one of none, /);
  });
});

describe('one loader, in this process', () => {
  it('a plain object and a definePolicy one get the same settings on every path', async () => {
    const plain = policyModule('plain-object', 'mayEnter: () => true');
    const viaFuzz = (await loadPolicyModule(plain)).policy;
    const viaWorkers = await loadPolicy({ name: 'plain-object', module: plain });
    for (const policy of [viaFuzz, viaWorkers]) {
      expect(policy).toMatchObject({
        smt: true,
        stun: false,
        plantedBugs: { atomicEntry: true, waitFor: 'mode', flushPoint: 'after-barrier' },
      });
    }
  });

  it('hooks of a loaded module are checked: a wrong return type is a PolicyHookError naming the hook', async () => {
    const { policy } = await loadPolicyModule(policyModule('returns-number', 'kickOnExit: () => 1'));
    const view = new ThreadPolicyView(fakeThread());
    expect(() => policy.kickOnExit(view)).toThrow(PolicyHookError);
    expect(() => policy.kickOnExit(view)).toThrow(/hook kickOnExit returned number 1/);
    expect(policy.mayEnter(0, view)).toBe(true);
  });

  it('the view a hook gets reads the thread live and cannot be written or reach the thread', () => {
    const thread = fakeThread();
    const view = new ThreadPolicyView(thread);
    expect(view.exitReasonName).toBe('HLT');
    thread.exitReasonName = 'CPUID';
    expect(view.exitReasonName).toBe('CPUID');
    expect(() => {
      (view as unknown as { thread: number }).thread = 5;
    }).toThrow(TypeError);
    expect(() => {
      (view as unknown as { clockCycles: number }).clockCycles = 5;
    }).toThrow(TypeError);
    expect(Object.keys(view)).toEqual([]);
    expect(thread.thread).toBe(3);
  });
});

describe('bench --policy-module: the same loader and limits as fuzz (issue 20)', () => {
  const bench = ['bench', '--policies', 'none', '--exits', '1000', '--repeats', '1'];

  it('a module whose import never returns is refused within the load limit (exit 2, nothing written)', async () => {
    const out = join(temp.dir('bench-import'), 'out.json');
    for (const backend of ['sim', 'workers']) {
      const run = await runHostile(
        [
          ...bench,
          '--backend',
          backend,
          '--policy-module',
          join(fixtures, 'loop-on-import-policy.mjs'),
          '--json',
          out,
        ],
        { env, timeoutMs: 30_000 },
      );
      expectCleanError(run, 2, /--policy-module: .*whose import finishes within 3 s/);
      expect(existsSync(out)).toBe(false);
    }
  }, 70_000);

  it('a hook that loops forever on the sim is stopped by the watchdog: exit 1 naming the hook, no hang', async () => {
    const out = join(temp.dir('bench-hang'), 'out.json');
    const run = await runHostile(
      [...bench, '--policy-module', join(fixtures, 'loop-forever-policy.mjs'), '--json', out],
      {
        env,
        timeoutMs: 60_000,
      },
    );
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /policy loops-in-may-enter \(.*\) failed: hang in hook mayEnter: no progress for 5 s/,
    );
    expect(run.stderr).not.toMatch(/internal error/);
    expect(existsSync(out)).toBe(false);
  }, 70_000);
});

function fakeThread() {
  return {
    thread: 3,
    sibling: 1,
    smt: 2,
    vmId: 0,
    exitReasonName: 'HLT',
    switchedToFullSinceEntry: false,
    vmmSinceEntry: false,
    nmiSinceEntry: false,
    interruptSinceEntry: false,
    faultedSinceEntry: false,
    l1tfFlushL1d: false,
    coreWord: () => 0,
    foreignLines: () => 0,
  };
}
