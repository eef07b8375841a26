import { dirname, relative, resolve } from 'node:path';
import { assert } from '../assert.js';
import { ConfigError } from '../errors.js';
import { type FailureRecord, type FuzzSummary, readSummaryFile, summaryOf, writeSummary } from './summary.js';

/**
 * `asi-emu fuzz merge`: joins the summaries of one campaign's shards (run on other machines, or at
 * other times) into one. They must be of the same campaign (policy, seed, cases, shard count, limits)
 * and asi-emu version, and cover disjoint shards. Replay paths are rebased onto the merged summary's
 * directory, so the merged file still finds every replay file.
 */
export interface SummaryFile {
  path: string;
  summary: FuzzSummary;
}

function describeCampaign(summary: FuzzSummary): string {
  const { campaign } = summary;
  const size = campaign.cases === null ? 'time-boxed' : `${campaign.cases} cases`;
  return `policy ${campaign.policy.name}, seed ${campaign.seed}, ${size}, ${campaign.shardCount} shards, asi-emu ${summary.asiEmuVersion}`;
}

function campaignKey(summary: FuzzSummary): string {
  const { campaign } = summary;
  const limits = Object.entries(campaign.limits).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([
    summary.asiEmuVersion,
    campaign.policy.name,
    campaign.policy.module ?? null,
    campaign.seed,
    campaign.cases,
    campaign.shardCount,
    limits,
  ]);
}

/** Merges and writes the merged summary to `outPath`. */
export function mergeSummaries(files: readonly SummaryFile[], outPath: string): FuzzSummary {
  const merged = mergedSummaryOf(files, outPath);
  writeSummary(outPath, merged, '--out');
  return merged;
}

/**
 * The merged summary, not written: its replay paths are relative to `outPath`'s directory (the
 * working directory for `-`, standard output).
 */
export function mergedSummaryOf(files: readonly SummaryFile[], outPath: string): FuzzSummary {
  assert(files.length > 0, 'merge needs at least one summary');
  const [first] = files;
  const key = campaignKey(first.summary);
  const shardsSeen = new Map<string, string>();
  const failures: FailureRecord[] = [];
  let wallSeconds = 0;
  let jobs = 0;
  for (const file of files) {
    const { summary } = file;
    if (campaignKey(summary) !== key) {
      throw new ConfigError(
        `${file.path}: campaign`,
        `a shard of the same campaign as ${first.path} (${describeCampaign(first.summary)})`,
        describeCampaign(summary),
      );
    }
    for (const run of summary.shards) {
      const earlier = shardsSeen.get(run.shard);
      if (earlier !== undefined) {
        throw new ConfigError(
          `${file.path}: shards`,
          `shards not already merged (shard ${run.shard} is also in ${earlier})`,
          run.shard,
        );
      }
      shardsSeen.set(run.shard, file.path);
    }
    for (const failure of summary.failures) {
      const replay = resolve(dirname(file.path), failure.replay);
      failures.push({ ...failure, replay: relative(dirname(resolve(outPath)), replay) });
    }
    // Shards run side by side: the campaign took as long as its slowest shard, on all their jobs.
    wallSeconds = Math.max(wallSeconds, summary.wallSeconds);
    jobs += summary.jobs;
  }
  const merged = summaryOf(
    first.summary.campaign,
    files.flatMap((file) => file.summary.shards),
    failures,
    { wallSeconds, jobs },
  );
  return merged;
}

/** Reads the summaries, each a ConfigError naming its file if bad. */
export function readSummaryFiles(paths: readonly string[]): SummaryFile[] {
  return paths.map((path) => ({ path, summary: readSummaryFile(path) }));
}

/** Reads the summaries (each a ConfigError naming its file if bad) and merges them into `outPath`. */
export function mergeSummaryFiles(paths: readonly string[], outPath: string): FuzzSummary {
  return mergeSummaries(readSummaryFiles(paths), outPath);
}
