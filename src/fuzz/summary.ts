import { z } from 'zod';
import { readJsonInput } from '../config/input-limits.js';
import { configErrorFromZod } from '../config/schema-error.js';
import { ConfigError } from '../errors.js';
import { writeFileAtomic } from '../report/atomic-write.js';
import { type CaseSize, type FailureKind, failureKinds } from './fuzz-case.js';
import type { FuzzLimits } from './limits.js';
import type { PolicySpec } from './policy-spec.js';
import { toolSchema } from './replay-format.js';
import { asiEmuVersion, type ToolIdentity, toolIdentity } from './version.js';

/**
 * A campaign's summary (`--json`, and what `fuzz merge` joins). Schema version history:
 *   1 — first version. Later, without a bump (optional, and every summary before reads the same):
 *       `tool` ({ name, version }, issue 20: every result document asi-emu writes carries it).
 * Shards of one campaign share `campaign` exactly; each lists the shards it covers, and for each how
 * many of its cases ran: a shard runs its case indices in order, so "ran n cases" names them.
 */
export const summaryFormat = 'asi-emu-fuzz-summary';
export const summarySchemaVersion = 1;

export interface CampaignIdentity {
  policy: PolicySpec;
  seed: number;
  /** `--cases N` (the whole campaign's, before sharding), or null for a time-boxed one. */
  cases: number | null;
  shardCount: number;
  limits: FuzzLimits;
}

export interface ShardRun {
  /** "i/n". */
  shard: string;
  /** Cases run: the shard's first `casesRun` case indices. */
  casesRun: number;
  /** Every case asked for ran (always false for a time-boxed or interrupted campaign). */
  complete: boolean;
}

export interface FailureRecord {
  caseIndex: number;
  caseSeed: number;
  /** The invariant broken, `error` (the model or a policy hook threw), or `hang` (stopped by the watchdog). */
  failure: FailureKind;
  /** The policy hook that threw, returned a bad value or hung (absent: the model, or an invariant). */
  hook?: string | null;
  /**
   * Later cases that failed the same way (an error or hang with the same hook and message): counted
   * here, not filed again (one throwing hook used to file a replay file per case).
   */
  repeats?: number;
  /** Where in the user's module a hook threw (the hook's own stack), for a policy error. */
  hookStack?: string;
  /** Why the shrink stopped early (its case did not fail again, or a shrink run hung). */
  shrinkNote?: string;
  /** What went wrong, in one line. */
  detail: string;
  /** Replay file, relative to the summary's directory. */
  replay: string;
  shrunk: boolean;
  /** The trace hash of the replay file's case. */
  traceHash: string;
  size: CaseSize;
  originalSize: CaseSize;
}

export interface FuzzSummary {
  format: typeof summaryFormat;
  schemaVersion: typeof summarySchemaVersion;
  /** Who wrote it (issue 20; absent in summaries written before, which merge still reads). */
  tool?: ToolIdentity;
  asiEmuVersion: string;
  campaign: CampaignIdentity;
  shards: ShardRun[];
  casesRun: number;
  /** Every case asked for ran, in every shard of the campaign. */
  complete: boolean;
  /** Failing cases. */
  violations: number;
  byFailure: Partial<Record<FailureKind, number>>;
  /** Sorted by case index. */
  failures: FailureRecord[];
  /** Wall time and jobs of the run (merged: the slowest shard's time, all jobs; not part of the result). */
  wallSeconds: number;
  jobs: number;
}

