import { describe, expect, test } from 'vitest';
import { smtMax } from '../../src/constants.js';
import {
  anySiblingHoldsSecrets,
  describeCoreWord,
  holdsSecrets,
  isStunned,
  Mode,
  modeOf,
  stunBit,
  withMode,
} from '../../src/cpu/modes.js';

/** The definition `anySiblingHoldsSecrets` computes without a loop. */
function byLoop(word: number, self: number, smt: number): boolean {
  for (let sibling = 0; sibling < smt; sibling++) {
    if (sibling !== self && holdsSecrets(modeOf(word, sibling))) return true;
  }
  return false;
}

describe('anySiblingHoldsSecrets', () => {
  test('agrees with the loop over the siblings for every core word of every SMT width (stun bits too)', () => {
    const modes = Object.values(Mode);
    let words = 0;
    let holding = 0;
    for (let smt = 1; smt <= smtMax; smt++) {
      for (let code = 0; code < modes.length ** smt; code++) {
        let word = 0;
        for (let sibling = 0, rest = code; sibling < smt; sibling++, rest = Math.floor(rest / modes.length)) {
          word = withMode(word, sibling, modes[rest % modes.length]);
        }
        for (const stunned of [0, stunBit(0) | stunBit(smt - 1)]) {
          for (let self = 0; self < smt; self++) {
            const expected = byLoop(word | stunned, self, smt);
            if (anySiblingHoldsSecrets(word | stunned, self, smt) !== expected) {
              throw new Error(
                `word 0x${(word | stunned).toString(16)} self ${self} smt ${smt}: expected ${expected}`,
              );
            }
            words++;
            if (expected) holding++;
          }
        }
      }
    }
    // Every combination was asked, and both answers occurred.
    expect(words).toBe(2 * (1 * 7 + 2 * 7 ** 2 + 3 * 7 ** 3 + 4 * 7 ** 4));
    expect(holding).toBeGreaterThan(0);
    expect(holding).toBeLessThan(words);
  });
});

describe('the stun bits (asi-stun)', () => {
  test('sibling s stuns bit 16 + s, above every mode field, and any one of them stuns the core', () => {
    let allModes = 0;
    for (let sibling = 0; sibling < smtMax; sibling++) allModes = withMode(allModes, sibling, Mode.vmm);
    for (let sibling = 0; sibling < smtMax; sibling++) {
      expect(stunBit(sibling)).toBe(2 ** (16 + sibling));
      expect(stunBit(sibling) & 0xffff).toBe(0);
      expect(isStunned(stunBit(sibling))).toBe(true);
      expect(isStunned(allModes | stunBit(sibling))).toBe(true);
      expect(modeOf(allModes | stunBit(sibling), sibling)).toBe(Mode.vmm);
    }
    // Modes alone never read as stunned, whatever they are.
    for (const mode of Object.values(Mode)) {
      let word = 0;
      for (let sibling = 0; sibling < smtMax; sibling++) word = withMode(word, sibling, mode);
      expect(isStunned(word), `every sibling ${mode}`).toBe(false);
    }
    expect(describeCoreWord(withMode(0, 1, Mode.full) | stunBit(0), 2)).toBe('offline,full (stunned)');
    expect(describeCoreWord(withMode(0, 1, Mode.full), 2)).toBe('offline,full');
  });
});
