/**
 * The public API of asi-emu (`import { ... } from 'asi-emu'`). Matchers for vitest live in
 * `asi-emu/vitest`, the confidential-VM memory model (VmMemory, guest_memfd, PSC, ...) in `asi-emu/coco`.
 */

export type { ConfidentialResult, RunResult, ThreadResult } from './backend/result.js';
export { runSim, type SimOptions } from './backend/sim/run-sim.js';
export { runWorkers } from './backend/workers/run-workers.js';
export { ConfidentialVm } from './coco/confidential-vm.js';
export { type MachineConfig, type MachineConfigInput, parseMachineConfig } from './config/machine-config.js';
export { parseRunConfig, type RunConfig, type RunConfigInput } from './config/run-config.js';
export type { Workload, WorkloadInput } from './config/workload.js';
export { type CostModel, defaultCostModel, parseCostModel } from './cpu/costs.js';
export type { ExitReasonRow } from './cpu/exit-breakdown.js';
export { type ExitReasonSpec, exitCatalogue, type HandlerOp, type HandlerVariant } from './cpu/exits.js';
export { builtinMixes as mixes, type ExitMix, parseUserMix } from './cpu/mixes.js';
// A policy hook gets its core's state word: these read it (a sibling's mode, the asi-stun bits).
export {
  describeCoreWord,
  holdsSecrets,
  isStunned,
  Mode,
  type ModeCode,
  type ModeName,
  modeNames,
  modeOf,
  stunBit,
} from './cpu/modes.js';
export {
  engineTuningOptOutVariable,
  inlinedBytecodeCumulativeMax,
  inlinedBytecodeMax,
  tuneEngineForSim,
} from './engine-tuning.js';
export { ConfigError, UsageError } from './errors.js';
export * from './fuzz/index.js';
export { type InvariantId, invariantIds, invariantTitles, type Violation } from './invariants/violation.js';
export type { LinuxAsiSettings, LinuxAsiSettingsInput, SiblingProtocol } from './linux-asi/settings.js';
export {
  defineTaintPolicy,
  type TaintName,
  type TaintPolicyInput,
  type TaintSetInput,
} from './linux-asi/settings-input.js';
export { type AsiClass, postedClassPolicies, type TaintPolicy } from './linux-asi/taints.js';
export { attachMachine, createMachine, Machine, type MachineSummary } from './machine.js';
export {
  definePolicy,
  Flush,
  flushIfForeign,
  meantToBeSafe,
  noSiblingHoldsSecrets,
  type PlantedBugSwitches,
  type Policy,
  type PolicyDefinition,
  type PolicyView,
  policies,
  policyByName,
  safePolicyNames,
  siblingsInGuest,
} from './policy/index.js';
export { type LinuxAsiOptions, linuxAsiPolicy } from './policy/linux-asi.js';
export { type PlantedBug, plantedBugs } from './policy/planted.js';
export {
  type BenchJson,
  type ComparedPolicy,
  compareOnSim,
  compareRepeated,
  comparisonJson,
  formatComparison,
  type RepeatedComparison,
  type RunRequest,
  simRunner,
} from './report/comparison.js';
export { meanCi95, type RepeatedResult, repeatSeeds } from './report/repeats.js';