export function summaryOf(
  campaign: CampaignIdentity,
  shards: ShardRun[],
  failures: FailureRecord[],
  timing: { wallSeconds: number; jobs: number },
): FuzzSummary {
  const sorted = [...failures].sort((a, b) => a.caseIndex - b.caseIndex);
  const byFailure: Partial<Record<FailureKind, number>> = {};
  for (const failure of sorted) byFailure[failure.failure] = (byFailure[failure.failure] ?? 0) + 1;
  const sortedShards = [...shards].sort((a, b) => shardOrdinal(a.shard) - shardOrdinal(b.shard));
  return {
    format: summaryFormat,
    schemaVersion: summarySchemaVersion,
    tool: toolIdentity(),
    asiEmuVersion: asiEmuVersion(),
    campaign,
    shards: sortedShards,
    casesRun: shards.reduce((sum, shard) => sum + shard.casesRun, 0),
    complete: shards.length === campaign.shardCount && shards.every((shard) => shard.complete),
    violations: sorted.length,
    byFailure,
    failures: sorted,
    wallSeconds: timing.wallSeconds,
    jobs: timing.jobs,
  };
}

function shardOrdinal(shard: string): number {
  return Number(shard.split('/')[0]);
}

/** `flag`: the flag that chose `path`, named if the write fails. */
export function writeSummary(path: string, summary: FuzzSummary, flag = '--json'): void {
  writeFileAtomic(path, summaryJson(summary), flag);
}

/** A summary as its file holds it. */
export function summaryJson(summary: FuzzSummary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

const sizeSchema = z.object({
  exits: z.number(),
  hyperthreads: z.number(),
  vcpus: z.number(),
  injectedEvents: z.number(),
  choices: z.number(),
});
const failureKey = z.enum(failureKinds);
const summarySchema = z.object({
  format: z.literal(summaryFormat),
  schemaVersion: z.literal(summarySchemaVersion),
  tool: toolSchema.optional(),
  asiEmuVersion: z.string(),
  campaign: z.object({
    policy: z.object({
      name: z.string(),
      module: z.string().optional(),
      moduleSha256: z.string().optional(),
    }),
    seed: z.number().int().min(0),
    cases: z.number().int().min(1).nullable(),
    shardCount: z.number().int().min(1),
    limits: z.record(z.string(), z.number()),
  }),
  shards: z.array(
    z.object({
      shard: z.string().regex(/^\d+\/\d+$/),
      casesRun: z.number().int().min(0),
      complete: z.boolean(),
    }),
  ),
  casesRun: z.number().int().min(0),
  complete: z.boolean(),
  violations: z.number().int().min(0),
  byFailure: z.partialRecord(failureKey, z.number()),
  failures: z.array(
    z.object({
      caseIndex: z.number().int().min(0),
      caseSeed: z.number().int(),
      failure: failureKey,
      hook: z.string().nullable().optional(),
      repeats: z.number().int().min(0).optional(),
      shrinkNote: z.string().optional(),
      hookStack: z.string().optional(),
      detail: z.string(),
      replay: z.string(),
      shrunk: z.boolean(),
      traceHash: z.string(),
      size: sizeSchema,
      originalSize: sizeSchema,
    }),
  ),
  wallSeconds: z.number().min(0),
  jobs: z.number().int().min(0),
});

export function readSummaryFile(path: string): FuzzSummary {
  // `asi-emu fuzz --json` wrote it; merge reads it through the one bounded reader.
  const json = readJsonInput(path, 'fuzz summary', (accepted, got) => new ConfigError(path, accepted, got));
  const envelope = json as Record<string, unknown> | null;
  if (envelope?.format !== summaryFormat) {
    throw new ConfigError(
      `${path}: format`,
      `"${summaryFormat}" (a summary written by \`asi-emu fuzz\`)`,
      envelope?.format,
    );
  }
  if (envelope.schemaVersion !== summarySchemaVersion) {
    throw new ConfigError(
      `${path}: schemaVersion`,
      `summary schema version ${summarySchemaVersion} (asi-emu ${asiEmuVersion()}); merge summaries of one asi-emu version`,
      envelope.schemaVersion,
    );
  }
  const parsed = summarySchema.safeParse(json);
  if (!parsed.success) throw configErrorFromZod(parsed.error, path);
  return parsed.data as FuzzSummary;
}
