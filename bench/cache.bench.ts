import { Bench } from 'tinybench';
import { assert } from '../src/assert.js';
import { CoreL1d, type L1dGeometry, type L1dReplacement, l1dI32s } from '../src/cache/l1d.js';
import { linesPerPage } from '../src/constants.js';
import { domainCount, domainHost, domainKvm, vmDomain } from '../src/memory/domains.js';

/**
 * L1D accesses per second, on one thread, for a hit-heavy and a miss-heavy stream under true LRU and
 * tree-PLRU. One iteration replays a whole precomputed stream, so the timer (~µs resolution) measures
 * thousands of accesses and the per-access cost is not lost in timer overhead. Imported by the bench
 * runner; nothing runs at import.
 */

export interface CacheBenchResult {
  name: string;
  opsPerSecond: number;
}

export interface CacheBenchOptions {
  /** Time budget per task; tinybench's default is 1000 ms. */
  timeMs?: number;
}

/** Skylake-class geometry (64 sets x 8 ways = 32 KiB) so LRU and PLRU compare on the same shape. */
const benchSets = 64;
const benchWays = 8;
const benchVmCount = 4;
/** Accesses per iteration: long enough to dwarf the timer, short enough to stay in the CPU's caches. */
const streamAccesses = 16_384;
/** The hit-heavy working set: 4 pages = 256 lines, half the cache's 512, so it stays resident. */
const hitHeavyPages = 4;
/** The miss-heavy working set: 4096 pages = 262,144 lines, 512x the cache. */
const missHeavyPages = 4096;

/** Frames of the streams start past 0 so that no stream line matches the zeroed tags by accident. */
const firstBenchPfn = 1000;

interface AccessStream {
  pfns: Int32Array;
  linesInPage: Int32Array;
  domains: Int32Array;
}

/** A deterministic stream (32-bit LCG, Numerical Recipes constants) so every run measures the same work. */
function makeStream(pages: number, seed: number): AccessStream {
  const pfns = new Int32Array(streamAccesses);
  const linesInPage = new Int32Array(streamAccesses);
  const domains = new Int32Array(streamAccesses);
  const owners = [domainHost, domainKvm, vmDomain(0), vmDomain(1)];
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
  for (let index = 0; index < streamAccesses; index++) {
    const page = next() % pages;
    pfns[index] = firstBenchPfn + page;
    linesInPage[index] = next() % linesPerPage;
    domains[index] = owners[page % owners.length];
  }
  return { pfns, linesInPage, domains };
}

function replay(l1d: CoreL1d, stream: AccessStream): number {
  const { pfns, linesInPage, domains } = stream;
  let hits = 0;
  for (let index = 0; index < streamAccesses; index++) {
    if (l1d.access(pfns[index], linesInPage[index], domains[index])) hits++;
  }
  return hits;
}

function makeL1d(replacement: L1dReplacement): CoreL1d {
  const geometry: L1dGeometry = {
    sets: benchSets,
    ways: benchWays,
    replacement,
    domainCount: domainCount(benchVmCount),
  };
  return new CoreL1d(new Int32Array(new SharedArrayBuffer(l1dI32s(geometry) * 4)), 0, geometry);
}

export async function runCacheBench(options: CacheBenchOptions = {}): Promise<CacheBenchResult[]> {
  const bench = new Bench({ name: 'cache', time: options.timeMs ?? 1000, throws: true });
  const streams = [
    { label: 'hit-heavy', stream: makeStream(hitHeavyPages, 1), hitRatioMin: 0.95, hitRatioMax: 1 },
    { label: 'miss-heavy', stream: makeStream(missHeavyPages, 2), hitRatioMin: 0, hitRatioMax: 0.05 },
  ];
  // Keeps the replays' results observable so that they cannot be optimised away.
  let sink = 0;
  for (const replacement of ['lru', 'plru'] as const) {
    for (const { label, stream, hitRatioMin, hitRatioMax } of streams) {
      const l1d = makeL1d(replacement);
      // Warm the cache once and check the stream does what its name says before timing it.
      replay(l1d, stream);
      const hitRatio = replay(l1d, stream) / streamAccesses;
      assert(
        hitRatio >= hitRatioMin && hitRatio <= hitRatioMax,
        `${label} stream has hit ratio ${hitRatio} under ${replacement}, outside [${hitRatioMin}, ${hitRatioMax}]`,
      );
      bench.add(`l1d access ${replacement} ${benchSets}x${benchWays} ${label}`, () => {
        sink += replay(l1d, stream);
      });
    }
  }
  await bench.run();
  assert(sink >= 0, 'hit counts are never negative');
  return bench.tasks.map((task) => {
    const result = task.result;
    assert(result.state === 'completed', `cache bench task ${task.name} ended ${result.state}`);
    // throughput is iterations per second; each iteration is one stream of accesses.
    return { name: task.name, opsPerSecond: result.throughput.mean * streamAccesses };
  });
}
