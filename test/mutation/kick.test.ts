import { describe, expect, it } from 'vitest';
import { Mailboxes, Vector } from '../../src/kick/ipi.js';
import type { Notifier } from '../../src/kick/wait.js';
import { createMachine } from '../../src/machine.js';

/**
 * The IPI mailboxes on their own (issue 24, mutation testing): the sim and workers suites reach them only
 * through whole runs, which left some of their edges unchecked.
 */

/** A notifier that records every notify, as the backends' wake-ups would see them. */
function recordingNotifier(): Notifier & { calls: Array<[i32Index: number, nowCycles: number]> } {
  const calls: Array<[number, number]> = [];
  return { calls, notify: (i32Index, nowCycles) => calls.push([i32Index, nowCycles]) };
}

for (const concurrent of [true, false]) {
  describe(`Mailboxes (${concurrent ? 'atomic, as the workers backend' : 'plain, as the sim'})`, () => {
    const machine = createMachine({ cores: 2, smt: 2, memoryMiB: 64 }, { concurrent });
    const threads = 4;

    it('gives every thread its own word, a whole record apart', () => {
      const mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout, concurrent);
      const indices = Array.from({ length: threads }, (_, thread) => mailboxes.index(thread));
      expect(new Set(indices).size).toBe(threads);
      for (let thread = 1; thread < threads; thread++) {
        expect(indices[thread] - indices[thread - 1]).toBe(machine.layout.threadStrideI32s);
      }
    });

    it('send sets the vector in the target mailbox only, then notifies that word with the sender clock', () => {
      const mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout, concurrent);
      const notifier = recordingNotifier();
      mailboxes.send(2, Vector.wake, 1234, notifier);
      mailboxes.send(2, Vector.irq, 1300, notifier);
      expect(mailboxes.pending(2)).toBe(Vector.wake | Vector.irq);
      expect(mailboxes.pendingAt(mailboxes.index(2))).toBe(Vector.wake | Vector.irq);
      for (const other of [0, 1, 3]) expect(mailboxes.pending(other)).toBe(0);
      expect(notifier.calls).toEqual([
        [mailboxes.index(2), 1234],
        [mailboxes.index(2), 1300],
      ]);
      mailboxes.take(2, Vector.wake | Vector.irq);
    });

    it('records when a kick was sent, and only a kick', () => {
      const mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout, concurrent);
      const notifier = recordingNotifier();
      const before = mailboxes.kickSentAt(1);
      mailboxes.send(1, Vector.wake, before + 500, notifier);
      mailboxes.send(1, Vector.nmi | Vector.machineCheck, before + 600, notifier);
      expect(mailboxes.kickSentAt(1)).toBe(before);
      mailboxes.send(1, Vector.kick, before + 700, notifier);
      expect(mailboxes.kickSentAt(1)).toBe(before + 700);
      expect(mailboxes.kickSentAt(0)).not.toBe(before + 700);
      mailboxes.take(1, -1);
    });

    it('take clears the vectors asked for and returns those that were set, leaving the rest', () => {
      const mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout, concurrent);
      const notifier = recordingNotifier();
      mailboxes.send(3, Vector.kick | Vector.irq | Vector.nmi, 10, notifier);
      expect(mailboxes.take(3, Vector.kick | Vector.wake)).toBe(Vector.kick);
      expect(mailboxes.pending(3)).toBe(Vector.irq | Vector.nmi);
      expect(mailboxes.take(3, Vector.wake)).toBe(0);
      expect(mailboxes.pending(3)).toBe(Vector.irq | Vector.nmi);
      expect(mailboxes.take(3, Vector.irq | Vector.nmi)).toBe(Vector.irq | Vector.nmi);
      expect(mailboxes.pending(3)).toBe(0);
    });
  });
}

describe('Vector', () => {
  it('is five distinct single bits', () => {
    const bits = Object.values(Vector);
    expect(bits).toHaveLength(5);
    for (const bit of bits) expect(bit & (bit - 1)).toBe(0);
    expect(bits.reduce((all, bit) => all | bit, 0)).toBe(0b11111);
  });
});
