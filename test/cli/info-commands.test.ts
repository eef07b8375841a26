import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  configFieldComments,
  exampleConfig,
  optionalFieldComments,
} from '../../src/cli/commands/config-init.js';
import { registerCommands } from '../../src/cli/commands/index.js';
import { reportError } from '../../src/cli/errors.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { workloadSchema } from '../../src/config/workload.js';
import { builtinMixes } from '../../src/cpu/mixes.js';
import { designComparison } from '../../src/policy/design-comparison.js';
import { policies, policyScopes, safePolicyNames } from '../../src/policy/index.js';
import { plantedBugs } from '../../src/policy/planted.js';

/** Temporary directories of this file, removed after its tests. */
const temporaryDirectories: string[] = [];
function temporaryDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of temporaryDirectories) rmSync(directory, { recursive: true, force: true });
});

/**
 * Runs the CLI in-process, as src/cli/main.ts does (the same commands and error mapping; main itself
 * reads package.json relative to dist/, so it runs from the build: see the last test).
 */
async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const program = new Command().name('asi-emu').exitOverride();
    registerCommands(program);
    let code: number;
    try {
      await program.parseAsync(argv, { from: 'user' });
      code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    } catch (error) {
      code = reportError(error, (text) => {
        stderr += text;
      });
    }
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('asi-emu mixes', () => {
  it('lists every built-in mix with its source and weights', async () => {
    const { code, stdout } = await cli('mixes');
    expect(code).toBe(0);
    for (const mix of builtinMixes) {
      expect(stdout).toContain(`${mix.name}: ${mix.description}`);
      expect(stdout).toContain(`source: ${mix.source}`);
      for (const reason of Object.keys(mix.weights)) expect(stdout).toContain(reason);
    }
    // Shares are normalized weights: HLT is 75.33 of idle-tracing's 99.91.
    expect(stdout).toMatch(/HLT\s+75\.33\s+75\.4%/);
  });

  it('shows one mix by name, and refuses an unknown one with the accepted names (exit 2)', async () => {
    const one = await cli('mixes', 'light-load');
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^light-load: /);
    expect(one.stdout).not.toContain('sysbench-cpu');
    const bad = await cli('mixes', 'no-such-mix');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/one of idle-tracing, sysbench-cpu/);
  });

  it('--json prints the mixes as data', async () => {
    const { code, stdout } = await cli('mixes', '--json');
    expect(code).toBe(0);
    const mixes = JSON.parse(stdout);
    expect(mixes).toEqual(builtinMixes);
    // Every mix gives its rate: the published one, or null with the reason in its description.
    for (const mix of mixes) {
      expect(mix, mix.name).toHaveProperty('exitsPerSecond');
      if (mix.exitsPerSecond === null) expect(mix.description).toMatch(/no rate: /);
    }
    expect(mixes.find((mix: { name: string }) => mix.name === 'sysbench-cpu').exitsPerSecond).toBe(1143);
  });
});

describe('asi-emu policies', () => {
  it('prints one line per policy with safe/unsafe and its description', async () => {
    const { code, stdout } = await cli('policies');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(Object.keys(policies).length);
    for (const [name, policy] of Object.entries(policies)) {
      const line = lines.find((candidate) => candidate.startsWith(`${name} `));
      expect(line, name).toBeDefined();
      const safe = (safePolicyNames as readonly string[]).includes(name);
      expect(line).toMatch(new RegExp(`^${name}\\s+${safe ? 'safe' : 'unsafe'}\\s+`));
      expect(line?.endsWith(policy.description)).toBe(true);
    }
  });

  it('--long adds what each policy models and leaves out; coschedule is core-wide protection, not core scheduling', async () => {
    const { code, stdout } = await cli('policies', '--long');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3 * Object.keys(policies).length);
    for (const [name, scope] of Object.entries(policyScopes)) {
      const at = lines.findIndex((candidate) => candidate.startsWith(`${name} `));
      expect(lines[at + 1].trim(), name).toBe(`models:     ${scope.models}`);
      expect(lines[at + 2].trim(), name).toBe(`leaves out: ${scope.leavesOut}`);
    }
    expect(policies.coschedule.description).toMatch(/core-wide protection \(Fernandes 2020\)/);
    expect(policyScopes.coschedule.leavesOut).toMatch(/core scheduling proper.*later issue/);
  });

  it("--compare sets the 2019 RFC against today's Linux ASI, question by question, each with its source", async () => {
    const { code, stdout } = await cli('policies', '--compare');
    expect(code).toBe(0);
    expect(stdout).toContain('<1557758315-12667-1-git-send-email-alexandre.chartre@oracle.com>');
    expect(stdout).toContain('<20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>');
    for (const row of designComparison) {
      expect(stdout).toMatch(new RegExp(`^${row.aspect} +asi: +${escapeRegExp(row.asi)}$`, 'm'));
      expect(stdout).toMatch(new RegExp(`^ +linux-asi: ${escapeRegExp(row.linuxAsi)}$`, 'm'));
    }
    const json = JSON.parse((await cli('policies', '--compare', '--json')).stdout);
    expect(json.rows).toEqual(designComparison);
    expect(json.sources.linuxAsi).toMatch(/20250812173109\.295750-1-jackmanb@google\.com/);
  });

  it('--json gives name, safe, description and switches; --planted adds the planted bugs', async () => {
    const listed = JSON.parse((await cli('policies', '--json')).stdout) as {
      name: string;
      safe: boolean;
      smt: boolean;
    }[];
    expect(listed.map((entry) => entry.name)).toEqual(Object.keys(policies));
    expect(listed.filter((entry) => entry.safe).map((entry) => entry.name)).toEqual([...safePolicyNames]);
    expect(listed.find((entry) => entry.name === 'nosmt')?.smt).toBe(false);
    const withPlanted = JSON.parse((await cli('policies', '--json', '--planted')).stdout) as {
      name: string;
      breaks?: string[];
    }[];
    expect(withPlanted).toHaveLength(listed.length + plantedBugs.length);
    expect(withPlanted.at(-1)?.breaks).toEqual(plantedBugs.at(-1)?.breaks);
    const text = (await cli('policies', '--planted')).stdout;
    for (const bug of plantedBugs) expect(text).toContain(`${bug.policy.name}`);
    expect(text).toMatch(/planted-no-barrier\s+breaks INV-/);
  });
});

