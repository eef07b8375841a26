import { describe, expect, it } from 'vitest';
import type { RunResult } from '../src/backend/result.js';
import { runSim } from '../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../src/config/run-config.js';
import { zeroCounts } from '../src/invariants/violation.js';
import { policyByName } from '../src/policy/index.js';
import { formatViolation, invariantMatchers } from '../src/vitest.js';

/** Seeded runs: the same seed gives the same result, so these are stable. */
const seed = 31;
function run(policy: string): RunResult {
  const config = parseRunConfig({
    machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
    workload: { mix: 'sysbench-cpu' },
    run: { exits: 300, seed },
  });
  return runSim(config, policyByName(policy));
}

const safe = run('asi');
const unsafe = run('none');
const ipiOnly = run('asi-ipi-only');

/** The message a failed assertion throws. */
function failure(assertion: () => void): string {
  try {
    assertion();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the assertion passed; expected it to fail');
}

describe(`vitest matchers (asi-emu/vitest), seed ${seed}`, () => {
  it('importing the entry registers the matchers on expect', () => {
    expect(Object.keys(invariantMatchers)).toEqual([
      'toHoldInvariants',
      'toBreakInvariant',
      'toHoldInvariantsInEveryInterleaving',
    ]);
    expect(typeof expect(safe).toHoldInvariants).toBe('function');
  });

  it('toHoldInvariants passes on a safe policy and fails on none, naming what broke', () => {
    expect(safe).toHoldInvariants();
    expect(unsafe.violations['INV-1']).toBeGreaterThan(0);
    expect(() => expect(unsafe).toHoldInvariants()).toThrow(/INV-1/);
    expect(() => expect(unsafe).toHoldInvariants()).toThrow(
      /policy none, mix sysbench-cpu, sim backend, seed 31/,
    );
  });

  it('the failure message shows the first records: id, threads and modes, detail, line, time, step, events', () => {
    const message = failure(() => expect(unsafe).toHoldInvariants());
    const first = unsafe.violationRecords[0];
    expect(message).toContain(`${first.id} (`);
    expect(message).toContain(
      `threads: ${first.threads.map((thread, i) => `ht${thread} in ${first.modes[i]}`).join(', ')}`,
    );
    expect(message).toContain(`detail:  ${first.detail}`);
    expect(message).toContain(`at:      time ${Math.round(first.timeCycles)}, step ${first.step}`);
    expect(message).toContain('events before it (oldest first):');
    expect(message).toContain((first.recentEvents ?? []).at(-1) ?? 'no events');
    // INV-2 records carry the foreign line.
    const inv2 = unsafe.violationRecords.find((record) => record.id === 'INV-2' && record.line);
    expect(inv2).toBeDefined();
    expect(failure(() => expect(unsafe).toHoldInvariants(['INV-2']))).toMatch(
      /line: {4}pfn \d+, line \d+ of the page, domain \S+/,
    );
    const total = Object.values(unsafe.violations).reduce((sum, count) => sum + count, 0);
    expect(message).toContain(`... and ${total - 2} more`);
  });

  it('toHoldInvariants with ids checks only those', () => {
    // asi-ipi-only sends the IPI before switching (INV-4 holds) but does not wait (INV-1 breaks).
    expect(ipiOnly.violations['INV-1']).toBeGreaterThan(0);
    expect(ipiOnly).toHoldInvariants(['INV-3', 'INV-4']);
    expect(() => expect(ipiOnly).toHoldInvariants(['INV-1', 'INV-4'])).toThrow(
      /to hold INV-1, INV-4, but it broke INV-1 x \d+/,
    );
  });

  it('toBreakInvariant passes when the id was broken and fails readably when it was not', () => {
    expect(unsafe).toBreakInvariant('INV-2');
    expect(() => expect(safe).toBreakInvariant('INV-2')).toThrow(
      /expected the run \(policy asi, .*\) to break INV-2 \(no foreign secrets.*\), but it never did; it broke no violations/,
    );
    expect(() => expect(ipiOnly).toBreakInvariant('INV-4')).toThrow(/but it never did; it broke INV-1 x \d+/);
  });

  it('.not works both ways, with the records in the message', () => {
    expect(safe).not.toBreakInvariant('INV-1');
    expect(unsafe).not.toHoldInvariants();
    expect(() => expect(unsafe).not.toBreakInvariant('INV-1')).toThrow(
      /not to break INV-1, but it did \d+ times[\s\S]*threads: ht/,
    );
    expect(() => expect(safe).not.toHoldInvariants()).toThrow(
      /to break one of every invariant, but it held them all/,
    );
  });

  it('works on a RunResult from the workers backend (same shape, wall-clock times)', () => {
    const workers: RunResult = {
      ...safe,
      backend: 'workers',
      violations: { ...zeroCounts(), 'INV-9': 1 },
      deadlocked: true,
      violationRecords: [
        {
          id: 'INV-9',
          threads: [1],
          modes: ['held'],
          detail: 'waited 20000000 ns (bound 10000000): lost wake-up or starvation',
          timeCycles: 123_456_789,
          step: 4242,
        },
      ],
    };
    expect(workers).toBreakInvariant('INV-9');
    const message = failure(() => expect(workers).toHoldInvariants());
    expect(message).toMatch(/workers backend/);
    expect(message).toMatch(/INV-9 x 1 \(deadlocked\)/);
    expect(message).toContain('threads: ht1 in held');
    expect(message).toContain('at:      time 123456789, step 4242');
    expect(message).not.toContain('events before it');
  });

  it('rejects what is not a run, and unknown invariant ids, with a message saying what is accepted', () => {
    expect(() => expect({ policy: 'asi' }).toHoldInvariants()).toThrow(
      /expected a RunResult .* got an object with keys policy/,
    );
    expect(() => expect(undefined).toBreakInvariant('INV-1')).toThrow(/expected a RunResult/);
    expect(() => expect(safe).toBreakInvariant('INV-99' as 'INV-1')).toThrow(
      /unknown invariant id "INV-99": one of INV-1, INV-2/,
    );
    expect(() => expect(safe).toHoldInvariants(['INV-0' as 'INV-1'])).toThrow(/unknown invariant id INV-0/);
    // The types catch it first (tsc checks this; the function is never called).
    const typed = () => {
      // @ts-expect-error: 'INV-99' is not an InvariantId
      expect(safe).toBreakInvariant('INV-99');
    };
    expect(typeof typed).toBe('function');
  });

  it('formatViolation prints address records too', () => {
    const text = formatViolation({
      id: 'INV-7',
      threads: [0],
      modes: ['isolated'],
      detail: 'access in isolation served silently',
      address: '0xffff888000001000',
      timeCycles: 10.6,
      step: 3,
      recentEvents: ['t=5 ht0 exit MSR_WRITE:fastpath'],
    });
    expect(text).toBe(
      [
        'INV-7 (faults reported: an unmapped access in isolation is reported and handled by a switch)',
        '  threads: ht0 in isolated',
        '  detail:  access in isolation served silently',
        '  address: 0xffff888000001000',
        '  at:      time 11, step 3',
        '  events before it (oldest first):',
        '    t=5 ht0 exit MSR_WRITE:fastpath',
      ].join('\n'),
    );
  });
});
