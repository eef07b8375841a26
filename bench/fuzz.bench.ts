import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runCampaign } from '../src/fuzz/campaign.js';
import { type FuzzExecutor, inProcessExecutor, poolExecutor } from '../src/fuzz/executor.js';
import type { BenchFigure } from './common.js';

/**
 * Fuzz throughput (issue 5): cases per second of one campaign, in this thread, on a pool of 1 job,
 * and on pools of 2.. up to the CPU count; the goal is >= 0.9 of linear in jobs. Every configuration
 * runs the same cases (same seed, `asi`: no case fails, so no shrinking) after a warm-up campaign on
 * the same executor (worker start-up and JIT are not what a long campaign pays per case).
 *
 * Each figure also says how many CPUs the process actually got (`cpusUsed`) and the cases per
 * CPU-second: on a shared machine a pool of J jobs may get fewer than J CPUs, and its wall-clock
 * speed-up then says more about the neighbours than about the pool.
 *
 * `ASI_EMU_FUZZ_BENCH_CASES` sets the cases per measurement (default 400).
 */
const seed = 2024;

function casesPerMeasurement(): number {
  const fromEnv = Number(process.env.ASI_EMU_FUZZ_BENCH_CASES);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 400;
}

interface Throughput {
  /** Cases per wall-clock second. */
  rate: number;
  /** Cases per CPU-second of this process (every thread): what the work costs, whoever else runs. */
  perCpuSecond: number;
  /** CPU-seconds per wall second: below `jobs` when other processes take CPUs from the pool. */
  cpusUsed: number;
}

async function measure(executor: FuzzExecutor, cases: number, outDir: string): Promise<Throughput> {
  const campaign = (campaignSeed: number, count: number) =>
    runCampaign({ policy: { name: 'asi' }, seed: campaignSeed, cases: count, outDir, executor });
  await campaign(seed + 1, Math.max(8, Math.ceil(cases / 8)));
  const cpuStart = process.cpuUsage();
  const startMs = performance.now();
  const { summary } = await campaign(seed, cases);
  const seconds = (performance.now() - startMs) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (summary.violations > 0) throw new Error(`asi broke an invariant in the fuzz benchmark (seed ${seed})`);
  return {
    rate: summary.casesRun / seconds,
    perCpuSecond: summary.casesRun / cpuSeconds,
    cpusUsed: cpuSeconds / seconds,
  };
}

export async function runFuzzBench(): Promise<BenchFigure[]> {
  const cases = casesPerMeasurement();
  const cpus = availableParallelism();
  const outDir = mkdtempSync(join(tmpdir(), 'asi-emu-fuzz-bench-'));
  const figures: BenchFigure[] = [];
  const figure = (name: string, measured: Throughput, extra: Record<string, number | string>) =>
    figures.push({
      suite: 'fuzz',
      name,
      opsPerSecond: measured.rate,
      rmePercent: 0,
      samples: 1,
      extra: {
        cases,
        ...extra,
        perCpuSecond: measured.perCpuSecond.toFixed(1),
        cpusUsed: measured.cpusUsed.toFixed(2),
      },
    });
  try {
    figure('cases/s, this thread (no pool)', await measure(inProcessExecutor(), cases, outDir), { jobs: 0 });
    let oneJob = 0;
    for (let jobs = 1; jobs <= cpus; jobs = jobs < cpus ? Math.min(cpus, jobs * 2) : cpus + 1) {
      const executor = poolExecutor({ jobs });
      try {
        const measured = await measure(executor, cases, outDir);
        if (jobs === 1) oneJob = measured.rate;
        const speedup = measured.rate / oneJob;
        figure(`cases/s, pool of ${jobs} job${jobs === 1 ? '' : 's'}`, measured, {
          jobs,
          speedup: speedup.toFixed(2),
          ofLinear: (speedup / jobs).toFixed(2),
        });
      } finally {
        await executor.close();
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  return figures;
}
