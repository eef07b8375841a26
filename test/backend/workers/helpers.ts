import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '../../../src/backend/result.js';
import {
  type ParseRunOptions,
  parseRunConfig,
  type RunConfig,
  type RunConfigInput,
} from '../../../src/config/run-config.js';

/**
 * Shared by the workers-backend tests. They start real worker threads from dist/ (Node 20 cannot
 * start a .ts worker): `npm test` builds first. Every wait here is bounded; none of them is a timing
 * assertion (the CI machine has 2 CPUs and may be slow: a bound only turns a hang into a failure).
 */
export const builtWorker = fileURLToPath(
  new URL('../../../dist/workers/hyperthread.worker.js', import.meta.url),
);
export const distBuilt = existsSync(builtWorker);

/** A small workers config: 1 core x 2 threads, one VM of 2 vCPUs; overrides merge per section. */
export function workersConfig(overrides: RunConfigInput = {}, options: ParseRunOptions = {}): RunConfig {
  return parseRunConfig(
    {
      machine: {
        cores: 1,
        smt: 2,
        memoryMiB: 40,
        vms: [{ vcpus: 2, guestMemoryMiB: 1 }],
        ...(overrides.machine as object),
      },
      workload: { mix: 'sysbench-cpu', ...(overrides.workload as object) },
      costs: overrides.costs ?? {},
      run: { exits: 2000, seed: 1, ...(overrides.run as object) },
    },
    options,
  );
}

/** Polls `condition` every few ms; throws (naming `what`) if it does not hold within `boundMs`. */
export async function waitUntil(condition: () => boolean, what: string, boundMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > boundMs) throw new Error(`waited ${boundMs} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export function brokenIds(result: RunResult): string[] {
  return Object.entries(result.violations)
    .filter(([, count]) => count > 0)
    .map(([id]) => id);
}

/** Real-time bounds generous enough for a loaded 2-CPU machine: they catch hangs, not slowness. */
export const runTimeMs = 60_000;
/** INV-9 bound for runs that must show no violation: a lost wake-up is forever, a busy CPU is not. */
export const safeLivenessBoundMs = 10_000;
