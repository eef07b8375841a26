import { assert } from '../../assert.js';
import type { ConfidentialVm } from '../../coco/confidential-vm.js';
import type { RunConfig } from '../../config/run-config.js';
import type { GuestDraws } from '../../cpu/access-path.js';
import { type Environment, type Hyperthread, Step } from '../../cpu/hyperthread.js';
import { ConfigError } from '../../errors.js';
import { EventLog } from '../../invariants/event-log.js';
import { Monitor } from '../../invariants/monitor.js';
import { Mailboxes, Vector } from '../../kick/ipi.js';
import type { Machine } from '../../machine.js';
import type { Policy } from '../../policy/policy.js';
import { collectResult, type RunResult } from '../result.js';
import { runningThreads, simHyperthreads } from './sim-threads.js';

/**
 * The sim with its scheduler taken out (issue 23): a caller says which hyperthread steps next, and
 * when an interrupt arrives at one, and every draw comes from a source it gives. Two callers, one
 * semantics: `runSim` with `SimOptions.schedule` (a counterexample replayed from its choice list) and
 * the explorer (src/explore/), which branches at every choice. Same hyperthread state machine as the
 * sim; what differs from the sim's own scheduler (run-sim.ts `schedule`) is written down here:
 *
 * - Any runnable thread may step, not only the one with the lowest virtual time: a superset of the
 *   sim's schedules. Runnable: not waiting, or waiting with a deadline (a guest stretch's next event, a
 *   halt's timer: that deadline may come at any point). A thread waiting with none (a barrier, a kick
 *   wait) is woken, as in the sim, by the notify that changes its word, at the notifier's clock.
 * - A kick is visible to its target at once (`ipiVisible`): the IPI's latency is the choice of when the
 *   target steps next, which the schedule makes.
 * - No jitter, no virtual-time cap, no INV-9 wait-bound watchdog (its bound is virtual time, which the
 *   relaxed order does not keep); a deadlock (no thread runnable before the exits are done) is INV-9.
 * - No core timelines: INV-1 is checked at the instants the monitor sees (guest steps and entries),
 *   not as an overlap in virtual time.
 */

/** One entry of a schedule as data: `thread` (a hyperthread id) steps, or `interrupt` arrives at it. */
export interface ScheduleStep {
  thread: number;
  interrupt?: InterruptName;
}

export const interruptNames = ['nmi', 'irq', 'mc'] as const;
export type InterruptName = (typeof interruptNames)[number];
export const interruptVectorOf: Readonly<Record<InterruptName, number>> = {
  nmi: Vector.nmi,
  irq: Vector.irq,
  mc: Vector.machineCheck,
};

/** Where a stepped run's draws come from. `drawChoice` (optional): an exit's reason or variant draw. */
export interface StepDraws {
  random(): number;
  drawChoice?(cumulative: ArrayLike<number>): number;
}

/** The draws of a replayed schedule: the recorded ones (u32 values, as `SimOptions.choices`), then a fallback. */
export class RecordedDraws implements StepDraws {
  private index = 0;
  constructor(
    private readonly recorded: readonly number[],
    private readonly fallback: () => number,
  ) {}

  random(): number {
    if (this.index < this.recorded.length) return (this.recorded[this.index++] >>> 0) / 4294967296;
    return this.fallback();
  }
}

class SteppedEnvironment implements Environment {
  threads: Hyperthread[] = [];
  readonly guestDraws: GuestDraws;

  constructor(
    private readonly draws: StepDraws,
    private readonly i32: Int32Array,
    private readonly blocked: Uint8Array,
    private readonly waitIndex: Int32Array,
    private readonly waitValue: Int32Array,
  ) {
    // Every guest access draws through `random`, one at a time (no batch): the source sees each.
    this.guestDraws = { random: () => this.draws.random(), area: null, cursor: 0 };
  }

  random(): number {
    return this.draws.random();
  }

  drawChoice(cumulative: ArrayLike<number>): number {
    const draws = this.draws;
    return draws.drawChoice === undefined ? draws.random() : draws.drawChoice(cumulative);
  }

  ipiVisible(): boolean {
    return true;
  }

  notify(i32Index: number, nowCycles: number): void {
    const threads = this.threads;
    for (let t = 0; t < threads.length; t++) {
      if (this.blocked[t] && this.waitIndex[t] === i32Index && this.i32[i32Index] !== this.waitValue[t]) {
        this.blocked[t] = 0;
        threads[t].advanceTo(nowCycles);
      }
    }
  }
}

export class SteppedSim {
  /** The hyperthreads that run a vCPU, in id order (a schedule names them by id). */
  readonly threads: Hyperthread[];
  readonly monitor: Monitor;
  readonly log: EventLog;
  readonly confidential: (ConfidentialVm | null)[];
  /** Per thread (index in `threads`): 1 while it waits, on which word, for which value, until when. */
  readonly blocked: Uint8Array;
  readonly waitIndex: Int32Array;
  readonly waitValue: Int32Array;
  readonly deadline: Float64Array;
  /** Steps taken (the start steps included). */
  steps = 0;
  private readonly env: SteppedEnvironment;
  private readonly mailboxes: Mailboxes;

