import { describe, expect, it } from 'vitest';
import { smtMax } from '../../src/constants.js';
import {
  describeCoreWord,
  holdsSecrets,
  isStunned,
  Mode,
  modeNames,
  modeOf,
  siblingFieldsMask,
  siblingsHoldSecrets,
  stunBit,
  withMode,
} from '../../src/cpu/modes.js';

/**
 * The core-state word's helpers, each on its own (issue 24, mutation testing): test/cpu/modes.test.ts
 * checks the loop-free sibling test against a loop; these pin the pieces it and the monitor build on.
 */
describe('core-state word', () => {
  it('names every mode by its code', () => {
    for (const [name, code] of Object.entries(Mode)) expect(modeNames[code]).toBe(name);
    expect(modeNames).toHaveLength(Object.keys(Mode).length);
  });

  it('withMode sets one sibling field and keeps the others and the stun bits', () => {
    let word = stunBit(1);
    word = withMode(word, 0, Mode.vmm);
    word = withMode(word, 3, Mode.held);
    word = withMode(word, 0, Mode.guest);
    expect(modeOf(word, 0)).toBe(Mode.guest);
    expect(modeOf(word, 1)).toBe(Mode.offline);
    expect(modeOf(word, 3)).toBe(Mode.held);
    expect(word).toBe(stunBit(1) | (Mode.held << 12) | Mode.guest);
  });

  it('stun bits sit above every mode field, one per sibling, and any of them stuns the core', () => {
    const modeFields = (1 << (smtMax * 4)) - 1;
    for (let sibling = 0; sibling < smtMax; sibling++) {
      expect(stunBit(sibling) & modeFields).toBe(0);
      expect(isStunned(stunBit(sibling))).toBe(true);
      expect(isStunned(withMode(stunBit(sibling), sibling, Mode.full))).toBe(true);
    }
    expect(new Set(Array.from({ length: smtMax }, (_, sibling) => stunBit(sibling))).size).toBe(smtMax);
    expect(isStunned(withMode(withMode(0, 0, Mode.vmm), smtMax - 1, Mode.idle))).toBe(false);
  });

  it('secrets are held in full and vmm only', () => {
    expect(Object.values(Mode).filter(holdsSecrets)).toEqual([Mode.full, Mode.vmm]);
  });

  it('siblingFieldsMask covers the other siblings of the core, not self and not the stun bits', () => {
    expect(siblingFieldsMask(0, 1)).toBe(0);
    expect(siblingFieldsMask(0, 2)).toBe(0xf0);
    expect(siblingFieldsMask(1, 2)).toBe(0x0f);
    expect(siblingFieldsMask(2, 4)).toBe(0xf0ff);
    expect(siblingsHoldSecrets(withMode(0, 1, Mode.full), siblingFieldsMask(0, 2))).toBe(true);
    expect(siblingsHoldSecrets(withMode(0, 1, Mode.full), siblingFieldsMask(1, 2))).toBe(false);
  });

  it('describeCoreWord lists each sibling mode and says when the core is stunned', () => {
    const word = withMode(withMode(withMode(0, 0, Mode.guest), 1, Mode.held), 2, Mode.vmm);
    expect(describeCoreWord(word, 3)).toBe('guest,held,vmm');
    expect(describeCoreWord(word, 2)).toBe('guest,held');
    expect(describeCoreWord(word | stunBit(1), 3)).toBe('guest,held,vmm (stunned)');
    expect(describeCoreWord(withMode(0, 0, 0xf), 1)).toBe('?');
  });
});
