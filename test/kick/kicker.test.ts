import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import { Mode, withMode } from '../../src/cpu/modes.js';
import { Mailboxes, Vector } from '../../src/kick/ipi.js';
import { Kicker, type KickerHost, KickWait } from '../../src/kick/kicker.js';
import type { Notifier } from '../../src/kick/wait.js';
import { createMachine } from '../../src/machine.js';
import { CoreField, coreFieldIndex, ThreadField, threadFieldIndex } from '../../src/memory/layout.js';
import { policies } from '../../src/policy/index.js';
import { plantedBug } from '../../src/policy/planted.js';
import type { Policy } from '../../src/policy/policy.js';
import { policyView } from '../helpers/policy-view.js';

/**
 * The kick protocol's kicker on its own (issue 21 item 4): a core of four siblings in a machine buffer,
 * the kicker of sibling 0 driven by hand against a host that records what it is told. The state machine
 * and both backends reach it through whole runs (test/sim, test/backend/workers/kick.test.ts).
 */
const ipiSendCycles = 300;
const ipiDeliveryCycles = 700;

interface Recorded {
  kicks: Array<[target: number, rekick: boolean]>;
  interrupts: number;
  notifies: Array<[i32Index: number, nowCycles: number]>;
}

function setUp(policy: Policy = policies.asi, concurrent = false) {
  const smt = 4;
  const machine = createMachine({ cores: 1, smt, memoryMiB: 64 }, { concurrent });
  const { i32, f64, layout } = machine;
  const mailboxes = new Mailboxes(i32, f64, layout, concurrent);
  const coreI32Index = coreFieldIndex(layout, 0, CoreField.state);
  const recorded: Recorded = { kicks: [], interrupts: 0, notifies: [] };
  const notifier: Notifier = { notify: (index, now) => recorded.notifies.push([index, now]) };
  const host = {
    clockCycles: 1000,
    coreWord: () => Atomics.load(i32, coreI32Index),
    spend: (cycles: number) => {
      host.clockCycles += cycles;
    },
    kickSent: (target: number, rekick: boolean) => {
      recorded.kicks.push([target, rekick]);
    },
    interruptInKickWait: () => {
      recorded.interrupts++;
    },
  } satisfies KickerHost;
  const kickerOf = (thread: number, kickerHost: KickerHost = host) =>
    new Kicker(
      {
        i32,
        layout,
        atomic: concurrent,
        mailboxes,
        notifier,
        thread,
        sibling: thread,
        siblingThreads: [0, 1, 2, 3],
        coreI32Index,
        ipiSendCycles,
        ipiDeliveryCycles,
      },
      policy,
      policyView(thread, smt, { coreWord: () => Atomics.load(i32, coreI32Index) }),
      kickerHost,
    );
  /** Sets the core word to these modes, sibling by sibling. */
  const setModes = (...modes: number[]) => {
    let word = 0;
    modes.forEach((mode, sibling) => {
      word = withMode(word, sibling, mode);
    });
    Atomics.store(i32, coreI32Index, word);
    return word;
  };
  const ackIndex = (thread: number) => threadFieldIndex(layout, thread, ThreadField.kickAcks);
  return {
    machine,
    mailboxes,
    coreI32Index,
    recorded,
    host,
    kicker: kickerOf(0),
    kickerOf,
    setModes,
    ackIndex,
  };
}

