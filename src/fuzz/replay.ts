import { assert } from '../assert.js';
import type { RunResult } from '../backend/result.js';
import { EventLog, type LoggedEvent } from '../invariants/event-log.js';
import type { Policy } from '../policy/policy.js';
import { type CaseVerdict, caseSize, type FuzzCase, runFuzzCase, sameFailure } from './fuzz-case.js';
import { type PolicySpec, resolvePolicy } from './policy-spec.js';
import { type ReplayDocument, replayFormat, replaySchemaVersion } from './replay-format.js';
import type { ShrinkResult } from './shrink.js';
import { asiEmuVersion } from './version.js';

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
    },
  };
}

export interface ReplayOutcome {
  policy: Policy;
  verdict: CaseVerdict;
  /** null when the model threw (verdict.failure is 'error'). */
  result: RunResult | null;
  /** Every event of the run (for `--trace`). */
  events: LoggedEvent[];
  /** The recorded failure happened again. */
  reproduced: boolean;
  /** Trace hash equal to the recorded one (the same version must give true). */
  traceHashMatches: boolean;
  /** The file was written by this asi-emu version. */
  sameVersion: boolean;
}

export interface ReplayOptions {
  /** Load the policy from this module instead of the path the file records (moved or another machine). */
  policyModule?: string;
  /** Keep every event (for a trace); the hash is computed either way. */
  keepEvents?: boolean;
}

export async function replayCase(
  document: ReplayDocument,
  options: ReplayOptions = {},
): Promise<ReplayOutcome> {
  const spec: PolicySpec =
    options.policyModule !== undefined
      ? { name: document.policy.name, module: options.policyModule }
      : document.policy;
  const policy = await resolvePolicy(spec);
  const log = new EventLog(64, options.keepEvents ?? false);
  const { verdict, result } = runFuzzCase(document.case, policy, { log });
  return {
    policy,
    verdict,
    result,
    events: log.events(),
    reproduced: sameFailure(verdict, document.expected.failure),
    traceHashMatches: verdict.traceHash === document.expected.traceHash,
    sameVersion: document.asiEmuVersion === asiEmuVersion(),
  };
}
