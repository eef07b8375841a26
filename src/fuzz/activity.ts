/**
 * A pool task's activity words, in a small SharedArrayBuffer the task carries (piscina clones the task,
 * and a SharedArrayBuffer crosses shared): the worker counts each case or shrink run it starts and
 * publishes the policy hook running now (policy-module.ts `trackHooks`); the executor's watchdog on the
 * main thread reads them. A count that stops moving for the per-case time limit is a hang, and the
 * words say which case and which hook.
 */
export const ActivityWord = {
  /** Cases (or shrink runs) started; 0 while the worker still loads the policy. */
  progress: 0,
  /** The user hook running now (its id, policy-module.ts `hookNameOf`), 0 for none. */
  hook: 1,
  /** Which case of a run task runs now (its index in `caseSeeds`). */
  ordinal: 2,
  /** `TaskStage`: whether the task started, and whether its policy is loaded. */
  stage: 3,
  count: 4,
} as const;

/**
 * A task waits in the pool's queue (or for a new worker to start) in `queued`: no limit applies, the
 * task ahead of it has its own watchdog. `loading` counts against the module load limit, `running`
 * against the per-case limit.
 */
export const TaskStage = { queued: 0, loading: 1, running: 2 } as const;

/** The worker side: the task starts (its policy is loaded next). */
export function activityLoading(activity: Int32Array | null): void {
  if (activity !== null) Atomics.store(activity, ActivityWord.stage, TaskStage.loading);
}

export function newActivity(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(ActivityWord.count * Int32Array.BYTES_PER_ELEMENT));
}

/** The worker side: a case or run starts (`ordinal` its index in the task). */
export function activityStarts(activity: Int32Array | null, ordinal = 0): void {
  if (activity === null) return;
  Atomics.store(activity, ActivityWord.stage, TaskStage.running);
  Atomics.store(activity, ActivityWord.ordinal, ordinal);
  Atomics.add(activity, ActivityWord.progress, 1);
}

/**
 * The worker side: a long run moved on (a bench run's progress, every 65,536 sim steps): the
 * watchdog then sees a run that works, however long it takes, and stops only one that is stuck.
 */
export function activityProgresses(activity: Int32Array | null): void {
  if (activity !== null) Atomics.add(activity, ActivityWord.progress, 1);
}
