import { describe, expect, it } from 'vitest';
import { Mode, withMode } from '../../src/cpu/modes.js';
import { ConfigError } from '../../src/errors.js';
import {
  meantToBeSafe,
  policies,
  policyByName,
  policyScopes,
  safePolicyNames,
} from '../../src/policy/index.js';
import {
  definePolicy,
  noSiblingHoldsSecrets,
  type PolicyView,
  siblingsInGuest,
} from '../../src/policy/policy.js';
import { policyView } from '../helpers/policy-view.js';

/**
 * policy.ts's building blocks and definePolicy's checks, pinned where mutation testing found them
 * unpinned (docs/testing.md): siblingsInGuest must leave the caller out and stop at smt; definePolicy
 * refuses what no Policy may be.
 */
const view = (sibling: number, smt: number): PolicyView =>
  policyView(sibling, smt, { exitReasonName: 'HLT' });

function word(modes: number[]): number {
  return modes.reduce((value, mode, sibling) => withMode(value, sibling, mode), 0);
}

describe('siblingsInGuest', () => {
  it('is every sibling in the guest but the caller, as a bit mask', () => {
    const all = word([Mode.guest, Mode.guest, Mode.guest, Mode.guest]);
    expect(siblingsInGuest(all, view(1, 4))).toBe(0b1101);
    expect(siblingsInGuest(all, view(0, 4))).toBe(0b1110);
    expect(siblingsInGuest(word([Mode.guest, Mode.isolated, Mode.full, Mode.guest]), view(3, 4))).toBe(
      0b0001,
    );
  });

  it('reads only the first smt siblings of the word', () => {
    // A word with a guest in the third nibble, read by a core of two threads: not a sibling.
    expect(siblingsInGuest(word([Mode.isolated, Mode.isolated, Mode.guest]), view(0, 2))).toBe(0);
  });
});

describe('noSiblingHoldsSecrets', () => {
  it('ignores the caller and sees full and vmm siblings', () => {
    expect(noSiblingHoldsSecrets(word([Mode.full, Mode.guest]), view(0, 2))).toBe(true);
    expect(noSiblingHoldsSecrets(word([Mode.isolated, Mode.vmm]), view(0, 2))).toBe(false);
    expect(noSiblingHoldsSecrets(word([Mode.isolated, Mode.full]), view(0, 2))).toBe(false);
  });
});

describe('definePolicy refuses what no Policy may be', () => {
  const base = { name: 'p', description: 'test' };
  it('a missing or empty name', () => {
    expect(() => definePolicy({ ...base, name: '' })).toThrow(/a policy needs a name/);
    expect(() => definePolicy({ ...base, name: 7 as unknown as string })).toThrow(/a policy needs a name/);
    // Not a string, though it has a length.
    expect(() => definePolicy({ ...base, name: { length: 1 } as unknown as string })).toThrow(
      /a policy needs a name/,
    );
  });
  it('a hook that is not a function, naming it', () => {
    expect(() => definePolicy({ ...base, mayEnter: true as never })).toThrow(
      /policy p: mayEnter must be a function/,
    );
  });
  it('usesAsi that is not a boolean', () => {
    expect(() => definePolicy({ ...base, usesAsi: 'yes' as never })).toThrow(
      /policy p: usesAsi must be a boolean/,
    );
  });
  it('a stun without ASI', () => {
    expect(() => definePolicy({ ...base, usesAsi: false, stun: true })).toThrow(
      /policy p: a stun is part of ASI's switch/,
    );
    expect(definePolicy({ ...base, usesAsi: true, stun: true }).stun).toBe(true);
  });
});

describe('the built-in policies’ own decisions, asked directly', () => {
  it('asi and asi-stun kick before a switch to full and wait for the siblings; asi-ipi-only kicks and does not wait', () => {
    const at = view(0, 2);
    for (const name of ['asi', 'asi-stun']) {
      expect([policies[name].kickBeforeFull(at), policies[name].waitForSiblingsOut(at)], name).toEqual([
        true,
        true,
      ]);
    }
    expect([
      policies['asi-ipi-only'].kickBeforeFull(at),
      policies['asi-ipi-only'].waitForSiblingsOut(at),
    ]).toEqual([true, false]);
  });

  it('coschedule kicks on every exit; coschedule-nohlt on every exit but HLT', () => {
    const on = (exitReasonName: string) => policyView(0, 2, { exitReasonName });
    expect([
      policies.coschedule.kickOnExit(on('HLT')),
      policies.coschedule.kickOnExit(on('MSR_WRITE')),
    ]).toEqual([true, true]);
    expect([
      policies['coschedule-nohlt'].kickOnExit(on('HLT')),
      policies['coschedule-nohlt'].kickOnExit(on('MSR_WRITE')),
    ]).toEqual([false, true]);
  });
});

describe('which policies are held to the invariants', () => {
  it('the safe built-ins are, the unsafe baselines are not', () => {
    for (const [name, policy] of Object.entries(policies)) {
      expect(meantToBeSafe(policy), name).toBe((safePolicyNames as readonly string[]).includes(name));
    }
  });

  it('a user’s policy is, unless it says safe: false, whatever its name', () => {
    const mine = definePolicy({ name: 'mine', description: 'd' });
    expect(meantToBeSafe(mine)).toBe(true);
    expect(meantToBeSafe({ ...mine, safe: false })).toBe(false);
    expect(meantToBeSafe({ ...mine, safe: true })).toBe(true);
    // Named like an unsafe built-in, but not that object: its own setting decides.
    expect(meantToBeSafe({ ...policies.none })).toBe(true);
    expect(meantToBeSafe({ ...policies.asi, safe: false })).toBe(false);
  });

  it('policyByName finds a built-in and refuses another name, naming the flag and listing them', () => {
    expect(policyByName('asi')).toBe(policies.asi);
    let refusal: unknown;
    try {
      policyByName('nope');
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as ConfigError).message).toBe(
      `--policies: one of ${Object.keys(policies).join(', ')} (got "nope")`,
    );
    expect(() => policyByName('nope', '--policy')).toThrow(/^--policy: one of none, kvm-default, nosmt/);
  });
});

describe('what asi-emu policies says of each built-in', () => {
  it('every built-in has a name of its own, a description, and says what it models and leaves out', () => {
    for (const [name, policy] of Object.entries(policies)) {
      expect(policy.name).toBe(name);
      expect(policy.description.length, name).toBeGreaterThan(30);
      expect(policyScopes[name].models.length, name).toBeGreaterThan(20);
      expect(policyScopes[name].leavesOut.length, name).toBeGreaterThan(5);
    }
  });

  it('the safe list is exactly the built-ins held to every invariant, and which use ASI', () => {
    expect([...safePolicyNames]).toEqual(['nosmt', 'coschedule', 'asi', 'asi-stun', 'linux-asi']);
    expect(Object.keys(policies).filter((name) => policies[name].usesAsi)).toEqual([
      'asi',
      'asi-ipi-only',
      'asi-stun',
      'linux-asi',
      'linux-asi-upstream',
      'linux-asi-ephmap',
      'linux-asi-fast-again',
      'linux-asi-rfc-v2-spr',
    ]);
    expect(Object.keys(policies).filter((name) => policies[name].linuxAsi !== undefined)).toEqual([
      'linux-asi',
      'linux-asi-upstream',
      'linux-asi-ephmap',
      'linux-asi-fast-again',
      'linux-asi-rfc-v2-spr',
    ]);
    expect(Object.keys(policies).filter((name) => !policies[name].smt)).toEqual(['nosmt']);
  });
});
