import { describe, expect, it } from 'vitest';
import {
  type AsiAction,
  type AsiCpuState,
  type AsiEvent,
  type AsiEventKind,
  type AsiMachineConfig,
  type AsiStateName,
  type AsiStep,
  acceptedEvents,
  asiPcidShift,
  defaultAsiMachineConfig,
  initialAsiState,
  interruptDepthMax,
  pcidOf,
  stateName,
  step,
} from '../../src/linux-asi/state.js';
import {
  taintGuestControl,
  taintKernelData,
  taintOtherMmControl,
  taintOtherMmData,
  taintsToString,
  taintUserControl,
  taintUserData,
  userClassPolicy,
} from '../../src/linux-asi/taints.js';

const config = defaultAsiMachineConfig;
const mmSwitchOnly: AsiMachineConfig = { ...config, exitOn: 'mm-switch' };

/** Applies events that must all be accepted; returns the last step. */
function run(
  events: readonly AsiEvent[],
  cfg: AsiMachineConfig = config,
  from = initialAsiState(0),
): AsiStepOk {
  let state = from;
  let last: AsiStepOk | null = null;
  for (const event of events) {
    const result = step(state, event, cfg);
    if (!result.ok)
      throw new Error(`${event.kind} refused in ${result.rejection.state}: ${result.rejection.reason}`);
    state = result.state;
    last = result;
  }
  if (last === null) throw new Error('no events');
  return last;
}
type AsiStepOk = Extract<AsiStep, { ok: true }>;

const kinds = (actions: readonly AsiAction[]) =>
  actions.map((a) => (a.kind === 'cr3' ? `cr3:${a.asiClass ?? 'unrestricted'}` : a.kind));

const enterKvm: AsiEvent = { kind: 'enter', asiClass: 'kvm' };
const enterUser: AsiEvent = { kind: 'enter', asiClass: 'user' };
const relax: AsiEvent = { kind: 'relax' };
const exit: AsiEvent = { kind: 'exit' };
const fault: AsiEvent = { kind: 'page-fault' };
const irq: AsiEvent = { kind: 'interrupt', source: 'irq' };
const nmi: AsiEvent = { kind: 'interrupt', source: 'nmi' };
const iret: AsiEvent = { kind: 'interrupt-return' };

