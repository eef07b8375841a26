import { describe, expect, it } from 'vitest';
import { Prng } from '../../src/backend/sim/prng.js';
import { parseRunConfig } from '../../src/config/run-config.js';
import { type Environment, Hyperthread, Step } from '../../src/cpu/hyperthread.js';
import { Mode, modeNames } from '../../src/cpu/modes.js';
import { EventLog } from '../../src/invariants/event-log.js';
import { Monitor } from '../../src/invariants/monitor.js';
import { createMachine } from '../../src/machine.js';
import { policies } from '../../src/policy/index.js';
import type { Policy } from '../../src/policy/policy.js';
import { othersThan } from '../helpers/driven-monitor.js';

/**
 * The start-up race the workers backend showed (coschedule, stress.test.ts, seed 7: "ht1 entered the
 * guest while ht0 was in full", t = 775, half an exit round trip after its first entry): each worker
 * steps its hyperthread on its own from the moment the run state flips to run, so ht1 may make its
 * first step (into the host) and reach the entry barrier before ht0 made its first. The barrier then
 * read ht0 as `offline`, which no policy's `mayEnter` refuses (nosmt's sibling is offline for good), and
 * ht1 entered; ht0's first step then set `full` (a policy without ASI starts in the full kernel) with no
 * barrier and no kick, beside ht1's guest code. The sim never showed it: it steps every thread's start
 * before any other step (run-sim.ts `schedule`).
 *
 * Two hyperthreads driven by hand in that order, one step at a time, on one thread: deterministic, no
 * timing. The monitor watches every step.
 */
const configFor = (vcpus: number) =>
  parseRunConfig({
    machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus, guestMemoryMiB: 1 }] },
    // stress.test.ts's storm workload; the exits are far off (no exit within the steps below).
    workload: { mix: 'all-slow', exitIntervalCycles: 100_000, nmiIntervalCycles: 0 },
    run: { exits: 100, seed: 7 },
  });
const config = configFor(2);

function setUp(policy: Policy, running: number[]) {
  const machine = createMachine(config.machine, { concurrent: false });
  const monitor = new Monitor(machine, new EventLog());
  const threads = running.map((thread) => {
    const prng = new Prng(thread + 1);
    const env: Environment = {
      random: () => prng.random(),
      guestDraws: prng,
      notify: () => {},
      ipiVisible: () => true,
    };
    return new Hyperthread(
      machine,
      thread,
      policy,
      config.costs,
      config.workload,
      monitor,
      env,
      new Set(running),
      null,
      // As the workers backend steps the guest: in quanta, each checked by the monitor.
      config.workload.guestQuantumCycles,
    );
  });
  const mode = (thread: number) => modeNames[threads[running.indexOf(thread)].mode];
  return { machine, monitor, threads, mode };
}

describe('start-up: no thread enters the guest before its running siblings have started', () => {
  it('coschedule: ht1 starts and reaches the barrier before ht0 starts; held until ht0 is up, no INV-1', () => {
    const { monitor, threads, mode } = setUp(policies.coschedule, [0, 1]);
    const [ht0, ht1] = threads;
    const seen: string[] = [];
    ht1.step(); // ht1's first step: into the host (full: no ASI)
    seen.push(`ht1 ${mode(1)}`);
    ht1.step(); // ht1 at the entry barrier, ht0 not started yet
    seen.push(`ht1 ${mode(1)}`);
    ht0.step(); // ht0's first step: into full
    seen.push(`ht0 ${mode(0)}`);
    const afterStart = ht1.step(); // the fix: still held (ht0 in full); the bug: a guest quantum beside full
    seen.push(`ht1 ${mode(1)}`);
    // Both go on in turn: ht0 enters (ht1 held), then ht1 (ht0 in the guest), and both run guest quanta.
    for (let round = 0; round < 20; round++) {
      ht0.step();
      ht1.step();
    }
    expect(monitor.counts['INV-1'], JSON.stringify(monitor.records.slice(0, 2))).toBe(0);
    expect(othersThan(monitor.counts, [])).toEqual({});
    expect(seen).toEqual(['ht1 full', 'ht1 held', 'ht0 full', 'ht1 held']);
    expect(afterStart).toBe(Step.wait);
    expect([mode(0), mode(1)]).toEqual(['guest', 'guest']);
  });

  // `none` too: the rule is the state machine's, not a policy's (none then breaks INV-1 on its own).
  it.each(['coschedule', 'asi', 'asi-stun', 'none'])(
    '%s: the barrier waits for every running sibling to leave offline, whichever starts first',
    (name) => {
      for (const first of [0, 1]) {
        const { monitor, threads, mode } = setUp(policies[name], [0, 1]);
        const early = threads[first];
        const late = threads[1 - first];
        early.step();
        for (let step = 0; step < 5; step++) early.step();
        expect(mode(first), `${name}: ht${first} entered before ht${1 - first} started`).not.toBe('guest');
        expect(mode(1 - first)).toBe('offline');
        late.step();
        expect(mode(1 - first)).not.toBe('offline');
        for (let round = 0; round < 20; round++) {
          early.step();
          late.step();
        }
        expect([mode(0), mode(1)]).toEqual(['guest', 'guest']);
        if (name !== 'none') expect(othersThan(monitor.counts, [])).toEqual({});
      }
    },
  );

  it('a sibling that runs no vCPU (offline for good) does not hold the entry', () => {
    const oneVcpu = configFor(1);
    const built = createMachine(oneVcpu.machine, { concurrent: false });
    const monitor = new Monitor(built, new EventLog());
    const prng = new Prng(1);
    const env: Environment = {
      random: () => prng.random(),
      guestDraws: prng,
      notify: () => {},
      ipiVisible: () => true,
    };
    const ht0 = new Hyperthread(
      built,
      0,
      policies.coschedule,
      oneVcpu.costs,
      oneVcpu.workload,
      monitor,
      env,
      new Set([0]),
      null,
      oneVcpu.workload.guestQuantumCycles,
    );
    ht0.step(); // start
    ht0.step(); // entry: the sibling is offline and runs nothing
    expect(ht0.mode).toBe(Mode.guest);
    expect(othersThan(monitor.counts, [])).toEqual({});
  });
});