  constructor(
    readonly machine: Machine,
    readonly config: RunConfig,
    readonly policy: Policy,
    draws: StepDraws,
    log: EventLog = new EventLog(64, false),
  ) {
    this.log = log;
    const monitor = new Monitor(machine, log, config.workload.catalogue);
    this.monitor = monitor;
    monitor.checkIsolatedContents();
    const threadsRunning = runningThreads(machine, policy);
    const { order } = threadsRunning;
    this.blocked = new Uint8Array(order.length);
    this.waitIndex = new Int32Array(order.length);
    this.waitValue = new Int32Array(order.length);
    this.deadline = new Float64Array(order.length);
    this.env = new SteppedEnvironment(draws, machine.i32, this.blocked, this.waitIndex, this.waitValue);
    this.mailboxes = new Mailboxes(machine.i32, machine.f64, machine.layout, machine.concurrent);
    const built = simHyperthreads(machine, config, policy, monitor, this.env, threadsRunning);
    this.confidential = built.confidential;
    this.threads = built.threads;
    this.env.threads = this.threads;
  }

  /** Every thread's first step (KVM_RUN into the host), in id order, as the sim makes them. */
  start(): void {
    for (const thread of this.threads) {
      assert(thread.step() === Step.ran, 'a first step (into the host) does not wait');
      this.steps++;
    }
  }

  /** Whether thread `t` (index in `threads`) may step: not waiting, or waiting with a deadline. */
  runnable(t: number): boolean {
    return this.blocked[t] === 0 || this.deadline[t] !== Number.POSITIVE_INFINITY;
  }

  anyRunnable(): boolean {
    for (let t = 0; t < this.threads.length; t++) if (this.runnable(t)) return true;
    return false;
  }

  /** Thread `t` steps (its deadline comes first if it waits for one). */
  step(t: number): void {
    assert(this.runnable(t), `thread index ${t} is runnable`);
    const thread = this.threads[t];
    if (this.blocked[t]) {
      this.blocked[t] = 0;
      thread.advanceTo(this.deadline[t]);
    }
    const result = thread.step();
    this.steps++;
    if (result === Step.wait && this.machine.i32[thread.waitIndex] === thread.waitValue) {
      this.blocked[t] = 1;
      this.waitIndex[t] = thread.waitIndex;
      this.waitValue[t] = thread.waitValue;
      this.deadline[t] = Math.max(thread.waitDeadlineCycles, thread.clockCycles);
    }
  }

  /** An interrupt arrives at thread `t`'s mailbox now (at its clock), as an interrupt source raises it. */
  interrupt(t: number, vector: number): void {
    const thread = this.threads[t];
    this.mailboxes.send(thread.thread, vector, thread.clockCycles, this.env);
  }

  /** The index in `threads` of hyperthread `id`, or -1. */
  indexOf(id: number): number {
    return this.threads.findIndex((thread) => thread.thread === id);
  }

  /** INV-9 for every thread: each one waits, and none has a deadline (run-sim.ts's record). */
  reportDeadlock(): void {
    for (let t = 0; t < this.threads.length; t++) {
      const thread = this.threads[t];
      this.monitor.recordLiveness(
        thread,
        `deadlock: every thread waits (ht${thread.thread} on word ${this.waitIndex[t]})`,
        thread.clockCycles,
      );
    }
  }

  /** Done: the exits the run was for, a violation, or nothing left to step (`deadlockIfStuck`). */
  get exitsDone(): number {
    return this.monitor.workloadExits;
  }

  /** Ends the run: counters published, the result collected (as run-sim.ts's `runOn` does). */
  result(deadlocked: boolean): RunResult {
    for (const thread of this.threads) thread.publishCounters();
    let endCycles = 0;
    for (const thread of this.threads) endCycles = Math.max(endCycles, thread.clockCycles);
    for (let t = 0; t < this.threads.length; t++)
      if (this.blocked[t]) this.threads[t].closeStretch(endCycles);
    this.monitor.finishTime(endCycles);
    return collectResult({
      backend: 'sim',
      machine: this.machine,
      policy: this.policy,
      config: this.config,
      threads: this.threads,
      monitor: this.monitor,
      log: this.log,
      steps: this.steps,
      deadlocked,
      wallSeconds: 0,
      confidential: this.confidential,
    });
  }
}

/**
 * A run that follows `schedule` (SimOptions.schedule): the start steps, then each entry in order, until
 * the exits are done, a violation is seen (`stopOnViolation`) or the schedule ends; then, if no thread
 * is runnable before the exits are done, a deadlock (INV-9). Draws: `choices` (u32), then `fallback`.
 */
export function runScheduled(
  machine: Machine,
  config: RunConfig,
  policy: Policy,
  schedule: readonly ScheduleStep[],
  choices: readonly number[],
  fallback: () => number,
  log: EventLog,
): RunResult {
  const sim = new SteppedSim(machine, config, policy, new RecordedDraws(choices, fallback), log);
  sim.start();
  const { exits, stopOnViolation } = config.run;
  for (let i = 0; i < schedule.length; i++) {
    if (sim.exitsDone >= exits || (stopOnViolation && sim.monitor.total > 0)) break;
    const entry = schedule[i];
    const t = sim.indexOf(entry.thread);
    if (t < 0) throw new ConfigError(`schedule[${i}].thread`, 'a hyperthread that runs a vCPU', entry.thread);
    if (entry.interrupt !== undefined) {
      sim.interrupt(t, interruptVectorOf[entry.interrupt]);
      continue;
    }
    if (!sim.runnable(t))
      throw new ConfigError(`schedule[${i}]`, `a runnable thread (ht${entry.thread} waits)`, entry.thread);
    sim.step(t);
  }
  const stuck = sim.exitsDone < exits && sim.monitor.total === 0 && !sim.anyRunnable();
  if (stuck) sim.reportDeadlock();
  return sim.result(stuck);
}
