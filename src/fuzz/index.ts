/**
 * Fuzzing exit-handler mixes (issue 5), the public surface: draw cases with fast-check, run them on
 * the sim backend (in this thread or a piscina pool), shrink failing ones, write and replay versioned
 * replay files, split campaigns into shards and merge their summaries.
 */
export { concreteCase, fuzzCaseArbitrary, fuzzMixKeys, rawCaseArbitrary } from './arbitraries.js';
export {
  type CampaignOptions,
  type CampaignProgress,
  type CampaignResult,
  defaultSummaryPath,
  replayFileName,
  runCampaign,
} from './campaign.js';
export { type FuzzExecutor, fuzzWorkerPath, inProcessExecutor, poolExecutor } from './executor.js';
export {
  type CaseSize,
  type CaseVerdict,
  caseSize,
  type FuzzCase,
  MachineCache,
  runConfigOf,
  runFuzzCase,
} from './fuzz-case.js';
export { type FuzzLimits, fuzzLimits } from './limits.js';
export {
  type FuzzLinuxAsi,
  type FuzzTaintPolicy,
  type LinuxAsiDraws,
  linuxAsiDrawsOf,
  policyForCase,
  safeSiblingProtocols,
} from './linux-asi-draws.js';
export { mergeSummaries, mergeSummaryFiles } from './merge.js';
export {
  fuzzablePolicyNames,
  namedPolicy,
  type PolicySpec,
  policySpecOf,
  resolvePolicy,
} from './policy-spec.js';
export { type ReplayOutcome, replayCase, replayDocumentOf } from './replay.js';
export {
  parseReplay,
  type ReplayDocument,
  readReplayFile,
  replayFormat,
  replaySchemaVersion,
  replaySchemaVersionsRead,
  writeReplayFile,
} from './replay-format.js';
export {
  caseSeedOf,
  formatShard,
  parseShard,
  type Shard,
  shardCaseCount,
  shardCaseIndices,
} from './shard.js';
export { generateCase, type ShrinkResult, shrinkCase } from './shrink.js';
export { type FuzzSummary, readSummaryFile, summaryFormat, summarySchemaVersion } from './summary.js';
