import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runSim } from '../../../src/backend/sim/run-sim.js';
import { WorkerFailedError, WorkerHangError } from '../../../src/backend/workers/errors.js';
import { runWorkers } from '../../../src/backend/workers/run-workers.js';
import { policyByName } from '../../../src/policy/index.js';
import { brokenIds, distBuilt, runTimeMs, safeLivenessBoundMs, workersConfig } from './helpers.js';

/**
 * Issue 4: a run ends by exit count or by time, every worker is joined, a worker that throws stops the
 * run with an error naming its hyperthread and step, and a worker that stops answering is reported by
 * the watchdog with every hyperthread's last mode: never a hang.
 */
const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));

describe.skipIf(!distBuilt)('workers backend: lifecycle (seed 1)', () => {
  it('ends at the exit budget and returns the same result shape as the sim', async () => {
    const config = workersConfig({ run: { exits: 2000 } });
    const result = await runWorkers(config, policyByName('asi'), {
      timeMs: runTimeMs,
      livenessBoundMs: safeLivenessBoundMs,
    });
    expect(result.backend).toBe('workers');
    expect(result.exits).toBeGreaterThanOrEqual(2000);
    expect(result.deadlocked).toBe(false);
    expect(result.wallSeconds).toBeGreaterThan(0);
    expect(result.perThread.map((stats) => stats.thread)).toEqual([0, 1]);
    for (const stats of result.perThread) {
      expect(stats.steps).toBeGreaterThan(0);
      // Every spend charges a mode, and the runner publishes the clock after every step and wait: the
      // clock in the buffer is the sum of the modes' cycles.
      const modes =
        stats.guestCycles +
        stats.isolatedCycles +
        stats.fullCycles +
        stats.heldCycles +
        stats.idleCycles +
        stats.vmmCycles;
      expect(stats.clockCycles).toBeGreaterThan(0);
      expect(stats.clockCycles).toBeCloseTo(modes, 3);
    }
    expect(brokenIds(result)).toEqual([]);
    const sim = runSim(workersConfig({ run: { exits: 50 } }), policyByName('asi'));
    expect(Object.keys(result).sort()).toEqual(Object.keys(sim).sort());
  });

  it('ends by time when the exit budget is out of reach', async () => {
    const config = workersConfig({ run: { exits: 100_000_000 } });
    // The control thread tells the exits so far as it watches (a progress bar's in-run share): never
    // going back, never past the run's own count. (How many times it tells depends on timing.)
    const told: number[] = [];
    const result = await runWorkers(config, policyByName('asi'), {
      timeMs: 200,
      onProgress: (exits) => told.push(exits),
    });
    expect(result.exits).toBeGreaterThan(0);
    expect(result.exits).toBeLessThan(100_000_000);
    for (const [index, exits] of told.entries()) {
      expect(exits).toBeGreaterThanOrEqual(index === 0 ? 0 : told[index - 1]);
      expect(exits).toBeLessThanOrEqual(result.exits);
    }
  });

  it('runs sibling 0 of each core only under nosmt', async () => {
    const config = workersConfig({ run: { exits: 500 } });
    const result = await runWorkers(config, policyByName('nosmt'), { timeMs: runTimeMs });
    expect(result.perThread[0].steps).toBeGreaterThan(0);
    expect(result.perThread[1].steps).toBe(0);
  });

  it('imports a user policy module in every worker', async () => {
    const config = workersConfig({ run: { exits: 500 } });
    const result = await runWorkers(config, { module: fixture('user-policy.mjs') }, { timeMs: runTimeMs });
    expect(result.policy).toBe('user-asi-no-barrier');
    expect(result.exits).toBeGreaterThanOrEqual(500);
  });

  it('stops the run when one worker throws, naming the hyperthread and the step', async () => {
    const config = workersConfig({ run: { exits: 100_000_000 } });
    const failure = await runWorkers(
      config,
      { module: fixture('crash-policy.mjs') },
      { timeMs: runTimeMs },
    ).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(WorkerFailedError);
    const error = failure as WorkerFailedError;
    expect(error.thread).toBe(1);
    expect(error.step).toBeGreaterThan(0);
    // The phase the step began in: an entry runs into the barrier (mayEnter) within one step.
    expect(['entry', 'barrier']).toContain(error.phase);
    expect(error.message).toMatch(
      /hyperthread ht1 failed at step \d+ \(phase \w+\): PolicyHookError: policy crash-at-entry: hook mayEnter threw: planted crash/,
    );
  });

  it("reports a worker that stops answering, with every hyperthread's last mode, and terminates it", async () => {
    const config = workersConfig({ run: { exits: 100_000_000 } });
    const failure = await runWorkers(
      config,
      { module: fixture('hang-policy.mjs') },
      { timeMs: runTimeMs, watchdogMs: 500 },
    ).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(WorkerHangError);
    const error = failure as WorkerHangError;
    expect(error.threads).toContain(1);
    expect(error.snapshots.map((snapshot) => snapshot.thread)).toEqual([0, 1]);
    expect(['entry', 'barrier']).toContain(error.snapshots[1].phase);
    expect(error.message).toMatch(/ht0 \(core 0\): mode \w+/);
    expect(error.message).toMatch(/ht1 \(core 0\): mode \w+, phase (entry|barrier)/);
  });
});
