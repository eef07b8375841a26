import { describe, expect, it } from 'vitest';
import {
  latencyDistribution,
  logBucketEdgeNs,
  logBucketOf,
  p999SamplesMin,
} from '../../../src/backend/workers/latency.js';
import { formatLatencyHistogram, formatNs, latencyHistogramSvg } from '../../../src/report/latency.js';

/** Kick latency as a distribution (issue 20, item 4): percentiles and the log-scale histogram. */
describe('latencyDistribution', () => {
  const uniform = Array.from({ length: 10_000 }, (_, i) => i + 1);

  it('gives the percentiles of known samples, to the HDR histogram 3 significant digits', () => {
    const latency = latencyDistribution(uniform);
    expect(latency.samples).toBe(10_000);
    for (const [value, expected] of [
      [latency.p50Ns, 5_000],
      [latency.p90Ns, 9_000],
      [latency.p99Ns, 9_900],
      [latency.p999Ns ?? 0, 9_990],
    ]) {
      expect(Math.abs(value - expected) / expected).toBeLessThanOrEqual(0.001);
    }
    expect(latency.minNs).toBe(1);
    expect(latency.maxNs).toBe(10_000);
    expect(latency.meanNs).toBeCloseTo(5_000.5, 6);
  });

  it('leaves p99.9 out below 10,000 samples, and orders the rest', () => {
    expect(p999SamplesMin).toBe(10_000);
    const latency = latencyDistribution(uniform.slice(0, p999SamplesMin - 1));
    expect(latency.p999Ns).toBeNull();
    expect(latency.p50Ns).toBeLessThanOrEqual(latency.p90Ns);
    expect(latency.p90Ns).toBeLessThanOrEqual(latency.p99Ns);
  });

  it('puts every sample in one log bucket, four per decade; negatives count as 0', () => {
    expect(logBucketOf(1)).toBe(0);
    expect(logBucketOf(999)).toBe(11);
    expect(logBucketOf(1_000)).toBe(12);
    expect(logBucketEdgeNs(12)).toBeCloseTo(1_000, 9);
    const latency = latencyDistribution([-5, 0.5, 150, 160, 1_000, 2_000_000]);
    const { counts, firstBucket, bucketsPerDecade } = latency.histogram;
    expect(bucketsPerDecade).toBe(4);
    expect(firstBucket).toBe(0);
    expect(counts.reduce((sum, count) => sum + count, 0)).toBe(6);
    expect(counts[0]).toBe(2); // -5 and 0.5: under 1 ns
    expect(counts[logBucketOf(150)]).toBe(2);
    expect(counts).toHaveLength(logBucketOf(2_000_000) + 1);
    expect(latency.minNs).toBe(0);
  });
});

describe('the histogram for people', () => {
  const latency = latencyDistribution([
    ...Array.from({ length: 990 }, () => 200),
    ...Array.from({ length: 10 }, () => 50_000),
  ]);

  it('text: a line per bucket from the fastest to the slowest, counts and shares', () => {
    const lines = formatLatencyHistogram('raw spin', latency).split('\n');
    expect(lines[0]).toBe('raw spin: 1000 round trips, log-scale buckets');
    expect(lines).toHaveLength(1 + latency.histogram.counts.length);
    expect(lines[1]).toMatch(/178 ns - 316 ns \| #{40}\s+990 \(99\.0%\)$/);
    expect(lines.at(-1)).toMatch(/31\.6 µs - 56\.2 µs \| #\s+10 \(1\.0%\)$/);
    // Empty buckets between keep their line (the gap is part of the shape).
    expect(lines.filter((line) => /\|\s+0 \(0\.00%\)$/.test(line)).length).toBe(
      latency.histogram.counts.length - 2,
    );
  });

  it('SVG: a bar per non-empty bucket, the percentiles marked', () => {
    const svg = latencyHistogramSvg('chart-test', 'raw spin', latency, '#1f77b4');
    expect(svg.match(/<rect class="bucket"/g)).toHaveLength(2);
    expect(svg).toContain('data-count="990"');
    expect(svg).toContain('data-percentile="p50"');
    expect(svg).toContain('data-percentile="p99"');
    expect(svg).not.toContain('data-percentile="p99.9"'); // 1,000 samples: no p99.9
  });

  it('formats latencies in ns, µs and ms', () => {
    expect(formatNs(652.4)).toBe('652 ns');
    expect(formatNs(11_375)).toBe('11.4 µs');
    expect(formatNs(1_250_000)).toBe('1.25 ms');
    expect(formatNs(null)).toBe('-');
  });
});
