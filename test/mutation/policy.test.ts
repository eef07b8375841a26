import { describe, expect, it } from 'vitest';
import { Mode, withMode } from '../../src/cpu/modes.js';
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