describe('linux-asi state machine: asi_enter / asi_relax / asi_exit', () => {
  it('starts unrestricted and relaxed with KERNEL_DATA set (the kernel ran)', () => {
    const s = initialAsiState(2);
    expect(stateName(s)).toBe('unrestricted');
    expect(s.taints).toBe(taintKernelData);
  });

  it('asi_enter flushes data (KERNEL_DATA), switches CR3 to the class with its own PCID, sets the class taints', () => {
    const r = run([enterKvm]);
    expect(stateName(r.state)).toBe('critical');
    expect(kinds(r.actions)).toEqual(['cr3:kvm', 'l1d-flush', 'buffer-clear']);
    expect(r.actions[0]).toEqual({ kind: 'cr3', asiClass: 'kvm', mm: 0, pcid: pcidOf(0, 'kvm') });
    expect(taintsToString(r.state.taints)).toBe('GUEST_CONTROL');
    expect(r.exitReason).toBeNull();
  });

  it('the control flush comes before the CR3 write and the data flush after it (__asi_enter order)', () => {
    // kvm ran (GUEST_CONTROL), then the kernel (exit: IBPB clears it) ... use a direct kvm -> user switch.
    const r = run([enterKvm, relax, enterUser]);
    expect(kinds(r.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:user']);
    expect(taintsToString(r.state.taints)).toBe('USER_DATA|USER_CONTROL');
  });

  it('user -> kvm without an exit flushes the VMM data (USER_DATA) but no IBPB (the guest trusts its VMM)', () => {
    const r = run([enterUser, relax, enterKvm]);
    expect(kinds(r.actions)).toEqual(['cr3:kvm', 'l1d-flush', 'buffer-clear']);
    expect(taintsToString(r.state.taints)).toBe('USER_CONTROL|GUEST_CONTROL');
  });

  it('asi_relax ends the critical section without switching', () => {
    const r = run([enterKvm, relax]);
    expect(stateName(r.state)).toBe('restricted-relaxed');
    expect(r.actions).toEqual([]);
    expect(r.state.current).toEqual({ asiClass: 'kvm', mm: 0 });
  });

  it('asi_enter of the loaded domain again switches nothing and flushes nothing', () => {
    const r = run([enterKvm, relax, enterKvm]);
    expect(r.actions).toEqual([]);
    expect(stateName(r.state)).toBe('critical');
  });

  it('asi_exit flushes control taints (IBPB + RSB fill), switches to the unrestricted PCID, sets KERNEL_DATA', () => {
    const r = run([enterKvm, relax, exit]);
    expect(kinds(r.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:unrestricted']);
    expect(r.actions[2]).toEqual({ kind: 'cr3', asiClass: null, mm: 0, pcid: pcidOf(0, null) });
    expect(taintsToString(r.state.taints)).toBe('KERNEL_DATA');
    expect(r.exitReason).toBe('explicit');
    expect(stateName(r.state)).toBe('unrestricted');
  });

  it('asi_exit while unrestricted does nothing and counts no exit', () => {
    const r = run([exit]);
    expect(r.actions).toEqual([]);
    expect(r.exitReason).toBeNull();
  });

  it('gives restricted spaces their own PCIDs: per class, distinct from the kernel PCID of the mm', () => {
    expect(pcidOf(0, null)).toBe(1);
    expect(pcidOf(0, 'kvm')).toBe(1 | (1 << asiPcidShift));
    expect(pcidOf(0, 'user')).toBe(1 | (2 << asiPcidShift));
    expect(new Set([pcidOf(3, null), pcidOf(3, 'kvm'), pcidOf(3, 'user'), pcidOf(4, 'kvm')]).size).toBe(4);
  });
});

describe('linux-asi state machine: page faults exit and retry', () => {
  it('in the critical section: exit, retry, and the fault return re-enters with a data flush', () => {
    const r = run([enterKvm, fault]);
    expect(kinds(r.actions)).toEqual([
      'ibpb',
      'rsb-fill',
      'cr3:unrestricted',
      'retry-access',
      'cr3:kvm',
      'l1d-flush',
      'buffer-clear',
    ]);
    expect(r.exitReason).toBe('page-fault');
    expect(r.reentered).toBe(true);
    expect(stateName(r.state)).toBe('critical');
    expect(taintsToString(r.state.taints)).toBe('GUEST_CONTROL');
  });

  it('when relaxed in a restricted space: exit and retry, and stay unrestricted', () => {
    const r = run([enterUser, relax, fault]);
    expect(kinds(r.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:unrestricted', 'retry-access']);
    expect(r.exitReason).toBe('page-fault');
    expect(r.reentered).toBe(false);
    expect(stateName(r.state)).toBe('unrestricted');
    expect(taintsToString(r.state.taints)).toBe('KERNEL_DATA|USER_DATA');
  });

  it('is refused in the unrestricted space, which maps everything', () => {
    const r = step(initialAsiState(0), fault, config);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.rejection).toMatchObject({ event: 'page-fault', state: 'unrestricted' });
  });
});

describe('linux-asi state machine: interrupts and NMIs', () => {
  it('an interrupt in the critical section switches nothing; its return without a fault re-enters nothing', () => {
    const a = run([enterKvm, irq]);
    expect(a.actions).toEqual([]);
    expect(stateName(a.state)).toBe('interrupted-restricted');
    const b = run([iret], config, a.state);
    expect(b.actions).toEqual([]);
    expect(b.reentered).toBe(false);
    expect(stateName(b.state)).toBe('critical');
  });

  it("a handler's fault exits (counted as an interrupt exit); only the outermost return re-enters, with the flush", () => {
    const inner = run([enterKvm, irq, nmi, fault]);
    expect(inner.exitReason).toBe('interrupt');
    expect(kinds(inner.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:unrestricted', 'retry-access']);
    expect(stateName(inner.state)).toBe('interrupted-unrestricted');
    expect(inner.state.nmiNested).toBe(true);
    const nmiReturn = run([iret], config, inner.state);
    expect(nmiReturn.actions).toEqual([]);
    expect(nmiReturn.state.interruptDepth).toBe(1);
    const outermost = run([iret], config, nmiReturn.state);
    expect(kinds(outermost.actions)).toEqual(['cr3:kvm', 'l1d-flush', 'buffer-clear']);
    expect(outermost.reentered).toBe(true);
    expect(outermost.state.nmiNested).toBe(false);
    expect(stateName(outermost.state)).toBe('critical');
  });

  it('an interrupt while relaxed does not re-enter on return', () => {
    const r = run([enterKvm, relax, irq, fault, iret]);
    expect(r.actions).toEqual([]);
    expect(stateName(r.state)).toBe('unrestricted');
  });

  it(`bounds nesting at ${interruptDepthMax}`, () => {
    const deep = run(Array.from({ length: interruptDepthMax }, () => irq));
    expect(step(deep.state, irq, config).ok).toBe(false);
  });
});

describe('linux-asi state machine: context switches', () => {
  it("upstream ('every-switch') exits on a switch to another thread of the same mm", () => {
    const r = run([enterUser, relax, { kind: 'context-switch', nextMm: 0 }]);
    expect(r.exitReason).toBe('context-switch');
    expect(kinds(r.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:unrestricted']);
  });

  it("Google's internal version ('mm-switch') stays restricted when the mm does not change", () => {
    const r = run([enterUser, relax, { kind: 'context-switch', nextMm: 0 }], mmSwitchOnly);
    expect(r.exitReason).toBeNull();
    expect(r.actions).toEqual([]);
    expect(stateName(r.state)).toBe('restricted-relaxed');
  });

  it('both exit on an mm switch, fold the taints into OTHER_MM and load the next mm', () => {
    for (const cfg of [config, mmSwitchOnly]) {
      const r = run([enterUser, relax, { kind: 'context-switch', nextMm: 3 }], cfg);
      expect(r.exitReason).toBe('context-switch');
      expect(kinds(r.actions)).toEqual(['ibpb', 'rsb-fill', 'cr3:unrestricted', 'cr3:unrestricted']);
      expect(r.actions[3]).toEqual({ kind: 'cr3', asiClass: null, mm: 3, pcid: pcidOf(3, null) });
      expect(r.state.mm).toBe(3);
      expect(r.state.taints).toBe(taintKernelData | taintOtherMmData);
    }
  });

  it('the next entry after an mm switch flushes the other mm data', () => {
    const r = run([enterUser, relax, { kind: 'context-switch', nextMm: 1 }, enterUser]);
    expect(kinds(r.actions)).toEqual(['cr3:user', 'l1d-flush', 'buffer-clear']);
    expect(r.actions[0]).toMatchObject({ mm: 1 });
  });
});

describe('linux-asi state machine: what each state refuses, with a reason', () => {
  const samples: Record<AsiEventKind, AsiEvent> = {
    enter: enterKvm,
    relax,
    exit,
    'page-fault': fault,
    interrupt: irq,
    'interrupt-return': iret,
    'context-switch': { kind: 'context-switch', nextMm: 1 },
  };
  const reach: Record<AsiStateName, readonly AsiEvent[]> = {
    unrestricted: [exit],
    'restricted-relaxed': [enterKvm, relax],
    critical: [enterKvm],
    'interrupted-restricted': [enterKvm, irq],
    'interrupted-unrestricted': [irq],
  };
  for (const [name, events] of Object.entries(reach) as [AsiStateName, readonly AsiEvent[]][]) {
    it(`${name}: accepts exactly ${acceptedEvents[name].join(', ')}`, () => {
      const state: AsiCpuState = run(events).state;
      expect(stateName(state)).toBe(name);
      for (const [kind, event] of Object.entries(samples) as [AsiEventKind, AsiEvent][]) {
        const r = step(state, event, config);
        expect(r.ok, `${kind} in ${name}`).toBe(acceptedEvents[name].includes(kind));
        if (!r.ok) {
          expect(r.rejection.state).toBe(name);
          expect(r.rejection.reason.length).toBeGreaterThan(20);
          expect(r.state).toBe(state);
        }
      }
    });
  }

  it('refuses asi_enter in the critical section, citing the rule', () => {
    const r = step(run([enterUser]).state, enterKvm, config);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.rejection.reason).toMatch(/asi_relax\(\) between any two/);
  });
});

describe('linux-asi state machine: planted faults change the outcome', () => {
  it("'exit-skips-kernel-data-taint' leaves KERNEL_DATA out, so the next entry flushes nothing", () => {
    const cfg: AsiMachineConfig = { ...config, plantedFaults: ['exit-skips-kernel-data-taint'] };
    const r = run([enterUser, relax, exit, enterUser], cfg);
    expect(kinds(r.actions)).toEqual(['cr3:user']);
    const sound = run([enterUser, relax, exit, enterUser]);
    expect(kinds(sound.actions)).toEqual(['cr3:user', 'l1d-flush', 'buffer-clear']);
  });

  it("'nested-nmi-reentry-skips-data-flush' skips the flush only after a nested NMI", () => {
    const cfg: AsiMachineConfig = { ...config, plantedFaults: ['nested-nmi-reentry-skips-data-flush'] };
    const nested = run([enterKvm, irq, nmi, fault, iret, iret], cfg);
    expect(kinds(nested.actions)).toEqual(['cr3:kvm']);
    expect(nested.state.taints & taintKernelData).toBe(taintKernelData);
    const single = run([enterKvm, irq, fault, iret], cfg);
    expect(kinds(single.actions)).toEqual(['cr3:kvm', 'l1d-flush', 'buffer-clear']);
  });

  it('a user policy without GUEST_CONTROL skips the IBPB on a guest-to-user switch', () => {
    const cfg: AsiMachineConfig = {
      ...config,
      policies: {
        ...config.policies,
        user: { ...userClassPolicy, preventControl: userClassPolicy.preventControl & ~taintGuestControl },
      },
    };
    const r = run([enterKvm, relax, enterUser], cfg);
    expect(kinds(r.actions)).toEqual(['cr3:user']);
    expect(r.state.taints & (taintGuestControl | taintUserControl | taintUserData)).toBe(
      taintGuestControl | taintUserControl | taintUserData,
    );
  });
});

/**
 * A port of the asi branch's KUnit test_asi_tainting (arch/x86/mm/asi_test.c): every sequence of up
 * to three transitions from {enter(user), enter(kvm), exit, switch-mm}, each followed by its expected
 * taint and the test's safety checks on the taints.
 */
describe('linux-asi: the KUnit tainting test, ported', () => {
  type Transition = 'enter(user)' | 'enter(kvm)' | 'exit' | 'switch-mm';
  const transitions: Transition[] = ['enter(user)', 'enter(kvm)', 'exit', 'switch-mm'];
  const sequences: Transition[][] = [];
  for (let length = 1; length <= 3; length++) {
    const build = (prefix: Transition[]): void => {
      if (prefix.length === length) sequences.push(prefix);
      else for (const t of transitions) build([...prefix, t]);
    };
    build([]);
  }

  for (const cfg of [config, mmSwitchOnly]) {
    it(`${sequences.length} sequences hold the KUnit expectations (exitOn ${cfg.exitOn})`, () => {
      for (const sequence of sequences) {
        let state = initialAsiState(0);
        for (const [i, transition] of sequence.entries()) {
          const where = `${sequence.join(',')} at ${i}`;
          const apply = (event: AsiEvent) => {
            const r = step(state, event, cfg);
            if (!r.ok) throw new Error(`${where}: ${r.rejection.reason}`);
            state = r.state;
          };
          if (transition === 'enter(user)') {
            apply(enterUser);
            expect(state.taints & (taintUserData | taintUserControl), where).toBe(
              taintUserData | taintUserControl,
            );
            apply(relax);
          } else if (transition === 'enter(kvm)') {
            apply(enterKvm);
            expect(state.taints & taintGuestControl, where).toBe(taintGuestControl);
            apply(relax);
          } else if (transition === 'exit') {
            apply(exit);
            expect(state.taints & taintKernelData, where).toBe(taintKernelData);
          } else {
            apply({ kind: 'context-switch', nextMm: (state.mm + 1) % 2 });
          }
          const t = state.taints;
          if (t & (taintKernelData | taintOtherMmData)) {
            expect(t & (taintUserControl | taintGuestControl), `${where}: ${taintsToString(t)}`).toBe(0);
          }
          if (t & taintKernelData) expect(t & taintOtherMmControl, `${where}: ${taintsToString(t)}`).toBe(0);
          if (t & taintUserData) {
            expect(t & (taintOtherMmControl | taintGuestControl), `${where}: ${taintsToString(t)}`).toBe(0);
          }
        }
      }
    });
  }
});
