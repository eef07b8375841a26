import { build } from 'hdr-histogram-js';
import { assert } from '../../assert.js';

/**
 * A round-trip latency as a distribution (issue 20, item 4): percentiles from an HDR histogram
 * (hdr-histogram-js, the JavaScript port of Gil Tene's HdrHistogram: values kept to 3 significant
 * digits, so a percentile is within 0.1% of the sample it stands for), and a log-scale histogram of
 * the samples for people (text on a terminal, SVG in the report: report/latency.ts).
 */

/**
 * Samples below which p99.9 is not reported: with 10,000 the 99.9th percentile rests on the 10 slowest
 * trips; with fewer it is one or two samples, or the maximum under another name.
 */
export const p999SamplesMin = 10_000;
/** Buckets per decade of the log-scale histogram: edges at 1, 1.78, 3.16, 5.62, 10, ... ns. */
export const logBucketsPerDecade = 4;
/** The HDR histogram's range: 1 ns to ~18 min, far past a trip timeout (benchmarks.ts). */
const trackableNsMax = 2 ** 40;

export interface LogHistogram {
  /** Bucket k covers [10^(k / bucketsPerDecade), 10^((k + 1) / bucketsPerDecade)) ns. */
  bucketsPerDecade: number;
  /** k of `counts[0]`; the buckets run from the fastest sample's to the slowest's, empty ones included. */
  firstBucket: number;
  counts: number[];
}

export interface LatencyDistribution {
  /** Trips timed one by one, each one sample. */
  samples: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  /** null below `p999SamplesMin` samples. */
  p999Ns: number | null;
  minNs: number;
  maxNs: number;
  meanNs: number;
  histogram: LogHistogram;
}

/** The lower edge of log bucket `k`, in ns. */
export function logBucketEdgeNs(k: number, bucketsPerDecade = logBucketsPerDecade): number {
  return 10 ** (k / bucketsPerDecade);
}

/** The log bucket of a sample (samples under 1 ns count as 1 ns). */
export function logBucketOf(ns: number, bucketsPerDecade = logBucketsPerDecade): number {
  // The small epsilon puts a sample that is an exact edge (1000 ns) in the bucket it opens, despite
  // log10's rounding.
  return Math.floor(Math.log10(Math.max(1, ns)) * bucketsPerDecade + 1e-9);
}

/** Distribution of `samplesNs` (each a trip's latency, clock overhead already taken off; negatives are 0). */
export function latencyDistribution(samplesNs: ArrayLike<number>): LatencyDistribution {
  assert(samplesNs.length > 0, 'a latency distribution needs samples');
  const hdr = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: trackableNsMax,
    numberOfSignificantValueDigits: 3,
  });
  let minNs = Number.POSITIVE_INFINITY;
  let maxNs = 0;
  let sum = 0;
  const buckets = new Map<number, number>();
  for (let i = 0; i < samplesNs.length; i++) {
    const ns = Math.min(trackableNsMax, Math.max(0, samplesNs[i]));
    assert(Number.isFinite(ns), `sample ${i} is a finite latency (${samplesNs[i]})`);
    hdr.recordValue(Math.round(ns));
    minNs = Math.min(minNs, ns);
    maxNs = Math.max(maxNs, ns);
    sum += ns;
    const bucket = logBucketOf(ns);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
  }
  const firstBucket = logBucketOf(minNs);
  const counts = new Array<number>(logBucketOf(maxNs) - firstBucket + 1).fill(0);
  for (const [bucket, count] of buckets) counts[bucket - firstBucket] = count;
  const samples = samplesNs.length;
  const distribution: LatencyDistribution = {
    samples,
    p50Ns: hdr.getValueAtPercentile(50),
    p90Ns: hdr.getValueAtPercentile(90),
    p99Ns: hdr.getValueAtPercentile(99),
    p999Ns: samples >= p999SamplesMin ? hdr.getValueAtPercentile(99.9) : null,
    minNs,
    maxNs,
    meanNs: sum / samples,
    histogram: { bucketsPerDecade: logBucketsPerDecade, firstBucket, counts },
  };
  hdr.destroy();
  assert(
    distribution.p50Ns <= distribution.p90Ns && distribution.p90Ns <= distribution.p99Ns,
    'percentiles are ordered',
  );
  assert(
    counts.reduce((total, count) => total + count, 0) === samples,
    'every sample is in one histogram bucket',
  );
  return distribution;
}
