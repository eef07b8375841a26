import { ConfigError } from '../errors.js';
import type { FuzzCase } from '../fuzz/fuzz-case.js';
import { fuzzLimits } from '../fuzz/limits.js';
import { parseFuzzCase } from '../fuzz/replay-format.js';

/**
 * The machine and workload an exploration runs (issue 23): a fuzz case's data (fuzz/fuzz-case.ts), so
 * that its counterexample is a replay file `asi-emu replay` reruns, with nothing left out. The default
 * is the issue's: 1 core x 2 hyperthreads, one VM whose two vCPUs are pinned to them. Seed-free: every
 * draw is fixed or a branch (explorer.ts `ExploreDraws`), so `run.seed` is never read.
 */

/**
 * The default mix: one exit of each way a handler ends, so that every path of the state machine is a
 * branch at every exit: one handled in isolation (MSR_WRITE's fast path), one that needs the full
 * kernel (an EPT violation that allocates: a fault in kvm:N), a halt (an idle period and its timer or
 * IPI wake-up) and an exit to the VMM (userspace I/O). Equal weights: the explorer takes one
 * representative per entry, so weights only matter to the sim.
 */
export const exploreMix = {
  name: 'explore',
  description: 'one exit per way a handler ends: isolated, full (fault), halt, VMM',
  source: 'synthetic, for exhaustive exploration (issue 23)',
  weights: {
    'MSR_WRITE:fastpath': 1,
    'EPT_VIOLATION:alloc': 1,
    'HLT:halt': 1,
    'IO_INSTRUCTION:userspace': 1,
  },
} as const;

export function defaultExploreCase(exits: number): FuzzCase {
  return {
    machine: {
      cores: 1,
      smt: 2,
      memoryMiB: fuzzLimits.memoryMiB,
      pageTablePoolPages: fuzzLimits.pageTablePoolPages,
      pcid: true,
      fillBufferEntries: 4,
      vms: [{ vcpus: 2, guestMemoryMiB: 1, pin: [0, 1] }],
    },
    workload: {
      mix: { ...exploreMix, weights: { ...exploreMix.weights } },
      // Deadlines only (the explorer lets any deadline come at any point); sizes as the fuzzer's.
      exitIntervalCycles: 2000,
      // One guest access per stretch (its line is a fixed draw): a stretch's accesses are not branches.
      guestQuantumCycles: 2000,
      guestAccessesPerQuantum: 1,
      idleCycles: 2000,
      // Interrupts are the explorer's own transitions (`--interrupts`), not drawn clocks.
      nmiIntervalCycles: 0,
      machineCheckIntervalCycles: 0,
      irqIntervalCycles: 0,
      injections: [],
    },
    costs: {},
    run: {
      exits,
      seed: 0,
      jitterCycles: 0,
      waitBoundCycles: fuzzLimits.waitBoundCycles,
      maxCycles: fuzzLimits.maxCycles,
      stopOnViolation: true,
    },
    choices: [],
  };
}

/**
 * The default case on 2 cores x 2 threads with one VM per core: the machine where steps of different
 * cores touch different records, so partial-order reduction has something to reduce (bench, tests).
 */
export function twoCoreExploreCase(exits: number): FuzzCase {
  const fuzzCase = defaultExploreCase(exits);
  return {
    ...fuzzCase,
    machine: {
      ...fuzzCase.machine,
      cores: 2,
      vms: [
        { vcpus: 2, guestMemoryMiB: 1, pin: [0, 1] },
        { vcpus: 2, guestMemoryMiB: 1, pin: [2, 3] },
      ],
    },
  };
}

/** The sections a configuration of an exploration may give (each merged over the default's). */
export const exploreSections = ['machine', 'workload', 'costs', 'run'] as const;

/**
 * The default case with `given`'s sections merged over its own, field by field (`edit`, when given,
 * changes the merged object before it is checked: the CLI's `--set`), then checked as a replay file's
 * case is (a ConfigError naming the field; `source` names where it came from). The CLI and the vitest
 * matcher read a configuration through here.
 */
export function exploreCaseOf(
  exits: number,
  given: unknown,
  source: string,
  edit: (merged: Record<string, unknown>) => unknown = (merged) => merged,
): FuzzCase {
  if (given !== undefined && (typeof given !== 'object' || given === null || Array.isArray(given)))
    throw new ConfigError(source, 'an object with machine, workload, costs and run sections', given);
  const base = defaultExploreCase(exits) as unknown as Record<string, unknown>;
  const fromGiven = (given ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(fromGiven)) {
    if (!(exploreSections as readonly string[]).includes(key) && key !== '$comment')
      throw new ConfigError(source, 'an object with machine, workload, costs and run sections', key);
  }
  const merged: Record<string, unknown> = { ...base };
  for (const section of exploreSections) {
    const value = fromGiven[section];
    if (value !== undefined) merged[section] = { ...(base[section] as object), ...(value as object) };
  }
  return parseFuzzCase(edit(merged), source);
}
