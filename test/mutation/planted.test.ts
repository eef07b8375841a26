import { describe, expect, it } from 'vitest';
import { Mode, withMode } from '../../src/cpu/modes.js';
import { ConfigError } from '../../src/errors.js';
import { taintGuestControl } from '../../src/linux-asi/taints.js';
import { asi } from '../../src/policy/asi.js';
import { asiStun } from '../../src/policy/asi-stun.js';
import { policies } from '../../src/policy/index.js';
import { plantedBug, plantedBugs } from '../../src/policy/planted.js';
import { Flush, type Policy } from '../../src/policy/policy.js';
import { policyView } from '../helpers/policy-view.js';

/**
 * Each planted bug is exactly the mistake its `mistake` line describes, asked of its hooks directly
 * (docs/testing.md: mutation testing found hooks that could be made more or less wrong unnoticed, since
 * the sim tests only ask that a run breaks an invariant). A planted bug that drifts from its description
 * would still be "caught", and prove less than it claims.
 */
const view = policyView;

/** A core word with these siblings' modes (sibling index → mode); the others offline. */
function word(modes: Record<number, number>): number {
  return Object.entries(modes).reduce((value, [sibling, mode]) => withMode(value, Number(sibling), mode), 0);
}

const bug = (name: string): Policy => plantedBug(name).policy;
const isolatedCore = (smt: number) =>
  word(Object.fromEntries(Array.from({ length: smt }, (_, s) => [s, Mode.isolated])));