describe('asi-emu config init', () => {
  const directory = () => temporaryDirectory('asi-config-');

  it('writes a config that loads back to exactly the defaults, through parseRunConfig and --config', async () => {
    const dir = directory();
    const path = join(dir, 'asi.json');
    const { code, stdout } = await cli('config', 'init', path);
    expect(code).toBe(0);
    expect(stdout).toContain(`load it with --config ${path}`);
    const loaded = JSON.parse(readFileSync(path, 'utf8'));
    expect(parseRunConfig(loaded)).toEqual(parseRunConfig({}));
    const machine = await cli('machine', '--config', path);
    expect(machine.code).toBe(0);
    expect(machine.stdout).toMatch(/^machine: 2 cores x 2 threads/);
    expect(readdirSync(dir)).toEqual(['asi.json']);
  });

  it('an edited file loads with the edit, and a field the schema does not know is refused by name', async () => {
    const dir = directory();
    const path = join(dir, 'asi.json');
    await cli('config', 'init', path);
    const edited = JSON.parse(readFileSync(path, 'utf8'));
    edited.machine.cores = 4;
    edited.run.seed = 99;
    expect(parseRunConfig(edited).machine.cores).toBe(4);
    expect(parseRunConfig(edited).run.seed).toBe(99);
    edited.machine.coresPerSocket = 4;
    writeFileSync(path, JSON.stringify(edited));
    const bad = await cli('machine', '--config', path);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/coresPerSocket/);
  });

  it('explains every field of every section, and nothing else (so new fields get documented)', () => {
    const config = exampleConfig();
    for (const section of ['machine', 'workload', 'costs', 'run'] as const) {
      expect(Object.keys(configFieldComments[section]).sort(), section).toEqual(
        Object.keys(config[section] as object).sort(),
      );
      for (const text of Object.values(configFieldComments[section])) expect(text.length).toBeGreaterThan(5);
    }
    expect(Object.keys(config)).toEqual(['$comment', 'machine', 'workload', 'costs', 'run']);
    // Fields without a default are explained apart, and are fields of the schema.
    for (const field of Object.keys(optionalFieldComments.workload)) {
      expect(workloadSchema.shape, field).toHaveProperty(field);
      expect(config.workload as object, field).not.toHaveProperty(field);
    }
  });

  it('refuses to overwrite an existing file (exit 2, file unchanged) unless --force', async () => {
    const dir = directory();
    const path = join(dir, 'mine.json');
    writeFileSync(path, '{"machine":{"cores":8}}');
    const refused = await cli('config', 'init', path);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /config init FILE: a file that does not exist yet \(or --force to overwrite it\)/,
    );
    expect(readFileSync(path, 'utf8')).toBe('{"machine":{"cores":8}}');
    const forced = await cli('config', 'init', '--force', path);
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(path, 'utf8')).machine.cores).toBe(2);
    expect(readdirSync(dir)).toEqual(['mine.json']);
  });

  it('"-" writes the config to standard output', async () => {
    const { code, stdout } = await cli('config', 'init', '-');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual(exampleConfig());
  });
});

describe('--help of the info commands', () => {
  for (const argv of [['mixes'], ['policies'], ['config', 'init']]) {
    it(`asi-emu ${argv.join(' ')} --help has a description and examples`, async () => {
      const { code, stdout } = await cli(...argv, '--help');
      expect(code).toBe(0);
      expect(stdout).toContain(`Usage: asi-emu ${argv.join(' ')}`);
      expect(stdout).toMatch(/Examples:\n {2}asi-emu /);
    });
  }

  const built = join(process.cwd(), 'dist/src/cli/main.js');
  it.skipIf(!existsSync(built))(
    'the built binary runs them (dist/src/cli/main.js; npm test builds first)',
    () => {
      const run = (...argv: string[]) =>
        execFileSync(process.execPath, [built, ...argv], { encoding: 'utf8', timeout: 30_000 });
      expect(run('policies')).toMatch(/^none\s+unsafe/m);
      // Compared loosely: dist may be older than src when vitest runs without `npm test`'s build.
      expect(JSON.parse(run('mixes', '--json')).map((mix: { name: string }) => mix.name)).toContain(
        'sysbench-cpu',
      );
      const written = JSON.parse(run('config', 'init', '-'));
      expect(Object.keys(written)).toEqual(['$comment', 'machine', 'workload', 'costs', 'run']);
      expect(parseRunConfig(written).machine.cores).toBe(2);
    },
  );

  it('the top-level help lists the new commands', async () => {
    const { stdout } = await cli('--help');
    for (const name of ['mixes', 'policies', 'config'])
      expect(stdout).toMatch(new RegExp(`\\n {2}${name}\\b`));
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
