import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AsiAction,
  type AsiEvent,
  type AsiMachineConfig,
  contextSwitchExits,
  defaultAsiMachineConfig,
  initialAsiState,
  mmCountMax,
  stateName,
  step,
} from '../../src/linux-asi/state.js';
import { type AsiClass, taintGuestControl, userClassPolicy } from '../../src/linux-asi/taints.js';

/**
 * INV-14 and INV-15 at the state-machine level, checked against a reference that is deliberately
 * simpler than taints: it remembers who ran on this CPU since the last flush, by name, and knows whom
 * each class must be protected from (the posted policies' comments, RFC v2 patches 21 and 25):
 * - control (INV-15): the guest must not run with predictor state trained by another mm (its user code
 *   or guest); a process must not run with state trained by any guest, or by another mm.
 * - data (INV-14): no guest or process may run while the unrestricted kernel's (any) secrets or another
 *   mm's data may sit in the buffers; a guest also not with its own VMM's (user) data.
 * IBPB followed by an RSB fill forgets the trainers; an L1D flush forgets the data.
 */
type Runner = { kind: 'user' | 'guest' | 'kernel'; mm: number };

class Reference {
  trainers: Runner[] = [];
  dataOf: Runner[] = [{ kind: 'kernel', mm: -1 }];
  private ibpbPending = false;

  apply(actions: readonly AsiAction[]): void {
    for (const action of actions) {
      if (action.kind === 'ibpb') this.ibpbPending = true;
      if (action.kind === 'rsb-fill' && this.ibpbPending) {
        this.trainers = [];
        this.ibpbPending = false;
      }
      if (action.kind === 'l1d-flush') this.dataOf = [];
      // The unrestricted kernel runs (and may touch any secret) after every switch to it, and the
      // retried access touches a sensitive page.
      if ((action.kind === 'cr3' && action.asiClass === null) || action.kind === 'retry-access') {
        this.dataOf.push({ kind: 'kernel', mm: -1 });
      }
    }
  }

  /** The forbidden runners present when `asiClass` of `mm` runs, or an empty string. */
  violation(asiClass: AsiClass, mm: number): string {
    const control = this.trainers.filter((r) =>
      asiClass === 'kvm' ? r.mm !== mm : r.kind === 'guest' || r.mm !== mm,
    );
    const data = this.dataOf.filter(
      (r) => r.kind === 'kernel' || r.mm !== mm || (asiClass === 'kvm' && r.kind === 'user'),
    );
    const names = (rs: Runner[]) =>
      rs.map((r) => (r.kind === 'kernel' ? 'kernel' : `${r.kind}:${r.mm}`)).join(',');
    return [
      control.length > 0 ? `INV-15: ${asiClass}:${mm} runs with predictor state of ${names(control)}` : '',
      data.length > 0 ? `INV-14: ${asiClass}:${mm} runs with data of ${names(data)}` : '',
    ]
      .filter((s) => s !== '')
      .join('; ');
  }

  ran(asiClass: AsiClass, mm: number): void {
    const runner: Runner = { kind: asiClass === 'kvm' ? 'guest' : 'user', mm };
    this.trainers.push(runner);
    this.dataOf.push(runner);
  }
}

/** Weighted so interrupts nest and return often: the re-entry paths are where bugs hide. */
const eventArbitrary: fc.Arbitrary<AsiEvent> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom<AsiEvent>(
      { kind: 'enter', asiClass: 'kvm' },
      { kind: 'enter', asiClass: 'user' },
    ),
  },
  { weight: 2, arbitrary: fc.constant<AsiEvent>({ kind: 'relax' }) },
  { weight: 1, arbitrary: fc.constant<AsiEvent>({ kind: 'exit' }) },
  { weight: 2, arbitrary: fc.constant<AsiEvent>({ kind: 'page-fault' }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<AsiEvent>(
      { kind: 'interrupt', source: 'irq' },
      { kind: 'interrupt', source: 'nmi' },
    ),
  },
  { weight: 3, arbitrary: fc.constant<AsiEvent>({ kind: 'interrupt-return' }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 2 }).map((nextMm): AsiEvent => ({ kind: 'context-switch', nextMm })),
  },
);

/** Runs the events (refused ones are skipped, as a caller would not raise them); the first violation. */
function firstViolation(events: readonly AsiEvent[], config: AsiMachineConfig): string {
  let state = initialAsiState(0);
  const reference = new Reference();
  for (const [i, event] of events.entries()) {
    const result = step(state, event, config);
    if (!result.ok) continue;
    state = result.state;
    reference.apply(result.actions);
    if (stateName(state) === 'critical' && state.current !== null) {
      const violation = reference.violation(state.current.asiClass, state.current.mm);
      if (violation !== '') return `event ${i} (${event.kind}): ${violation}`;
      reference.ran(state.current.asiClass, state.current.mm);
    }
  }
  return '';
}

const propertySeed = 20_261_206;
const runs = 400;

describe('linux-asi state machine against the who-ran reference (INV-14, INV-15)', () => {
  expect(mmCountMax).toBeGreaterThan(2);
  for (const [index, exitOn] of contextSwitchExits.entries()) {
    it(`no random event sequence lets a victim run without the flush its class needs (exitOn ${exitOn}, fast-check seed ${propertySeed + index})`, () => {
      const config: AsiMachineConfig = { ...defaultAsiMachineConfig, exitOn };
      fc.assert(
        fc.property(fc.array(eventArbitrary, { maxLength: 40 }), (events) => {
          expect(firstViolation(events, config)).toBe('');
        }),
        { seed: propertySeed + index, numRuns: runs },
      );
    });
  }

  const planted: [string, AsiMachineConfig, RegExp][] = [
    [
      'a user policy that skips IBPB for a guest-to-user switch',
      {
        ...defaultAsiMachineConfig,
        policies: {
          ...defaultAsiMachineConfig.policies,
          user: { ...userClassPolicy, preventControl: userClassPolicy.preventControl & ~taintGuestControl },
        },
      },
      /INV-15: user:\d runs with predictor state of .*guest/,
    ],
    [
      'asi_exit without the KERNEL_DATA taint',
      { ...defaultAsiMachineConfig, plantedFaults: ['exit-skips-kernel-data-taint'] },
      /INV-14: .* runs with data of .*kernel/,
    ],
    [
      're-entry after a nested NMI that skips the data flush',
      { ...defaultAsiMachineConfig, plantedFaults: ['nested-nmi-reentry-skips-data-flush'] },
      /INV-14: .* runs with data of .*kernel/,
    ],
  ];
  for (const [index, [name, config, expected]] of planted.entries()) {
    const seed = propertySeed + 10 + index;
    it(`catches and shrinks the planted bug: ${name} (fast-check seed ${seed})`, () => {
      const result = fc.check(
        fc.property(
          fc.array(eventArbitrary, { maxLength: 40 }),
          (events) => firstViolation(events, config) === '',
        ),
        { seed, numRuns: 5000 },
      );
      expect(result.failed, `${name}: never caught in ${result.numRuns} runs`).toBe(true);
      const shrunk = result.counterexample?.[0] ?? [];
      const violation = firstViolation(shrunk, config);
      expect(violation).toMatch(expected);
      // Shrunk to the few events the bug needs, and the same events are sound without it.
      expect(shrunk.length, JSON.stringify(shrunk)).toBeLessThanOrEqual(8);
      expect(firstViolation(shrunk, defaultAsiMachineConfig)).toBe('');
    });
  }
});
