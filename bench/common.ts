import { cpus } from 'node:os';
import { Bench } from 'tinybench';

/**
 * Shared by the suites in bench/: a tinybench instance with the budget this machine can afford, and
 * the conversion from tinybench's per-call statistics to operations per second for tasks that batch
 * many operations per call (one walk takes tens of nanoseconds: far below timer resolution alone).
 */
export interface BenchFigure {
  suite: string;
  name: string;
  opsPerSecond: number;
  /** Relative margin of error of the per-call latency, in percent. */
  rmePercent: number;
  samples: number;
  /** Anything else a suite wants to record (memory bytes, ratios, thread counts). */
  extra?: Record<string, number | string>;
}

export function newBench(timeMs: number = benchTimeMs()): Bench {
  return new Bench({ time: timeMs, warmupTime: Math.min(200, timeMs / 2), iterations: 10 });
}

/** `ASI_EMU_BENCH_TIME_MS` shortens or lengthens every task (default 500 ms). */
export function benchTimeMs(): number {
  const fromEnv = Number(process.env.ASI_EMU_BENCH_TIME_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 500;
}

/** Adds a task whose one call performs `batch` operations. */
export function addBatchTask(bench: Bench, name: string, batch: number, operation: () => void): void {
  bench.add(name, () => {
    for (let i = 0; i < batch; i++) operation();
  });
  batchSizes.set(name, batch);
}

const batchSizes = new Map<string, number>();

/** Operations per second of every task of a bench that has run. */
export function figuresOf(bench: Bench, suite: string): BenchFigure[] {
  return bench.tasks.map((task) => {
    const result = task.result;
    if (result.state !== 'completed') {
      throw new Error(`benchmark task ${task.name} did not complete: ${result.state}`);
    }
    const batch = batchSizes.get(task.name) ?? 1;
    return {
      suite,
      name: task.name,
      opsPerSecond: (batch * 1000) / result.period,
      rmePercent: result.latency.rme,
      samples: result.latency.samplesCount,
    };
  });
}

export function machineDescription(): { cpuModel: string; cpus: number; node: string; platform: string } {
  const list = cpus();
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cpus: list.length,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}
