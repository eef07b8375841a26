import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  definePolicy,
  type Policy,
  type PolicyDefinition,
  type PolicyView,
  policyHookNames,
} from '../../src/policy/policy.js';
import {
  checkedPolicy,
  checkPolicyDefinition,
  hookNameOf,
  loadPolicyModule,
  moduleSha256,
  PolicyHookError,
  policyModuleAccepted,
  trackHooks,
} from '../../src/policy/policy-module.js';

/**
 * The policy-module loader and its checks, in this thread (docs/testing.md): test/hostile/ drives the
 * same code through the CLI from dist/, which mutation testing cannot see. Each refusal's field and
 * wording is pinned, since that one line is all a user gets.
 */
const field = '--policy-module m.mjs: policy';
const ok = { name: 'mine', description: 'a user policy' };

function refusal(value: unknown): string {
  try {
    checkPolicyDefinition(value, field);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('accepted');
}

describe('checkPolicyDefinition', () => {
  it('accepts a definition and returns it unchanged, hooks and settings included', () => {
    const definition = {
      ...ok,
      usesAsi: false,
      smt: false,
      plantedBugs: { waitFor: 'ack' },
      mayEnter: () => true,
    };
    expect(checkPolicyDefinition(definition, field)).toBe(definition);
    expect(checkPolicyDefinition(definePolicy(ok), field).name).toBe('mine');
  });

  it('refuses what is not a plain object, saying what it got', () => {
    const accepted = `${field}: a policy object: { name, description, ...hooks } (see definePolicy)`;
    expect(refusal(null)).toBe(`${accepted} (got "null")`);
    expect(refusal(undefined)).toBe(`${accepted} (got "undefined")`);
    expect(refusal([ok])).toBe(`${accepted} (got "an array")`);
    expect(refusal('asi')).toBe(`${accepted} (got "asi")`);
    expect(refusal(7)).toBe(`${accepted} (got 7)`);
    expect(refusal(() => ok)).toBe(`${accepted} (got "a function")`);
  });

  it('refuses an unknown key, naming it and listing the known ones', () => {
    const message = refusal({ ...ok, mayenter: () => true });
    expect(message).toMatch(
      /^--policy-module m\.mjs: policy\.mayenter: a known policy key: one of name, description, usesAsi, smt, stun, safe, plantedBugs, linuxAsi, kickOnExit, kickBeforeFull, waitForSiblingsOut, kickAfterFull, kickTargets, siblingsOut, flushBeforeEntry, mayEnter, exitOnKick \(got "mayenter"\)$/,
    );
  });

  it('takes names of 1..64 letters, digits, ".", "_", "-", starting with a letter or digit', () => {
    for (const name of ['a', '7', 'A.b_c-d', 'x'.repeat(64)]) {
      expect(checkPolicyDefinition({ ...ok, name }, field).name).toBe(name);
    }
    const accepted = `${field}.name: a name of 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit`;
    expect(refusal({ ...ok, name: 'x'.repeat(65) })).toBe(`${accepted} (got "${'x'.repeat(65)}")`);
    expect(refusal({ ...ok, name: '' })).toBe(`${accepted} (got "")`);
    for (const name of ['-a', '.a', '_a', 'a/b', '../x', 'a b', 'a\n', 'é']) {
      expect(refusal({ ...ok, name })).toBe(`${accepted} (got ${JSON.stringify(name)})`);
    }
    expect(refusal({ ...ok, name: 5 })).toBe(`${accepted} (got 5)`);
    expect(refusal({ description: 'd' })).toBe(`${accepted} (got "undefined")`);
  });

  it('refuses a description that is not a string', () => {
    expect(refusal({ name: 'p', description: { text: 'x' } })).toBe(
      `${field}.description: a string (one line for \`asi-emu policies\`) (got "an object")`,
    );
    expect(refusal({ name: 'p' })).toMatch(
      /^--policy-module m\.mjs: policy\.description: .*\(got "undefined"\)$/,
    );
  });

  it.each([
    ['usesAsi', 'yes', 'one of true, false', '"yes"'],
    ['smt', 1, 'one of true, false', '1'],
    ['stun', null, 'one of true, false', '"null"'],
  ])('refuses setting %s = %j, listing what it accepts', (key, value, accepted, got) => {
    expect(refusal({ ...ok, [key]: value })).toBe(`${field}.${key}: ${accepted} (got ${got})`);
  });

  it.each([
    ['atomicEntry', 0, 'one of true, false', '0'],
    ['flushPoint', 'after', 'one of "after-barrier", "before-barrier"', '"after"'],
    ['waitFor', ['mode'], 'one of "mode", "ack"', '"an array"'],
  ])('refuses planted-bug switch %s = %j, listing what it accepts', (key, value, accepted, got) => {
    expect(refusal({ ...ok, plantedBugs: { [key]: value } })).toBe(
      `${field}.plantedBugs.${key}: ${accepted} (got ${got})`,
    );
  });

  it.each(['atomicEntry', 'waitFor', 'flushPoint'])(
    'refuses planted-bug switch %s at the top level, naming its new place under plantedBugs',
    (key) => {
      expect(refusal({ ...ok, [key]: 'anything' })).toBe(
        `${field}.${key}: ${key} under plantedBugs: { ${key}: ... } (the switches that exist only for planted bugs moved there: atomicEntry, waitFor, flushPoint) (got "${key}")`,
      );
      // definePolicy (a policy written in-process, in JavaScript) refuses it the same way.
      expect(() => definePolicy({ ...ok, [key]: 'anything' } as never)).toThrow(
        `policy mine.${key}: ${key} under plantedBugs`,
      );
    },
  );

  it('refuses plantedBugs that is not an object of known switches', () => {
    expect(refusal({ ...ok, plantedBugs: true })).toBe(
      `${field}.plantedBugs: an object of planted-bug switches: atomicEntry, waitFor, flushPoint (got true)`,
    );
    expect(refusal({ ...ok, plantedBugs: { atomicentry: false } })).toBe(
      `${field}.plantedBugs.atomicentry: a planted-bug switch: one of atomicEntry, waitFor, flushPoint (got "atomicentry")`,
    );
  });

  it('accepts every accepted value of every setting', () => {
    for (const [key, values] of Object.entries({
      usesAsi: [true, false],
      smt: [true, false],
      stun: [true, false],
    })) {
      for (const value of values)
        expect(() => checkPolicyDefinition({ ...ok, [key]: value }, field)).not.toThrow();
    }
    for (const [key, values] of Object.entries({
      atomicEntry: [true, false],
      flushPoint: ['after-barrier', 'before-barrier'],
      waitFor: ['mode', 'ack'],
    })) {
      for (const value of values)
        expect(() => checkPolicyDefinition({ ...ok, plantedBugs: { [key]: value } }, field)).not.toThrow();
    }
  });

  it.each([
    ['mayEnter', true, 'boolean', 'true'],
    ['kickTargets', 3, 'mask', '3'],
    ['flushBeforeEntry', {}, 'mask', '"an object"'],
    ['exitOnKick', 'no', 'boolean', '"no"'],
    ['kickOnExit', Symbol.iterator, 'boolean', '"symbol Symbol(Symbol.iterator)"'],
  ])('refuses hook %s that is not a function, saying what it must return', (hook, value, returns, got) => {
    expect(refusal({ ...ok, [hook]: value })).toBe(
      `${field}.${hook}: a function (view) => ${returns} (got ${got})`,
    );
  });
});

describe('checkedPolicy', () => {
  const view = { sibling: 0, smt: 2 } as PolicyView;
  const policy = (hooks: Omit<PolicyDefinition, 'name' | 'description'>): Policy =>
    checkedPolicy(definePolicy({ ...ok, ...hooks }));

  it('keeps the settings and passes each hook’s arguments and result through', () => {
    const seen: unknown[] = [];
    const checked = policy({
      usesAsi: false,
      plantedBugs: { waitFor: 'ack' },
      mayEnter: (word, v) => {
        seen.push(word, v);
        return word === 5;
      },
      kickTargets: (word) => word * 2,
      flushBeforeEntry: () => 0,
    });
    expect(checked.name).toBe('mine');
    expect(checked.usesAsi).toBe(false);
    expect(checked.plantedBugs).toEqual({ atomicEntry: true, waitFor: 'ack', flushPoint: 'after-barrier' });
    expect(checked.mayEnter(5, view)).toBe(true);
    expect(checked.mayEnter(4, view)).toBe(false);
    expect(seen).toEqual([5, view, 4, view]);
    expect(checked.kickTargets(3, view)).toBe(6);
    expect(checked.flushBeforeEntry(view)).toBe(0);
  });

  it('takes true and false from every boolean hook, and any non-negative integer from the two mask hooks', () => {
    const booleans = policy({
      kickOnExit: () => true,
      kickBeforeFull: () => false,
      waitForSiblingsOut: () => true,
      kickAfterFull: () => true,
      siblingsOut: () => false,
      mayEnter: () => true,
      exitOnKick: () => false,
      kickTargets: () => 5,
      flushBeforeEntry: () => 3,
    });
    expect([
      booleans.kickOnExit(view),
      booleans.kickBeforeFull(view),
      booleans.waitForSiblingsOut(view),
      booleans.kickAfterFull(view),
      booleans.siblingsOut(0, view),
      booleans.mayEnter(0, view),
      booleans.exitOnKick(view),
      booleans.kickTargets(0, view),
      booleans.flushBeforeEntry(view),
    ]).toEqual([true, false, true, true, false, true, false, 5, 3]);
  });

  it('refuses a boolean hook’s non-boolean and a mask hook’s negative, fractional or non-number result, naming the hook', () => {
    const wrong = policy({
      mayEnter: () => 1 as never,
      kickTargets: () => -1,
      flushBeforeEntry: () => 1.5,
      siblingsOut: () => undefined as never,
      kickOnExit: () => 'true' as never,
    });
    expect(() => wrong.mayEnter(0, view)).toThrow(
      'policy mine: hook mayEnter returned number 1; it must return true or false',
    );
    expect(() => wrong.kickTargets(0, view)).toThrow(
      'policy mine: hook kickTargets returned number -1; it must return a non-negative integer bit mask',
    );
    expect(() => wrong.flushBeforeEntry(view)).toThrow('hook flushBeforeEntry returned number 1.5;');
    expect(() => wrong.siblingsOut(0, view)).toThrow('hook siblingsOut returned undefined;');
    expect(() => wrong.kickOnExit(view)).toThrow('hook kickOnExit returned "true";');
    const maskAsBoolean = policy({ kickTargets: () => true as never });
    expect(() => maskAsBoolean.kickTargets(0, view)).toThrow('hook kickTargets returned boolean true;');
    // Zero is a mask; false is a boolean.
    expect(policy({ kickTargets: () => 0 }).kickTargets(0, view)).toBe(0);
    expect(policy({ exitOnKick: () => false }).exitOnKick(view)).toBe(false);
  });

  it('turns a throw into a PolicyHookError naming the policy and hook, keeping the error as its cause', () => {
    const thrown = new RangeError('bad sibling');
    const checked = policy({
      kickBeforeFull: () => {
        throw thrown;
      },
      exitOnKick: () => {
        throw 'a string';
      },
    });
    let caught: unknown;
    try {
      checked.kickBeforeFull(view);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PolicyHookError);
    const error = caught as PolicyHookError;
    expect(error.message).toBe('policy mine: hook kickBeforeFull threw: bad sibling');
    expect(error.name).toBe('PolicyHookError');
    expect([error.policy, error.hook, error.problem, error.cause]).toEqual([
      'mine',
      'kickBeforeFull',
      'threw: bad sibling',
      thrown,
    ]);
    expect(() => checked.exitOnKick(view)).toThrow('policy mine: hook exitOnKick threw: a string');
  });

  it('publishes the running hook’s id while it runs and 0 after it returns or throws (trackHooks)', () => {
    const slot = new Int32Array(new SharedArrayBuffer(12));
    const during: number[] = [];
    const checked = policy({
      mayEnter: () => {
        during.push(slot[2]);
        return true;
      },
      kickOnExit: () => {
        during.push(slot[2]);
        throw new Error('x');
      },
    });
    trackHooks(slot, 2);
    try {
      checked.mayEnter(0, view);
      expect(slot[2]).toBe(0);
      expect(() => checked.kickOnExit(view)).toThrow(PolicyHookError);
      expect(slot[2]).toBe(0);
      expect(during).toEqual([
        policyHookNames.indexOf('mayEnter') + 1,
        policyHookNames.indexOf('kickOnExit') + 1,
      ]);
      expect(hookNameOf(during[0])).toBe('mayEnter');
      expect(hookNameOf(during[1])).toBe('kickOnExit');
      expect([slot[0], slot[1]]).toEqual([0, 0]);
    } finally {
      trackHooks(null);
    }
    // Not tracked: nothing is written.
    slot[0] = 7;
    checked.mayEnter(0, view);
    expect([...slot]).toEqual([7, 0, 0]);
  });

  it('hookNameOf names ids 1..9 in declaration order and nothing else', () => {
    expect(policyHookNames.map((_, index) => hookNameOf(index + 1))).toEqual([...policyHookNames]);
    expect(hookNameOf(0)).toBeNull();
    expect(hookNameOf(policyHookNames.length + 1)).toBeNull();
  });
});

describe('loadPolicyModule', () => {
  let dir = '';
  const module = (file: string, source: string) => {
    writeFileSync(join(dir, file), source);
    return join(dir, file);
  };
  const policySource = (name: string) => `{ name: '${name}', description: 'd', mayEnter: () => true }`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'asi-emu-policy-module-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the default export, with its path and the file’s SHA-256, its hooks checked', async () => {
    const path = module(
      'default.mjs',
      `export default ${policySource('dflt')};\nexport const other = ${policySource('o')};`,
    );
    const loaded = await loadPolicyModule(relative(process.cwd(), path));
    expect(loaded.policy.name).toBe('dflt');
    expect(loaded.path).toBe(path);
    expect(loaded.sha256).toBe(
      createHash('sha256')
        .update(`export default ${policySource('dflt')};\nexport const other = ${policySource('o')};`)
        .digest('hex'),
    );
    expect(moduleSha256(path)).toBe(loaded.sha256);
    // definePolicy's defaults filled in, and the hooks wrapped.
    expect(loaded.policy.kickBeforeFull({} as PolicyView)).toBe(false);
    expect(loaded.policy.mayEnter(0, {} as PolicyView)).toBe(true);
  });

  it('without a default, takes `policy`, else the only export that looks like a policy', async () => {
    const named = module(
      'named.mjs',
      `export const policy = ${policySource('p')};\nexport const x = ${policySource('x')};`,
    );
    expect((await loadPolicyModule(named)).policy.name).toBe('p');
    const only = module(
      'only.mjs',
      `export const mine = ${policySource('only-one')};\nexport const n = 3;\nexport const s = { name: 4 };\nexport const z = null;`,
    );
    expect((await loadPolicyModule(only)).policy.name).toBe('only-one');
  });

  it('with a name, takes the export of that key or of that policy name', async () => {
    const two = module(
      'two.mjs',
      `export const a = ${policySource('first')};\nexport const b = ${policySource('second')};\nexport const c = 'second';`,
    );
    expect((await loadPolicyModule(two, { name: 'b' })).policy.name).toBe('second');
    expect((await loadPolicyModule(two, { name: 'first' })).policy.name).toBe('first');
    await expect(loadPolicyModule(two, { name: 'c' })).rejects.toThrow(
      `--policy-module: ${policyModuleAccepted} (got "${two} (no policy named c)")`,
    );
    await expect(loadPolicyModule(two)).rejects.toThrow(`(got "${two} (no policy exported)")`);
  });

  it('says what a module must be', () => {
    expect(policyModuleAccepted).toMatch(
      /^an ES module \(\.js or \.mjs\) exporting a policy .* as its default export, as `policy`, or as its only export$/,
    );
  });

  it('refuses a missing file, an import that throws and a bad export, naming the field given', async () => {
    const missing = join(dir, 'missing.mjs');
    await expect(loadPolicyModule(missing, { field: 'replay.policyModule' })).rejects.toThrow(
      `replay.policyModule: ${policyModuleAccepted} (got "${missing} (ENOENT)")`,
    );
    const throws = module('throws.mjs', `throw new Error('boom\\nsecond line');`);
    await expect(loadPolicyModule(throws)).rejects.toThrow(`(got "${throws} (importing it threw: boom)")`);
    const bad = module('bad.mjs', `export default { name: 'b', description: 'd', mayEnter: true };`);
    await expect(loadPolicyModule(bad)).rejects.toThrow(
      `--policy-module ${bad}: policy.mayEnter: a function (view) => boolean (got true)`,
    );
    // A function has a string `name` too, but is no policy object.
    const fn = module('fn.mjs', 'export function mine() { return true; }');
    await expect(loadPolicyModule(fn)).rejects.toThrow('(no policy exported)');
    const none = module('none.mjs', 'export const n = 1;');
    await expect(loadPolicyModule(none)).rejects.toThrow('(no policy exported)');
  });
});
