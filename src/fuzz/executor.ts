import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { assert } from '../assert.js';
import { policyModuleLoadTimeoutMs } from '../backend/workers/policy-probe.js';
import { ConfigError } from '../errors.js';
import { hookNameOf } from '../policy/policy-module.js';
import { ActivityWord, newActivity, TaskStage } from './activity.js';
import { type FuzzCase, hangVerdict } from './fuzz-case.js';
import { fuzzWallLimits } from './limits.js';
import {
  type CaseRun,
  type FuzzTask,
  type ReplayRun,
  type ReplayTask,
  type RunTask,
  replayTask,
  runTask,
  type ShrinkOutcome,
  type ShrinkTask,
  type SimRunOutcome,
  type SimRunTask,
  shrinkTask,
  simRunTask,
} from './tasks.js';

/**
 * Who does a campaign's tasks: this thread (`inProcessExecutor`, for tests and library use) or a
 * piscina pool of worker threads (`poolExecutor`, the CLI). Cases are independent and draw everything
 * from their seed, so both give the same results; only the speed differs, and only the pool can stop
 * a case that hangs (a user hook in an endless loop): it runs every task under a watchdog.
 */
export interface FuzzExecutor {
  /** Run tasks worth keeping in flight (enough to keep every worker busy while results come back). */
  readonly slots: number;
  /** Worker threads (1 for this thread). */
  readonly jobs: number;
  /**
   * A case that hangs comes back as a `hang` verdict; the other cases of the task are run again
   * while `mayContinue` says so, else left out (the result then holds some of the task's cases).
   */
  run(task: RunTask, control?: TaskControl): Promise<CaseRun[]>;
  /** A shrink run that hangs stops the shrink (`stopped: 'hang'`). */
  shrink(task: ShrinkTask, control?: TaskControl): Promise<ShrinkOutcome>;
  /** A replay that hangs comes back as a `hang` verdict. */
  replay(task: ReplayTask): Promise<ReplayRun>;
  /** A bench run of a user's policy; one that stops making progress comes back as a hang error. */
  simRun(task: SimRunTask): Promise<SimRunOutcome>;
  close(): Promise<void>;
}

export interface TaskControl {
  /** Aborts the task (Ctrl-C): the promise rejects. */
  signal?: AbortSignal;
  /**
   * Whether new work may start (false once a time-boxed campaign's time is up): a task still queued
   * then is dropped (it comes back empty), and the cases after a hang are not run again.
   */
  mayContinue?: () => boolean;
}

export function inProcessExecutor(): FuzzExecutor {
  return {
    slots: 1,
    jobs: 1,
    run: (task) => runTask(task),
    shrink: (task) => shrinkTask(task),
    replay: (task) => replayTask(task),
    simRun: (task) => simRunTask(task),
    close: async () => {},
  };
}

/**
 * The worker file: dist/workers/fuzz-case.worker.js next to this module's build, dist/chunks/ (workers
 * run from dist/ only: Node 20 cannot start a .ts worker). From src/ (vitest), the built one in dist/.
 */
export function fuzzWorkerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dist = basename(dirname(here)) === 'dist' ? dirname(here) : join(here, '..', '..', 'dist');
  return join(dist, 'workers', 'fuzz-case.worker.js');
}

export interface PoolOptions {
  jobs: number;
  /** A case that makes no progress this long is a hang (fuzzWallLimits.caseTimeLimitMsDefault). */
  caseTimeLimitMs?: number;
  /** A worker that has not loaded the policy module this long is stuck (policy-probe.ts's limit). */
  loadTimeLimitMs?: number;
  /** Override the worker file (tests). */
  workerPath?: string;
}

/** What the watchdog saw when it stopped a task. */
interface Hang {
  /** Index in the task's `caseSeeds` of the case that hung. */
  ordinal: number;
  hook: string | null;
  /** The task had not started a case: the worker was still loading the policy module. */
  loading: boolean;
}

