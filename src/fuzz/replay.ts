import { assert } from '../assert.js';
import type { RunResult } from '../backend/result.js';
import { probePolicyModule } from '../backend/workers/policy-probe.js';
import { ConfigError } from '../errors.js';
import type { LoggedEvent } from '../invariants/event-log.js';
import { type FuzzExecutor, inProcessExecutor } from './executor.js';
import { type CaseVerdict, caseSize, type FuzzCase, sameFailure } from './fuzz-case.js';
import { namedPolicy, type PolicySpec } from './policy-spec.js';
import { type ReplayDocument, replayFormat, replaySchemaVersion } from './replay-format.js';
import type { ShrinkResult } from './shrink.js';
import { asiEmuVersion, toolIdentity } from './version.js';

/**
 * Replaying a case: building the replay document of a failing case, and rerunning one. The sim is
 * deterministic, so a file replayed by the version that wrote it gives the identical trace: the trace
 * hash it records is compared with the rerun's.
 */
export interface ReplayOrigin {
  campaignSeed: number;
  caseIndex: number;
  caseSeed: number;
}

/** The document of a failing case found by a run (`shrink` null: not shrunk yet). */
export function replayDocumentOf(
  policy: PolicySpec,
  origin: ReplayOrigin | null,
  original: FuzzCase,
  found: { fuzzCase: FuzzCase; verdict: CaseVerdict },
  shrink: Omit<ShrinkResult, 'fuzzCase' | 'verdict'> | null,
): ReplayDocument {
  const { verdict } = found;
  assert(verdict.failure !== null, 'a replay document records a failing case');
  return {
    format: replayFormat,
    schemaVersion: replaySchemaVersion,
    tool: toolIdentity(),
    asiEmuVersion: asiEmuVersion(),
    policy,
    origin,
    shrink: {
      shrunk: shrink !== null,
      runs: shrink?.runs ?? 0,
      steps: shrink?.steps ?? 0,
      budgetSpent: shrink?.budgetSpent ?? false,
      originalSize: caseSize(original),
    },
    size: caseSize(found.fuzzCase),
    case: found.fuzzCase,
    expected: {
      failure: verdict.failure,
      traceHash: verdict.traceHash,
      exits: verdict.exits,
      steps: verdict.steps,
      violation: verdict.violation,
      error: verdict.error,
      hook: verdict.hook,
    },
  };
}

export interface ReplayOutcome {
  /** The policy that ran (its name). */
  policyName: string;
  verdict: CaseVerdict;
  /** null when the run threw or hung (verdict.failure is 'error' or 'hang'). */
  result: RunResult | null;
  /** Every event of the run (for `--trace`). */
  events: LoggedEvent[];
  /** The recorded failure happened again. */
  reproduced: boolean;
  /** Trace hash equal to the recorded one (the same version must give true). */
  traceHashMatches: boolean;
  /** The file was written by this asi-emu version. */
  sameVersion: boolean;
  /**
   * For a module policy: whether the module given has the bytes the file records (null: the file
   * records no hash, or the policy is built in). A changed module explains a changed trace.
   */
  moduleMatches: boolean | null;
}

export interface ReplayOptions {
  /**
   * The user's own policy module, for a file made with one. Replay never loads a module named inside
   * a file (a file from a bug report is data, not code): without this option such a file is refused.
   */
  policyModule?: string;
  /** Keep every event (for a trace); the hash is computed either way. */
  keepEvents?: boolean;
  /** Where the case runs: a pool (the CLI: a worker under the hang watchdog) or this thread (default). */
  executor?: FuzzExecutor;
}

export async function replayCase(
  document: ReplayDocument,
  options: ReplayOptions = {},
): Promise<ReplayOutcome> {
  const recorded = document.policy;
  let spec: PolicySpec = { name: recorded.name };
  let moduleMatches: boolean | null = null;
  if (options.policyModule === undefined) {
    if (recorded.module !== undefined) {
      throw new ConfigError(
        '--policy-module',
        `the policy module this replay file was made with (policy ${recorded.name}): replay never loads a module named in a file, so pass --policy-module PATH yourself`,
        recorded.module,
      );
    }
    namedPolicy(recorded.name, 'policy.name');
  } else {
    // Loaded in a worker under a time limit (its top-level code may loop), never on this thread.
    const probed = await probePolicyModule(options.policyModule);
    if (probed.name !== recorded.name) {
      throw new ConfigError(
        '--policy-module',
        `a module whose policy is named ${recorded.name} (the replay file's policy)`,
        `${options.policyModule} (its policy is named ${probed.name})`,
      );
    }
    spec = { name: probed.name, module: probed.path };
    moduleMatches = recorded.moduleSha256 === undefined ? null : recorded.moduleSha256 === probed.sha256;
  }
  const executor = options.executor ?? inProcessExecutor();
  const { verdict, result, events } = await executor.replay({
    kind: 'replay',
    policy: spec,
    fuzzCase: document.case,
    keepEvents: options.keepEvents ?? false,
  });
  return {
    policyName: spec.name,
    verdict,
    result,
    events,
    reproduced: sameFailure(verdict, document.expected.failure),
    traceHashMatches: verdict.traceHash === document.expected.traceHash,
    sameVersion: document.asiEmuVersion === asiEmuVersion(),
    moduleMatches,
  };
}
