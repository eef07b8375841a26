/**
 * Operational failures of the `workers` backend (STYLE.md habit 6: typed errors for operational
 * failures; asserts for programmer errors). Each says which hyperthread, and what to do about it.
 */

/** One hyperthread as the control thread last saw it in the buffers (for hang and failure reports). */
export interface HyperthreadSnapshot {
  thread: number;
  core: number;
  /** Its nibble of the core word (offline when no vCPU runs there). */
  mode: string;
  /** Phase of the state machine, loop state of its worker, heartbeat age; '-' for offline threads. */
  phase: string;
  loop: string;
  steps: number;
  heartbeatAgeMs: number;
}

export function describeSnapshots(snapshots: readonly HyperthreadSnapshot[]): string {
  return snapshots
    .map(
      (snapshot) =>
        `  ht${snapshot.thread} (core ${snapshot.core}): mode ${snapshot.mode}, phase ${snapshot.phase}, ` +
        `worker ${snapshot.loop}, step ${snapshot.steps}, last heartbeat ${Math.round(snapshot.heartbeatAgeMs)} ms ago`,
    )
    .join('\n');
}

/** A hyperthread's worker threw: the run was stopped. */
export class WorkerFailedError extends Error {
  override name = 'WorkerFailedError';
  constructor(
    readonly thread: number,
    readonly step: number,
    readonly phase: string,
    readonly causeMessage: string,
    readonly workerStack: string,
    readonly snapshots: readonly HyperthreadSnapshot[] = [],
  ) {
    super(
      `hyperthread ht${thread} failed at step ${step} (phase ${phase}): ${causeMessage}; the run was stopped` +
        (snapshots.length > 0 ? `\nhyperthreads:\n${describeSnapshots(snapshots)}` : ''),
    );
  }
}

/** The watchdog saw hyperthreads whose worker stopped answering (no heartbeat): they were terminated. */
export class WorkerHangError extends Error {
  override name = 'WorkerHangError';
  constructor(
    readonly threads: readonly number[],
    readonly silentMs: number,
    readonly snapshots: readonly HyperthreadSnapshot[],
  ) {
    super(
      `hyperthread${threads.length > 1 ? 's' : ''} ${threads.map((thread) => `ht${thread}`).join(', ')} ` +
        `stopped answering (no heartbeat for ${Math.round(silentMs)} ms; a policy hook that never returns?); ` +
        `the run was stopped and its workers terminated\nhyperthreads:\n${describeSnapshots(snapshots)}`,
    );
  }
}

/** Workers did not come up (missing build, a policy module that fails to load, a timeout). */
export class WorkersStartupError extends Error {
  override name = 'WorkersStartupError';
  constructor(
    readonly thread: number,
    readonly reason: string,
  ) {
    super(`hyperthread ht${thread}'s worker did not start: ${reason}`);
  }
}

/** A control request the worker's loop state does not allow (Firecracker: a typed "not allowed"). */
export class NotAllowedError extends Error {
  override name = 'NotAllowedError';
  constructor(
    readonly request: string,
    readonly state: string,
  ) {
    super(`${request} is not allowed while the worker is ${state}`);
  }
}
