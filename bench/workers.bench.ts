import {
  type KickFigures,
  runWorkersBenchmarks,
  type WorkersBenchOptions,
  type WorkersBenchReport,
} from '../src/backend/workers/benchmarks.js';
import { type BenchFigure, benchTimeMs } from './common.js';

/**
 * The `workers` backend suite (issue 4): sibling-kick round trip next to the raw Atomics ping-pong of
 * this machine, exit throughput on all-fast, guest steps per second per policy and mix, and scaling.
 * The measurements live in src/backend/workers/benchmarks.ts (so `asi-emu bench --backend workers`
 * runs the same code); this file turns its report into the bench runner's figures. Imported by the
 * bench runner; nothing runs at import.
 */
export const workersBenchPolicies = [
  'none',
  'nosmt',
  'l1d-flush',
  'coschedule',
  'asi',
  'asi-ipi-only',
  'asi-stun',
];
export const workersBenchMixes = ['sysbench-cpu', 'all-fast', 'all-slow', 'idle-tracing'];

export async function runWorkersBench(options: WorkersBenchOptions = {}): Promise<BenchFigure[]> {
  const report = await runWorkersBenchmarks({
    kick: true,
    exits: true,
    policies: workersBenchPolicies,
    mixes: workersBenchMixes,
    scaling: [1, 2, 4, 8],
    timeMs: benchTimeMs(),
    log: (line) => process.stdout.write(`  ${line}\n`),
    ...options,
  });
  return figuresOfReport(report);
}

function kickFigure(name: string, kick: KickFigures): BenchFigure {
  return {
    suite: 'workers',
    name,
    opsPerSecond: kick.kicksPerSecond,
    rmePercent: kick.rmePercent,
    samples: kick.batches,
    extra: {
      roundTripNs: Math.round(kick.roundTripNs),
      rawSpinRoundTripNs: Math.round(kick.rawSpinRoundTripNs),
      rawWaitRoundTripNs: Math.round(kick.rawWaitRoundTripNs),
      ratio: Number(kick.ratio.toFixed(2)),
      p50Ns: Math.round(kick.p50Ns),
      p99Ns: Math.round(kick.p99Ns),
      ratioP99: Number(kick.ratioP99.toFixed(2)),
      baseline: kick.baseline,
      threads: kick.threads,
      cpus: kick.cpus,
    },
  };
}

/** One figure per measurement of a workers report (ops/s; the rest in `extra`). */
export function figuresOfReport(report: WorkersBenchReport): BenchFigure[] {
  const figures: BenchFigure[] = [];
  const plain = (
    name: string,
    opsPerSecond: number,
    extra?: Record<string, number | string>,
  ): BenchFigure => ({
    suite: 'workers',
    name,
    opsPerSecond,
    rmePercent: 0,
    samples: 0,
    ...(extra ? { extra } : {}),
  });
  if (report.kick) {
    figures.push(plain('raw spin ping-pong round trips', 1e9 / report.kick.rawSpinRoundTripNs));
    figures.push(plain('raw wait/notify ping-pong round trips', 1e9 / report.kick.rawWaitRoundTripNs));
    figures.push(kickFigure(`sibling kick round trips (${report.kick.threads} threads)`, report.kick));
  }
  if (report.kickOversubscribed) {
    figures.push(
      kickFigure(
        `sibling kick round trips (${report.kickOversubscribed.threads} threads)`,
        report.kickOversubscribed,
      ),
    );
  }
  if (report.exits) {
    figures.push(
      plain('exits per hyperthread (all-fast)', report.exits.exitsPerSecondPerThread, {
        monitored: Math.round(report.exits.exitsPerSecondPerThreadMonitored),
        threads: report.exits.threads,
        cpus: report.exits.cpus,
      }),
    );
  }
  for (const entry of report.policies) {
    figures.push(
      plain(`guest steps: ${entry.policy} / ${entry.mix}`, entry.guestStepsPerSecond, {
        exitsPerSecond: Math.round(entry.exitsPerSecond),
        threads: entry.threads,
        violations: entry.violations,
      }),
    );
  }
  for (const entry of report.scaling) {
    figures.push(
      plain(`scaling: exits, ${entry.cores} core(s) x ${entry.smt}`, entry.exitsPerSecond, {
        threads: entry.threads,
        cpus: entry.cpus,
        fits: String(entry.fits),
        linearFraction: Number(entry.linearFraction.toFixed(2)),
      }),
    );
  }
  return figures;
}
