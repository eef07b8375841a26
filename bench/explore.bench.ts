import { performance } from 'node:perf_hooks';
import { defaultExploreCase, twoCoreExploreCase } from '../src/explore/explore-case.js';
import { type ExploreBounds, type ExploreResult, explore } from '../src/explore/explorer.js';
import type { FuzzCase } from '../src/fuzz/fuzz-case.js';
import { namedPolicy } from '../src/policy/policy-module.js';
import type { BenchFigure } from './common.js';

/**
 * `asi-emu explore`'s speed (issue 23): distinct states per second of one job (this thread) on searches
 * that complete, with and without the partial-order reduction (sleep sets: the same states, fewer
 * transitions), and the CPU-seconds each took (on a shared machine the wall clock says more about the
 * neighbours). Each search runs once after a warm-up search of a smaller bound: a complete search is
 * seconds long, and tinybench's repeated calls would only repeat it. No pool yet (`--jobs` is not
 * built): the one-job figure is the only one.
 */
interface Search {
  name: string;
  policy: string;
  fuzzCase: FuzzCase;
  bounds: ExploreBounds;
}

function bounds(exits: number, nmi = 0): ExploreBounds {
  return { exits, interrupts: { nmi, irq: 0, mc: 0 }, maxDepth: 200, timeLimitMs: null };
}

const searches: Search[] = [
  { name: 'asi 1x2 --exits 2', policy: 'asi', fuzzCase: defaultExploreCase(2), bounds: bounds(2) },
  { name: 'asi 2x2 --exits 1', policy: 'asi', fuzzCase: twoCoreExploreCase(1), bounds: bounds(1) },
];

export async function runExploreBench(): Promise<BenchFigure[]> {
  const figures: BenchFigure[] = [];
  await explore({ policy: namedPolicy('asi'), fuzzCase: defaultExploreCase(1), bounds: bounds(1, 1) });
  for (const search of searches) {
    for (const reduction of ['none', 'sleep'] as const) {
      const cpuStart = process.cpuUsage();
      const result: ExploreResult = await explore({
        policy: namedPolicy(search.policy),
        fuzzCase: search.fuzzCase,
        bounds: search.bounds,
        reduction,
        clockMs: () => performance.now(),
      });
      const cpu = process.cpuUsage(cpuStart);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      if (!result.complete || result.violations > 0)
        throw new Error(`explore bench: ${search.name} did not complete clean`);
      figures.push({
        suite: 'explore',
        name: `states/s, 1 job, ${search.name}, reduction ${reduction}`,
        opsPerSecond: result.statesPerSecond ?? 0,
        rmePercent: 0,
        samples: 1,
        extra: {
          states: result.states,
          transitions: result.transitions,
          transitionsSlept: result.transitionsSlept,
          statesPerCpuSecond: Math.round(result.states / cpuSeconds),
          snapshotBytesPerState: result.snapshotBytesPerState,
          stateBytes: result.stateBytes,
        },
      });
    }
  }
  return figures;
}
