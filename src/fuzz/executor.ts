import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { assert } from '../assert.js';
import {
  type CaseRun,
  type RunTask,
  runTask,
  type ShrinkOutcome,
  type ShrinkTask,
  shrinkTask,
} from './tasks.js';

/**
 * Who does a campaign's tasks: this thread (`inProcessExecutor`, for tests and library use) or a
 * piscina pool of worker threads (`poolExecutor`, the CLI). Cases are independent and draw everything
 * from their seed, so both give the same results; only the speed differs.
 */
export interface FuzzExecutor {
  /** Run tasks worth keeping in flight (enough to keep every worker busy while results come back). */
  readonly slots: number;
  /** Worker threads (1 for this thread). */
  readonly jobs: number;
  run(task: RunTask): Promise<CaseRun[]>;
  shrink(task: ShrinkTask): Promise<ShrinkOutcome>;
  close(): Promise<void>;
}

export function inProcessExecutor(): FuzzExecutor {
  return {
    slots: 1,
    jobs: 1,
    run: (task) => runTask(task),
    shrink: (task) => shrinkTask(task),
    close: async () => {},
  };
}

/**
 * The worker file: dist/workers/fuzz-case.worker.js next to this module's build (workers run from
 * dist/ only: Node 20 cannot start a .ts worker). From src/ (vitest), the built one in dist/.
 */
export function fuzzWorkerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const distMarker = `${sep}dist${sep}src${sep}`;
  const root = here.includes(distMarker)
    ? here.slice(0, here.lastIndexOf(distMarker) + `${sep}dist`.length)
    : join(here, '..', '..', 'dist');
  return join(root, 'workers', 'fuzz-case.worker.js');
}

export interface PoolOptions {
  jobs: number;
  /** Override the worker file (tests). */
  workerPath?: string;
}

export function poolExecutor(options: PoolOptions): FuzzExecutor {
  assert(Number.isInteger(options.jobs) && options.jobs >= 1, 'a pool has at least one job');
  const filename = options.workerPath ?? fuzzWorkerPath();
  assert(existsSync(filename), `fuzz worker ${filename} exists (run \`npm run build\` first)`);
  const pool = new Piscina({
    filename,
    minThreads: options.jobs,
    maxThreads: options.jobs,
    // Tasks are CPU-bound and return: the default 'sync' atomics park an idle worker cheaply.
    idleTimeout: 60_000,
  });
  return {
    // Two tasks per worker: one running, one queued behind it, so a worker never waits for the main
    // thread between tasks.
    slots: options.jobs * 2,
    jobs: options.jobs,
    run: (task) => pool.run(task) as Promise<CaseRun[]>,
    shrink: (task) => pool.run(task) as Promise<ShrinkOutcome>,
    close: () => pool.destroy(),
  };
}