describe('the planted bugs, as a list', () => {
  it('names each bug, the invariants it must break and what a run needs to show it', () => {
    expect(plantedBugs.map((planted) => [planted.policy.name, planted.breaks, planted.needs])).toEqual([
      ['planted-no-barrier', ['INV-1', 'INV-3'], {}],
      ['planted-kick-after-switch', ['INV-4', 'INV-1'], {}],
      ['planted-barrier-one-sibling', ['INV-1', 'INV-3'], { smtMin: 3 }],
      ['planted-kick-one-sibling', ['INV-4', 'INV-1'], { smtMin: 3 }],
      ['planted-flush-before-barrier', ['INV-2'], {}],
      ['planted-no-flush-after-nmi', ['INV-2'], { nmi: true }],
      ['planted-lost-wakeup', ['INV-9'], {}],
      ['planted-enters-beside-vmm', ['INV-1', 'INV-3'], { vmmExits: true }],
      ['planted-stun-race', ['INV-1', 'INV-3'], {}],
      ['planted-linux-asi-user-no-guest-ibpb', ['INV-15'], { vmmExits: true }],
      ['planted-linux-asi-exit-no-kernel-data', ['INV-14'], {}],
      ['planted-linux-asi-nested-nmi-no-flush', ['INV-14'], { nmi: true }],
    ]);
    for (const planted of plantedBugs) {
      expect(planted.mistake.length, planted.policy.name).toBeGreaterThan(20);
      expect(planted.policy.description.length, planted.policy.name).toBeGreaterThan(20);
    }
  });

  it('plantedBug finds a bug by name and refuses another name, listing the bugs', () => {
    expect(plantedBug('planted-lost-wakeup')).toBe(plantedBugs[6]);
    expect(() => plantedBug('asi')).toThrow(ConfigError);
    expect(() => plantedBug('asi')).toThrow(/^policy: a planted bug: /);
    expect(() => plantedBug('asi')).toThrow(
      /planted-no-barrier, planted-kick-after-switch, .*planted-stun-race/,
    );
  });

  it("each of today's ASI bugs is linux-asi but for its mistake: the same hooks, settings that differ in the one named place", () => {
    const linuxAsi = policies['linux-asi'];
    const sample = view(0, 2, { faultedSinceEntry: true, nmiSinceEntry: true });
    const settings = linuxAsi.linuxAsi;
    expect(settings).toBeDefined();
    for (const planted of plantedBugs.filter((candidate) => candidate.policy.linuxAsi !== undefined)) {
      const { policy } = planted;
      expect(policy.kickBeforeFull(sample), policy.name).toBe(true);
      expect(policy.waitForSiblingsOut(sample), policy.name).toBe(true);
      expect(policy.mayEnter, policy.name).toBe(linuxAsi.mayEnter);
      expect(policy.flushBeforeEntry(sample), policy.name).toBe(Flush.none);
      const { classPolicies, plantedFaults, ...rest } = policy.linuxAsi ?? settings!;
      const { classPolicies: postedPolicies, plantedFaults: _, ...postedRest } = settings!;
      expect(rest, policy.name).toEqual(postedRest);
      if (policy.name === 'planted-linux-asi-user-no-guest-ibpb') {
        expect(plantedFaults).toEqual([]);
        expect(classPolicies.kvm).toEqual(postedPolicies.kvm);
        expect(classPolicies.user).toEqual({
          ...postedPolicies.user,
          preventControl: postedPolicies.user.preventControl & ~taintGuestControl,
        });
      } else {
        expect(classPolicies).toEqual(postedPolicies);
        expect(plantedFaults).toEqual([
          policy.name === 'planted-linux-asi-exit-no-kernel-data'
            ? 'exit-skips-kernel-data-taint'
            : 'nested-nmi-reentry-skips-data-flush',
        ]);
      }
    }
  });

  it('each is asi (or asi-stun) but for its mistake: ASI, and asi’s kick, wait and flush where not the bug', () => {
    const sample = view(0, 2, { faultedSinceEntry: true, nmiSinceEntry: true });
    for (const planted of plantedBugs.filter((candidate) => candidate.policy.linuxAsi === undefined)) {
      const { policy } = planted;
      expect(policy.usesAsi, policy.name).toBe(true);
      expect(policy.smt, policy.name).toBe(true);
      if (policy.name !== 'planted-kick-after-switch') {
        expect(policy.kickBeforeFull(sample), policy.name).toBe(true);
        expect(policy.waitForSiblingsOut(sample), policy.name).toBe(true);
        expect(policy.kickAfterFull(sample), policy.name).toBe(false);
      }
      if (policy.name !== 'planted-no-flush-after-nmi') {
        expect(policy.flushBeforeEntry, policy.name).toBe(asi.flushBeforeEntry);
      }
      expect(policy.plantedBugs.flushPoint, policy.name).toBe(
        policy.name === 'planted-flush-before-barrier' ? 'before-barrier' : 'after-barrier',
      );
      expect(policy.plantedBugs.waitFor, policy.name).toBe(
        policy.name === 'planted-lost-wakeup' ? 'ack' : 'mode',
      );
      expect(policy.stun, policy.name).toBe(policy.name === 'planted-stun-race');
      expect(policy.plantedBugs.atomicEntry, policy.name).toBe(policy.name !== 'planted-stun-race');
    }
  });
});

