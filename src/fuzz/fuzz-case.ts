import type { RunResult } from '../backend/result.js';
import { createSimMachine, runSim } from '../backend/sim/run-sim.js';
import type { ScheduleStep } from '../backend/sim/stepped-sim.js';
import { parseRunConfig, type RunConfig } from '../config/run-config.js';
import type { MixClass } from '../cpu/mixes.js';
import type { EventLog } from '../invariants/event-log.js';
import { type InvariantId, invariantIds, type Violation } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import type { Policy } from '../policy/policy.js';
import { PolicyHookError } from '../policy/policy-module.js';
import { type FuzzLinuxAsi, policyForCase } from './linux-asi-draws.js';

/**
 * A fuzz case: one whole scenario as plain JSON data, the thing a campaign draws, a shrink makes
 * smaller and a replay file stores. It is a run config (machine, workload, costs, run; every field
 * concrete, no defaults left to fill) plus the scheduler's first random draws as data (`choices`), so
 * the interleaving is part of the case and shrinks with it.
 */
export interface FuzzCase {
  machine: {
    cores: number;
    smt: number;
    memoryMiB: number;
    pageTablePoolPages: number;
    pcid: boolean;
    fillBufferEntries: number;
    /** `confidential` VMs (SEV-SNP style memory) are drawn since replay format 1 too; absent = false. */
    vms: { vcpus: number; guestMemoryMiB: number; pin: number[]; confidential?: boolean }[];
  };
  workload: {
    /**
     * `class: 'user'`: every vCPU thread runs a host process and the weights name kernel entries (a
     * user-class case, fuzz/linux-asi-draws.ts `withUserClass`; replay schema 3); absent: kvm.
     */
    mix: {
      name: string;
      class?: MixClass;
      description: string;
      source: string;
      weights: Record<string, number>;
    };
    exitIntervalCycles: number;
    guestQuantumCycles: number;
    guestAccessesPerQuantum: number;
    idleCycles: number;
    nmiIntervalCycles: number;
    machineCheckIntervalCycles: number;
    irqIntervalCycles: number;
    injections: { thread: number; atCycles: number; vector: 'nmi' | 'mc' | 'irq' }[];
    /** Generated handler programs (workload.ts `handlers`), named by the mix; absent = none. */
    handlers?: FuzzHandler[];
    /** Confidential-VM behaviour (workload.ts `confidential`); absent = the defaults. */
    confidential?: {
      hostileVmm: boolean;
      hostileRemapShare: number;
      guestRevalidates: boolean;
      keepsVmmMapping: boolean;
      conversionPagesMax: number;
    };
  };
  /** Overrides of the cost model (the jitter); the rest are defaults. */
  costs: Record<string, number>;
  run: {
    exits: number;
    seed: number;
    jitterCycles: number;
    waitBoundCycles: number;
    maxCycles: number;
    stopOnViolation: boolean;
  };
  /** Scheduler draws as unsigned 32-bit integers, taken before the seeded PRNG (run-sim.ts). */
  choices: number[];
  /**
   * Today's Linux ASI settings drawn for a linux-asi policy (fuzz/linux-asi-draws.ts; replay schema
   * version 3): sibling protocol, exitOn, class taint policies by name. Absent: the policy's own.
   */
  linuxAsi?: FuzzLinuxAsi;
  /**
   * The scheduler itself as data (`SimOptions.schedule`; an explorer's counterexample, src/explore/):
   * absent in the fuzzer's cases. With it, `choices` holds every draw of the run.
   */
  schedule?: ScheduleStep[];
}

/** A generated handler program, as workload.ts `handlers` takes it. */
export interface FuzzHandler {
  reason: string;
  name: string;
  weight: number;
  ops: (
    | { op: 'access'; region: string; offsetBytes: number; bytes: number; write: boolean }
    | { op: 'compute'; cycles: number }
  )[];
  action: 'resume' | 'vmm' | 'halt' | 'ipi';
  vmmCycles: number;
}

/** What "smaller" means for a shrink (the issue: fewest exits, hyperthreads and injected events). */
export interface CaseSize {
  exits: number;
  hyperthreads: number;
  vcpus: number;
  /** Exactly timed injections plus interrupt sources left on (NMI, #MC, IRQ rates). */
  injectedEvents: number;
  choices: number;
}

export function caseSize(fuzzCase: FuzzCase): CaseSize {
  const { workload } = fuzzCase;
  const sources = [
    workload.nmiIntervalCycles,
    workload.machineCheckIntervalCycles,
    workload.irqIntervalCycles,
  ];
  return {
    exits: fuzzCase.run.exits,
    hyperthreads: fuzzCase.machine.cores * fuzzCase.machine.smt,
    vcpus: fuzzCase.machine.vms.reduce((sum, vm) => sum + vm.vcpus, 0),
    injectedEvents: workload.injections.length + sources.filter((interval) => interval > 0).length,
    choices: fuzzCase.choices.length,
  };
}

/** The run config of a case (validated: a hand-edited replay file gets a ConfigError naming the field). */
export function runConfigOf(fuzzCase: FuzzCase): RunConfig {
  return parseRunConfig({
    machine: fuzzCase.machine,
    workload: fuzzCase.workload,
    costs: fuzzCase.costs,
    run: fuzzCase.run,
  });
}

