import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import {
  BranchPredictor,
  predictorDomainCountMax,
  predictorEntriesDefault,
} from '../../src/linux-asi/predictor.js';
import { predictorI32s } from '../../src/memory/sub-layouts.js';

const guest = 3;
const user = 5;
const other = 7;

function core(siblingsShare = true): BranchPredictor {
  return new BranchPredictor({ threadsPerCore: 2, entryCount: predictorEntriesDefault, siblingsShare });
}

describe('linux-asi branch predictor', () => {
  it('an entry trained on a thread steers that thread, tagged with its domain', () => {
    const p = core();
    p.train(0, guest, 1);
    expect(p.canSteer(0, guest)).toBe(true);
    expect(p.canSteer(0, user)).toBe(false);
    expect(p.indirectSteeringMask(0)).toBe(1 << guest);
  });

  it('siblings share indirect predictor entries (spectre.rst: the BTB may be shared between hardware threads)', () => {
    const p = core();
    p.train(1, guest, 2);
    expect(p.indirectSteeringMask(0)).toBe(1 << guest);
    // The return stack is per thread: the sibling's calls do not reach thread 0's.
    expect(p.returnSteeringMask(0)).toBe(0);
    expect(p.returnSteeringMask(1)).toBe(1 << guest);
  });

  it('a core whose predictors are per thread keeps siblings apart', () => {
    const p = core(false);
    p.train(1, guest, 2);
    expect(p.canSteer(0, guest)).toBe(false);
  });

  it('STIBP on a thread stops sibling-trained entries from steering it, not its own', () => {
    const p = core();
    p.train(1, guest, 2);
    p.train(0, user, 3);
    p.setStibp(0, true);
    expect(p.stibpEnabled(0)).toBe(true);
    expect(p.indirectSteeringMask(0)).toBe(1 << user);
    // The sibling without STIBP is still steered by thread 0's entry.
    expect(p.indirectSteeringMask(1)).toBe((1 << guest) | (1 << user));
    p.setStibp(0, false);
    expect(p.indirectSteeringMask(0)).toBe((1 << guest) | (1 << user));
  });

  it('IBPB clears what was trained before it for that thread only; later sibling training steers again', () => {
    const p = core();
    p.train(0, guest, 1);
    p.train(1, other, 2);
    p.ibpb(0);
    expect(p.indirectSteeringMask(0)).toBe(0);
    expect(p.indirectSteeringMask(1)).toBe((1 << guest) | (1 << other));
    p.train(1, other, 4);
    expect(p.indirectSteeringMask(0)).toBe(1 << other);
  });

  it('IBPB leaves the return stack; the RSB fill empties it (hence both in maybe_flush_control)', () => {
    const p = core();
    p.train(0, guest, 1);
    p.ibpb(0);
    expect(p.canSteer(0, guest)).toBe(true);
    p.rsbFill(0);
    expect(p.canSteer(0, guest)).toBe(false);
  });

  it('an entry overwritten by a later training keeps only the later domain', () => {
    const p = new BranchPredictor({ threadsPerCore: 1, entryCount: 4, siblingsShare: true });
    p.train(0, guest, 1);
    p.train(0, user, 5);
    expect(p.indirectSteeringMask(0)).toBe(1 << user);
  });

  it('checks its inputs', () => {
    const p = core();
    expect(() => p.train(2, guest, 0)).toThrow(AssertionError);
    expect(() => p.train(0, predictorDomainCountMax, 0)).toThrow(AssertionError);
    expect(() => p.train(0, guest, -1)).toThrow(AssertionError);
    expect(() => new BranchPredictor({ threadsPerCore: 5, entryCount: 4, siblingsShare: true })).toThrow(
      AssertionError,
    );
  });
});

describe('linux-asi branch predictor over shared words (the machine buffer, as two workers have it)', () => {
  const words = () => new Int32Array(new SharedArrayBuffer(predictorI32s(predictorEntriesDefault, 2) * 4));
  const over = (shared: Int32Array) =>
    new BranchPredictor({
      threadsPerCore: 2,
      entryCount: predictorEntriesDefault,
      siblingsShare: true,
      words: shared,
    });

  it("two predictors over the same words see each other's training, IBPBs, STIBP and RSB fills", () => {
    const shared = words();
    const thread0 = over(shared);
    const thread1 = over(shared);
    thread1.train(1, guest, 2);
    expect(thread0.indirectSteeringMask(0)).toBe(1 << guest);
    expect(thread0.returnSteeringMask(1)).toBe(1 << guest);
    thread0.ibpb(0);
    expect(thread1.indirectSteeringMask(0)).toBe(0);
    expect(thread1.indirectSteeringMask(1)).toBe(1 << guest);
    thread1.train(1, other, 3);
    expect(thread0.indirectSteeringMask(0)).toBe(1 << other);
    thread0.setStibp(0, true);
    expect(thread1.stibpEnabled(0)).toBe(true);
    expect(thread1.indirectSteeringMask(0)).toBe(0);
    thread0.rsbFill(1);
    expect(thread1.returnSteeringMask(1)).toBe(0);
  });

  it('zeroed words are an empty predictor (what a machine reset leaves)', () => {
    const shared = words();
    over(shared).train(0, guest, 1);
    over(shared).setStibp(1, true);
    shared.fill(0);
    const fresh = over(shared);
    expect(fresh.canSteer(0, guest)).toBe(false);
    expect(fresh.stibpEnabled(1)).toBe(false);
  });

  it('a predictor of a one-thread machine (the sim: plain writes) keeps the same state as an atomic one', () => {
    const atomic = words();
    const plain = words();
    for (const [shared, concurrent] of [
      [atomic, true],
      [plain, false],
    ] as const) {
      const p = new BranchPredictor({
        threadsPerCore: 2,
        entryCount: predictorEntriesDefault,
        siblingsShare: true,
        words: shared,
        concurrent,
      });
      p.train(0, guest, 1);
      p.train(1, other, 2);
      p.ibpb(0);
      p.train(1, user, 3);
      p.setStibp(1, true);
      p.rsbFill(0);
    }
    expect([...plain]).toEqual([...atomic]);
  });

  it('refuses words of the wrong length', () => {
    expect(
      () =>
        new BranchPredictor({
          threadsPerCore: 2,
          entryCount: 4,
          siblingsShare: true,
          words: new Int32Array(4),
        }),
    ).toThrow(AssertionError);
  });
});