describe('Kicker: the kicker side', () => {
  it('kicks each sibling in the guest once: the IPI cost, the mailbox bit with its send time, the notify', () => {
    const { kicker, mailboxes, recorded, host, setModes } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.guest);
    kicker.kick();
    expect(recorded.kicks).toEqual([
      [1, false],
      [3, false],
    ]);
    expect(host.clockCycles).toBe(1000 + 2 * ipiSendCycles);
    expect(mailboxes.pending(1)).toBe(Vector.kick);
    expect(mailboxes.pending(3)).toBe(Vector.kick);
    expect(mailboxes.pending(2)).toBe(0);
    // Each kick carries the sender's clock after its own send cost (the IPI's latency counts from there).
    expect(mailboxes.kickSentAt(1)).toBe(1000 + ipiSendCycles);
    expect(mailboxes.kickSentAt(3)).toBe(1000 + 2 * ipiSendCycles);
    expect(recorded.notifies).toEqual([
      [mailboxes.index(1), 1000 + ipiSendCycles],
      [mailboxes.index(3), 1000 + 2 * ipiSendCycles],
    ]);
  });

  it('sends nothing when no sibling is in the guest, and the wait is over at once', () => {
    const { kicker, recorded, setModes } = setUp();
    setModes(Mode.isolated, Mode.idle, Mode.held, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    expect(recorded.kicks).toEqual([]);
    expect(kicker.waitForSiblings()).toBe(KickWait.out);
  });

  it('waits on the core word, with the value it read, while a kicked sibling is still in the guest', () => {
    const { kicker, coreI32Index, recorded, setModes } = setUp();
    const word = setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    expect(kicker.waitForSiblings()).toBe(KickWait.blocked);
    expect(kicker.waitIndex).toBe(coreI32Index);
    expect(kicker.waitValue).toBe(word);
    expect(recorded.kicks).toEqual([[1, false]]);
    // The sibling leaves: the condition holds on the next look.
    setModes(Mode.isolated, Mode.isolated, Mode.isolated, Mode.isolated);
    expect(kicker.waitForSiblings()).toBe(KickWait.out);
  });

  it('kicks again a sibling back in the guest with no kick pending (its exit took the first one)', () => {
    const { kicker, mailboxes, recorded, host, setModes } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    // Sibling 1 took the kick (an exit for something else cleared it) and re-entered before the switch.
    mailboxes.take(1, Vector.kick);
    const before = host.clockCycles;
    expect(kicker.waitForSiblings()).toBe(KickWait.rekicked);
    expect(recorded.kicks).toEqual([
      [1, false],
      [1, true],
    ]);
    expect(host.clockCycles).toBe(before + ipiSendCycles);
    expect(mailboxes.pending(1)).toBe(Vector.kick);
    // With the kick pending again, it waits rather than kicking a third time.
    expect(kicker.waitForSiblings()).toBe(KickWait.blocked);
    expect(recorded.kicks).toHaveLength(2);
  });

  it('bounds the re-kicks of one wait (a sibling that never leaves is a stuck run, not a hang)', () => {
    const { kicker, mailboxes, setModes } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.beginWait();
    expect(() => {
      for (;;) {
        mailboxes.take(1, Vector.kick);
        kicker.waitForSiblings();
      }
    }).toThrow(AssertionError);
    expect(() => kicker.waitForSiblings()).toThrow(/sibling 1 never left the guest/);
    // A new wait starts the count over.
    kicker.beginWait();
    mailboxes.take(1, Vector.kick);
    expect(kicker.waitForSiblings()).toBe(KickWait.rekicked);
  });

  it('notes an interrupt pending in its own mailbox once per wait', () => {
    const { kicker, mailboxes, recorded, setModes } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    mailboxes.send(0, Vector.irq, 0, { notify: () => {} });
    kicker.waitForSiblings();
    kicker.waitForSiblings();
    expect(recorded.interrupts).toBe(1);
    kicker.beginWait();
    kicker.waitForSiblings();
    expect(recorded.interrupts).toBe(2);
  });
});

describe('Kicker: the kicked side', () => {
  it('makes a kick visible at its send time plus the IPI latency', () => {
    const { kicker, kickerOf, setModes } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    expect(kickerOf(1).kickVisibleAtCycles()).toBe(1000 + ipiSendCycles + ipiDeliveryCycles);
  });

  it('acknowledges: one more on its own counter, then the notify of that word', () => {
    const { machine, kickerOf, recorded, ackIndex } = setUp();
    kickerOf(2).acknowledge(4242);
    kickerOf(2).acknowledge(4343);
    expect(machine.i32[ackIndex(2)]).toBe(2);
    expect(machine.i32[ackIndex(1)]).toBe(0);
    expect(recorded.notifies).toEqual([
      [ackIndex(2), 4242],
      [ackIndex(2), 4343],
    ]);
  });

  it('drops a stale kick without acknowledging it', () => {
    const { kicker, kickerOf, mailboxes, machine, setModes, ackIndex } = setUp();
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    mailboxes.send(1, Vector.wake, 0, { notify: () => {} });
    expect(kickerOf(1).dropStaleKick()).toBe(true);
    expect(kickerOf(1).dropStaleKick()).toBe(false);
    expect(mailboxes.pending(1)).toBe(Vector.wake);
    expect(machine.i32[ackIndex(1)]).toBe(0);
  });
});

describe('Kicker: a policy that waits for acknowledgements (the planted lost wake-up)', () => {
  it('is out once a kicked sibling acknowledges, and otherwise waits on its own mailbox (the bug)', () => {
    const { kicker, kickerOf, mailboxes, setModes } = setUp(plantedBug('planted-lost-wakeup').policy);
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    expect(kicker.waitForSiblings()).toBe(KickWait.blocked);
    expect(kicker.waitIndex).toBe(mailboxes.index(0));
    expect(kicker.waitValue).toBe(0);
    kickerOf(1).acknowledge(2000);
    expect(kicker.waitForSiblings()).toBe(KickWait.out);
  });

  it('counts only acknowledgements made after the kick', () => {
    const { kicker, kickerOf, setModes } = setUp(plantedBug('planted-lost-wakeup').policy);
    kickerOf(1).acknowledge(0);
    setModes(Mode.isolated, Mode.guest, Mode.isolated, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    expect(kicker.waitForSiblings()).toBe(KickWait.blocked);
  });
});

describe('Kicker with Atomics (the workers backend)', () => {
  it('kicks, waits and acknowledges the same way', () => {
    const { kicker, kickerOf, coreI32Index, setModes, machine, ackIndex } = setUp(policies.asi, true);
    const word = setModes(Mode.isolated, Mode.guest, Mode.guest, Mode.isolated);
    kicker.kick();
    kicker.beginWait();
    expect(kicker.waitForSiblings()).toBe(KickWait.blocked);
    expect([kicker.waitIndex, kicker.waitValue]).toEqual([coreI32Index, word]);
    kickerOf(1).acknowledge(1);
    expect(Atomics.load(machine.i32, ackIndex(1))).toBe(1);
  });
});
