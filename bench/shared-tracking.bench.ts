import { Bench } from 'tinybench';
import {
  createTracker,
  type MaterializedWorkload,
  materialize,
  replay,
  type SharedRangeTracker,
  trackerKinds,
  type WorkloadName,
  workload,
  workloadNames,
} from '../src/coco/shared-tracking/index.js';

/**
 * Shared-range tracking: conversions per second and record size of the bitmap, the range list and the
 * interval tree on the boot, dma-churn and hostile workloads, for a 1 GiB guest by default.
 *
 * One task call resets the tracker and replays a whole workload (tens of thousands of updates), so
 * `opsPerSecond` = updates per call / mean call time. `memoryBytes` is the largest the record got
 * during a replay (measured outside the timed runs): the bitmap's is fixed, the others' follow the
 * number of ranges until their bound stops them (`overflowed`).
 */

export interface SharedTrackingFigure {
  tracker: string;
  workload: string;
  opsPerSecond: number;
  memoryBytes: number;
  /** Updates per replay. */
  opsCount: number;
  /** Whether the tracker hit its bound during the workload (always the case for the hostile one). */
  overflowed: boolean;
}

export interface SharedTrackingBenchOptions {
  /** Time budget per task in milliseconds (default: ASI_EMU_BENCH_TIME_MS or 500). */
  readonly timeMs?: number;
  /** Guest size in 4 KiB frames (default 2^18: 1 GiB). */
  readonly gfnCount?: number;
  readonly seed?: number;
  readonly workloads?: readonly WorkloadName[];
}

const gfnCountDefault = 1 << 18;
const seedDefault = 20_210_224;

export async function runSharedTrackingBench(
  options: SharedTrackingBenchOptions = {},
): Promise<SharedTrackingFigure[]> {
  const gfnCount = options.gfnCount ?? gfnCountDefault;
  const seed = options.seed ?? seedDefault;
  const timeMs = options.timeMs ?? timeFromEnvironment();
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs / 2), iterations: 5 });
  const cases: Array<{ name: string; tracker: SharedRangeTracker; work: MaterializedWorkload }> = [];
  for (const workloadName of options.workloads ?? workloadNames) {
    // Generated once, outside the timed runs, so a replay only reads typed arrays.
    const work = materialize(workloadName, workload(workloadName, seed, gfnCount));
    for (const kind of trackerKinds) {
      const tracker = createTracker(kind, gfnCount);
      const name = `${kind} / ${workloadName}`;
      cases.push({ name, tracker, work });
      bench.add(name, () => {
        tracker.reset();
        replay(tracker, work);
      });
    }
  }
  await bench.run();

  return cases.map(({ name, tracker, work }) => {
    const task = bench.getTask(name);
    const result = task?.result;
    if (result === undefined || result.state !== 'completed') {
      throw new Error(`shared-tracking benchmark ${name} did not complete: ${result?.state ?? 'missing'}`);
    }
    const peak = peakReplay(tracker, work);
    return {
      tracker: tracker.kind,
      workload: work.name,
      opsPerSecond: (work.opsCount * 1000) / result.period,
      memoryBytes: peak.memoryBytes,
      opsCount: work.opsCount,
      overflowed: peak.overflowed,
    };
  });
}

/** Replay once more, untimed, watching the record's size after every update. */
function peakReplay(
  tracker: SharedRangeTracker,
  work: MaterializedWorkload,
): { memoryBytes: number; overflowed: boolean } {
  tracker.reset();
  let memoryBytes = tracker.memoryBytes();
  for (let i = 0; i < work.opsCount; i++) {
    if (work.shared[i] === 1) tracker.setShared(work.gfns[i], work.npages[i]);
    else tracker.setPrivate(work.gfns[i], work.npages[i]);
    memoryBytes = Math.max(memoryBytes, tracker.memoryBytes());
  }
  return { memoryBytes, overflowed: tracker.overflowed };
}

function timeFromEnvironment(): number {
  const fromEnv = Number(process.env.ASI_EMU_BENCH_TIME_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 500;
}