describe('each bug’s hooks do what its mistake says', () => {
  it('planted-no-barrier enters beside a sibling in full or the VMM', () => {
    expect(bug('planted-no-barrier').mayEnter(word({ 0: Mode.isolated, 1: Mode.full }), view(0, 2))).toBe(
      true,
    );
    expect(bug('planted-no-barrier').mayEnter(word({ 0: Mode.isolated, 1: Mode.vmm }), view(0, 2))).toBe(
      true,
    );
    expect(asi.mayEnter(word({ 0: Mode.isolated, 1: Mode.full }), view(0, 2))).toBe(false);
  });

  it('planted-kick-after-switch kicks after the switch to full, not before, and does not wait', () => {
    const policy = bug('planted-kick-after-switch');
    expect(policy.kickBeforeFull(view(0, 2))).toBe(false);
    expect(policy.waitForSiblingsOut(view(0, 2))).toBe(false);
    expect(policy.kickAfterFull(view(0, 2))).toBe(true);
  });

  it('planted-barrier-one-sibling looks at the next sibling only (wrapping), for full and vmm', () => {
    const mayEnter = bug('planted-barrier-one-sibling').mayEnter;
    // Sibling 1 of 4 looks at sibling 2.
    expect(mayEnter(withMode(isolatedCore(4), 2, Mode.full), view(1, 4))).toBe(false);
    expect(mayEnter(withMode(isolatedCore(4), 2, Mode.vmm), view(1, 4))).toBe(false);
    expect(mayEnter(withMode(isolatedCore(4), 2, Mode.guest), view(1, 4))).toBe(true);
    expect(mayEnter(isolatedCore(4), view(1, 4))).toBe(true);
    // The bug: sibling 3 (or 0) in full is not seen.
    expect(mayEnter(withMode(isolatedCore(4), 3, Mode.full), view(1, 4))).toBe(true);
    expect(mayEnter(withMode(isolatedCore(4), 0, Mode.vmm), view(1, 4))).toBe(true);
    // Sibling 3 wraps to sibling 0.
    expect(mayEnter(withMode(isolatedCore(4), 0, Mode.full), view(3, 4))).toBe(false);
    expect(mayEnter(withMode(isolatedCore(4), 2, Mode.full), view(3, 4))).toBe(true);
    // With two threads per core the one sibling is the only one: the barrier is right there.
    expect(mayEnter(withMode(isolatedCore(2), 0, Mode.full), view(1, 2))).toBe(false);
  });

  it('planted-kick-one-sibling kicks and waits for the next sibling only (wrapping)', () => {
    const policy = bug('planted-kick-one-sibling');
    const allGuest = word({ 0: Mode.guest, 1: Mode.guest, 2: Mode.guest, 3: Mode.guest });
    expect(policy.kickTargets(allGuest, view(1, 4))).toBe(0b0100);
    expect(policy.kickTargets(allGuest, view(3, 4))).toBe(0b0001);
    // The next sibling not in the guest: nobody is kicked, though others are.
    expect(policy.kickTargets(withMode(allGuest, 2, Mode.isolated), view(1, 4))).toBe(0);
    // Waiting: done once the next sibling is out, however many others are still in the guest.
    expect(policy.siblingsOut(withMode(allGuest, 2, Mode.isolated), view(1, 4))).toBe(true);
    expect(policy.siblingsOut(allGuest, view(1, 4))).toBe(false);
    expect(policy.siblingsOut(withMode(allGuest, 0, Mode.isolated), view(3, 4))).toBe(true);
    expect(policy.siblingsOut(withMode(allGuest, 1, Mode.isolated), view(3, 4))).toBe(false);
  });

  it('planted-no-flush-after-nmi flushes after a handler fault or the VMM, never for an NMI alone', () => {
    const flush = bug('planted-no-flush-after-nmi').flushBeforeEntry;
    const both = Flush.l1d | Flush.buffers;
    expect(flush(view(0, 2, { faultedSinceEntry: true }))).toBe(both);
    expect(flush(view(0, 2, { vmmSinceEntry: true }))).toBe(both);
    expect(flush(view(0, 2, { nmiSinceEntry: true, foreignLines: () => 5 }))).toBe(Flush.none);
    expect(flush(view(0, 2))).toBe(Flush.none);
  });

  it('planted-enters-beside-vmm refuses a sibling in full but not one in the VMM; it ignores itself and threads past smt', () => {
    const mayEnter = bug('planted-enters-beside-vmm').mayEnter;
    expect(mayEnter(withMode(isolatedCore(2), 1, Mode.full), view(0, 2))).toBe(false);
    expect(mayEnter(withMode(isolatedCore(4), 3, Mode.full), view(0, 4))).toBe(false);
    expect(mayEnter(withMode(isolatedCore(2), 1, Mode.vmm), view(0, 2))).toBe(true);
    expect(mayEnter(withMode(isolatedCore(2), 0, Mode.full), view(0, 2))).toBe(true);
    expect(mayEnter(withMode(isolatedCore(2), 2, Mode.full), view(0, 2))).toBe(true);
  });

  it('planted-stun-race has asi-stun’s barrier, checked apart from the entry', () => {
    const policy = bug('planted-stun-race');
    expect(policy.mayEnter).toBe(asiStun.mayEnter);
    expect(policy.stun).toBe(true);
    expect(policy.plantedBugs.atomicEntry).toBe(false);
  });
});