export function poolExecutor(options: PoolOptions): FuzzExecutor {
  assert(Number.isInteger(options.jobs) && options.jobs >= 1, 'a pool has at least one job');
  const limitMs = options.caseTimeLimitMs ?? fuzzWallLimits.caseTimeLimitMsDefault;
  const loadLimitMs = options.loadTimeLimitMs ?? policyModuleLoadTimeoutMs();
  assert(limitMs > 0, 'a positive case time limit');
  const filename = options.workerPath ?? fuzzWorkerPath();
  assert(existsSync(filename), `fuzz worker ${filename} exists (run \`npm run build\` first)`);
  const pool = new Piscina({
    filename,
    minThreads: options.jobs,
    maxThreads: options.jobs,
    // Tasks are CPU-bound and return: the default 'sync' atomics park an idle worker cheaply.
    idleTimeout: 60_000,
  });

  /**
   * Runs a task under the watchdog: it polls the task's progress count `watchdogPollsPerLimit` times
   * per limit, and a count that did not move for a whole limit aborts the task (piscina terminates the
   * worker running it and starts another). `signal` (Ctrl-C) aborts it too; that rejects.
   */
  async function watched<T>(
    task: FuzzTask,
    control: TaskControl = {},
  ): Promise<{ value: T } | { hang: Hang } | { dropped: true }> {
    const { signal, mayContinue } = control;
    const activity = newActivity();
    const controller = new AbortController();
    let hang: Hang | null = null;
    let dropped = false;
    let progressSeen = -1;
    let stageSeen: number = TaskStage.queued;
    let pollsStill = 0;
    const polls = fuzzWallLimits.watchdogPollsPerLimit;
    const pollMs = Math.min(limitMs, loadLimitMs) / polls;
    const timer = setInterval(() => {
      const stage = Atomics.load(activity, ActivityWord.stage);
      const progress = Atomics.load(activity, ActivityWord.progress);
      if (stage === TaskStage.queued && mayContinue?.() === false) {
        dropped = true;
        controller.abort();
        return;
      }
      if (stage === TaskStage.queued || progress !== progressSeen || stage !== stageSeen) {
        progressSeen = progress;
        stageSeen = stage;
        pollsStill = 0;
        return;
      }
      pollsStill++;
      const stillMs = pollsStill * pollMs;
      if (stillMs < (stage === TaskStage.loading ? loadLimitMs : limitMs)) return;
      hang = {
        ordinal: Atomics.load(activity, ActivityWord.ordinal),
        hook: hookNameOf(Atomics.load(activity, ActivityWord.hook)),
        loading: stage === TaskStage.loading,
      };
      controller.abort();
    }, pollMs);
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort);
    try {
      const value = (await pool.run(
        { ...task, activity: activity.buffer },
        { signal: controller.signal },
      )) as T;
      return { value };
    } catch (error) {
      if (dropped && signal?.aborted !== true) return { dropped: true };
      if (hang === null) throw error;
      const stopped = hang as Hang;
      if (stopped.loading) {
        throw new ConfigError(
          '--policy-module',
          `a module whose import finishes within ${loadLimitMs / 1000} s`,
          `${task.policy.module ?? task.policy.name} (a pool worker was still loading it)`,
        );
      }
      return { hang: stopped };
    } finally {
      clearInterval(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async function run(task: RunTask, control: TaskControl = {}): Promise<CaseRun[]> {
    const outcome = await watched<CaseRun[]>(task, control);
    if ('value' in outcome) return outcome.value;
    if ('dropped' in outcome) return [];
    // The cases before the one that hung ran in the lost worker: run them again (a case is a pure
    // function of its seed), and the ones after it, unless no new work may start.
    const { ordinal, hook } = outcome.hang;
    const seeds = task.caseSeeds;
    const again = (caseSeeds: number[]) =>
      caseSeeds.length > 0 && control.mayContinue?.() !== false ? run({ ...task, caseSeeds }, control) : [];
    const before = await again(seeds.slice(0, ordinal));
    const after = await again(seeds.slice(ordinal + 1));
    const caseSeed = seeds[ordinal];
    // Its replay file needs the case: drawn from its seed in a job, as every case is.
    const drawn = await watched<FuzzCase>({
      kind: 'case',
      policy: task.policy,
      caseSeed,
      limits: task.limits,
    });
    assert('value' in drawn, 'drawing a case neither hangs nor is dropped');
    const hung: CaseRun = { caseSeed, verdict: hangVerdict(hook, limitMs), fuzzCase: drawn.value };
    return [...before, hung, ...after];
  }

  return {
    // Two tasks per worker: one running, one queued behind it, so a worker never waits for the main
    // thread between tasks.
    slots: options.jobs * 2,
    jobs: options.jobs,
    run,
    shrink: async (task, control) => {
      const outcome = await watched<ShrinkOutcome>(task, control);
      if ('value' in outcome) return outcome.value;
      assert(!('dropped' in outcome), 'a shrink is never dropped (it gets no mayContinue)');
      return { stopped: 'hang', detail: hangVerdict(outcome.hang.hook, limitMs).error ?? 'hang' };
    },
    replay: async (task) => {
      const outcome = await watched<ReplayRun>(task);
      if ('value' in outcome) return outcome.value;
      assert(!('dropped' in outcome), 'a replay is never dropped');
      return { verdict: hangVerdict(outcome.hang.hook, limitMs), result: null, events: [] };
    },
    simRun: async (task) => {
      const outcome = await watched<SimRunOutcome>(task);
      if ('value' in outcome) return outcome.value;
      assert(!('dropped' in outcome), 'a sim run is never dropped');
      const { error, hook } = hangVerdict(outcome.hang.hook, limitMs);
      return { error: error ?? 'hang', hook, errorStack: null };
    },
    close: () => pool.destroy(),
  };
}