/**
 * What a failing case did: an invariant broken, `error` (the model or a policy hook threw, or a hook
 * returned a value of the wrong type), or `hang` (a case made no progress within the per-case wall
 * time: a hook or the model looped; the pool's watchdog, fuzz/executor.ts, stopped it).
 */
export const failureKinds = [...invariantIds, 'error', 'hang'] as const;
export type FailureKind = (typeof failureKinds)[number];

/**
 * What a case did. `failure` is the key a shrink holds fixed: the first invariant broken, or
 * `error` when the model itself threw (an assert in the model is a finding too).
 */
export interface CaseVerdict {
  failure: FailureKind | null;
  /** The first violation record (with the events before it), if any. */
  violation: Violation | null;
  /** Every invariant the run broke (with stopOnViolation: those broken at the first violation's step). */
  broken: InvariantId[];
  /** The model's or the hook's error message, when `failure` is 'error' or 'hang'. */
  error: string | null;
  /** The policy hook that threw, returned a bad value or hung (null: the model, or none). */
  hook: string | null;
  /** The hook's own error stack, when a hook threw (where in the user's module). */
  errorStack: string | null;
  exits: number;
  steps: number;
  traceHash: string;
}

/**
 * Machines built per config, reused after a reset (building one costs about as much as running a
 * case). Bounded: least recently used first out.
 *
 * A reset also clears the branch predictors (a section of the buffer: cpu/linux-asi-cpu.ts), so no
 * case sees another's training: a cached machine's verdicts equal a fresh one's
 * (test/fuzz/user-class-draws.test.ts).
 */
export class MachineCache {
  private readonly machines = new Map<string, Machine>();

  constructor(private readonly capacity = 8) {}

  private static keyOf(config: RunConfig): string {
    return JSON.stringify(config.machine);
  }

  get(config: RunConfig): Machine {
    const key = MachineCache.keyOf(config);
    let machine = this.machines.get(key);
    if (machine) {
      this.machines.delete(key);
    } else {
      // The oldest out first: its sim arena region can then serve the new machine.
      if (this.machines.size >= this.capacity) {
        const oldest = this.machines.keys().next().value as string;
        this.machines.get(oldest)?.dispose();
        this.machines.delete(oldest);
      }
      machine = createSimMachine(config.machine);
    }
    this.machines.set(key, machine);
    return machine;
  }

  /** Drops the machine of `config` (a run threw halfway: its state is not worth a reset). */
  forget(config: RunConfig): void {
    const key = MachineCache.keyOf(config);
    this.machines.get(key)?.dispose();
    this.machines.delete(key);
  }
}

export interface RunCaseOptions {
  machines?: MachineCache;
  /** A fresh log to record into (replay keeps every event this way, for traces). */
  log?: EventLog;
}

/** Runs a case on the sim backend. Never throws for a model error: that is a verdict. */
export function runFuzzCase(
  fuzzCase: FuzzCase,
  policy: Policy,
  options: RunCaseOptions = {},
): { verdict: CaseVerdict; result: RunResult | null } {
  const config = runConfigOf(fuzzCase);
  // Bad drawn settings (a hand-edited file) are bad input, like a bad config: thrown, not a verdict.
  const casePolicy = policyForCase(policy, fuzzCase);
  let result: RunResult;
  try {
    const machine = options.machines?.get(config);
    result = runSim(config, casePolicy, {
      choices: fuzzCase.choices,
      schedule: fuzzCase.schedule,
      log: options.log,
      machine,
    });
  } catch (error) {
    options.machines?.forget(config);
    const message = error instanceof Error ? error.message : String(error);
    const hookError = error instanceof PolicyHookError ? error : null;
    const cause = hookError?.cause;
    return {
      verdict: {
        failure: 'error',
        violation: null,
        broken: [],
        error: message,
        hook: hookError?.hook ?? null,
        errorStack: cause instanceof Error ? (cause.stack ?? null) : null,
        exits: 0,
        steps: 0,
        traceHash: '',
      },
      result: null,
    };
  }
  return { verdict: verdictOf(result), result };
}

export function verdictOf(result: RunResult): CaseVerdict {
  // Records are kept in the order the monitor saw them: the first is the first violation.
  const violation = result.violationRecords[0] ?? null;
  const broken = invariantIds.filter((id) => result.violations[id] > 0);
  return {
    failure: violation?.id ?? broken[0] ?? null,
    violation,
    broken,
    error: null,
    hook: null,
    errorStack: null,
    exits: result.exits,
    steps: result.steps,
    traceHash: result.traceHash,
  };
}

/** The verdict of a case the pool's watchdog stopped (fuzz/executor.ts): no progress within the limit. */
export function hangVerdict(hook: string | null, limitMs: number): CaseVerdict {
  return {
    failure: 'hang',
    violation: null,
    broken: [],
    error: `hang in ${hook === null ? 'the model (no policy hook was running)' : `hook ${hook}`}: no progress for ${limitMs / 1000} s`,
    hook,
    errorStack: null,
    exits: 0,
    steps: 0,
    traceHash: '',
  };
}

/** Whether a verdict shows the same failure as `target` (an invariant id, or a model error). */
export function sameFailure(verdict: CaseVerdict, target: FailureKind): boolean {
  return target === 'error' || target === 'hang'
    ? verdict.failure === target
    : verdict.broken.includes(target);
}
