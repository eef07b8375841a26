import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadPolicyModule } from '../../src/policy/policy-module.js';
import { expectCleanError, fuzzReplayFile, hostileRoot, runHostile } from './harness.js';

/**
 * Issue 21 item 7: one policy loader with one set of rules (key checks, the planted-bug switches'
 * place, file name, regular file, size cap) for fuzz, replay, bench on both backends and the library.
 * The same bad module is refused by each with the same one-line message, exit 2.
 */
const temp = hostileRoot('one-loader');
afterAll(temp.removeAll);
const env = { ASI_EMU_POLICY_LOAD_TIMEOUT_MS: '5000' };
/** No run should come near it: a generous kill for a loaded machine, never a timing assertion. */
const timeoutMs = 120_000;
let replayFile = '';
beforeAll(async () => {
  replayFile = await fuzzReplayFile(join(temp.root, 'recorded'));
}, 120_000);

const modules: [string, () => string, RegExp][] = [
  [
    'a planted-bug switch at the top level (its old place)',
    () => write('old-switch.mjs', "export default { name: 'old', description: 'd', waitFor: 'ack' };\n"),
    /policy\.waitFor: waitFor under plantedBugs: \{ waitFor: \.\.\. \}/,
  ],
  [
    'a misspelt hook',
    () => write('misspelt.mjs', "export default { name: 'm', description: 'd', mayEntre: () => true };\n"),
    /policy\.mayEntre: a known policy key/,
  ],
  [
    'a file that is not .js or .mjs',
    () => write('policy.cjs', "module.exports = { name: 'c', description: 'd' };\n"),
    /--policy-module: an ES module .*policy\.cjs \(not a \.js or \.mjs file\)/,
  ],
  [
    'a directory with a module name',
    () => {
      const path = join(temp.root, 'directory.mjs');
      mkdirSync(path, { recursive: true });
      return path;
    },
    /--policy-module: an ES module .*directory\.mjs \(not a regular file\)/,
  ],
  [
    'a module over the size cap',
    () =>
      write(
        'huge.mjs',
        `export default { name: 'huge', description: 'd' };\n//${'x'.repeat(4 * 1024 * 1024)}\n`,
      ),
    /--policy-module: an ES module .*: a policy module of at most 4 MiB \(the input size limit\)/,
  ],
];

function write(name: string, body: string): string {
  const path = join(temp.root, name);
  writeFileSync(path, body);
  return path;
}

/** The one `asi-emu: error:` line, without its prefix. */
function errorLine(stderr: string): string {
  const line = stderr.split('\n').find((text) => text.startsWith('asi-emu: error:')) ?? '';
  return line.replace(/^asi-emu: error: /, '');
}

describe('the same bad module gets the same refusal from every command (exit 2)', () => {
  for (const [title, makeModule, message] of modules) {
    // One module at a time (its four commands in parallel): twenty processes at once overload 2 CPUs.
    it(title, async () => {
      const module = makeModule();
      const out = (command: string) => join(temp.root, `out-${command}-${title.replaceAll(' ', '-')}`);
      const runs = await Promise.all([
        runHostile(['fuzz', '--policy-module', module, '--cases', '2', '--seed', '1', '--out', out('fuzz')], {
          env,
          timeoutMs,
        }),
        runHostile(['replay', replayFile, '--policy-module', module], { env, timeoutMs }),
        runHostile(['bench', '--backend', 'sim', '--policy-module', module, '--json', `${out('sim')}.json`], {
          env,
          timeoutMs,
        }),
        runHostile(
          ['bench', '--backend', 'workers', '--policy-module', module, '--json', `${out('workers')}.json`],
          { env, timeoutMs },
        ),
      ]);
      for (const run of runs) expectCleanError(run, 2, message);
      const lines = runs.map((run) => errorLine(run.stderr));
      expect(new Set(lines).size, lines.join('\n')).toBe(1);
      // The library's loader (what pool and hyperthread workers call) says the same.
      const inProcess = await loadPolicyModule(module).then(
        () => 'accepted',
        (error: unknown) => (error instanceof ConfigError ? error.message : String(error)),
      );
      expect(inProcess).toBe(lines[0]);
    }, 300_000);
  }
});

describe('a replay file that names a planted-bug policy still replays (issue 21 moved its switch under plantedBugs)', () => {
  it('planted-lost-wakeup reproduces with the identical trace', async () => {
    const run = await runHostile(['replay', replayFile], { env, timeoutMs });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/policy planted-lost-wakeup/);
    expect(run.stdout).toMatch(/trace hash [0-9a-f]+: identical to the recorded trace/);
  }, 300_000);
});
