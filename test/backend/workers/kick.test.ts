import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { describe, expect, it } from 'vitest';
import type { KickDriverSetup } from '../../../src/backend/workers/kick-bench.js';
import type { RoundTripBatch } from '../../../src/backend/workers/ping-pong.js';
import { WorkersRun, workerScriptPath } from '../../../src/backend/workers/run-workers.js';
import { Mode, modeOf } from '../../../src/cpu/modes.js';
import { Vector } from '../../../src/kick/ipi.js';
import { CoreField, coreFieldIndex, ThreadStat, threadStatIndex } from '../../../src/memory/layout.js';
import { policyByName } from '../../../src/policy/index.js';
import { brokenIds, distBuilt, runTimeMs, safeLivenessBoundMs, waitUntil, workersConfig } from './helpers.js';

/**
 * Issue 4: a kick is Atomics.or of the pending bit plus a notify, and a hyperthread running guest
 * steps in its own worker leaves the guest when it sees it. B runs on sibling 1; sibling 0 has no vCPU,
 * so the test (or the benchmark's driver worker) plays the kicker there.
 */
const kickConfig = () =>
  workersConfig(
    {
      machine: { cores: 1, smt: 2, vms: [{ vcpus: 1, guestMemoryMiB: 1, pin: [1] }] },
      // No workload exits: B leaves the guest only when kicked.
      workload: { mix: 'all-fast', exitIntervalCycles: 1e15 },
      run: { exits: 100_000_000 },
    },
    // The test ends the run; B's guest never exits on its own.
    { endsByTime: true },
  );

describe.skipIf(!distBuilt)('workers backend: kicks (seed 1)', () => {
  it('a kick sent to a hyperthread in the guest makes it leave the guest', async () => {
    const run = await WorkersRun.start(kickConfig(), policyByName('asi'), {
      timeMs: runTimeMs,
      livenessBoundMs: safeLivenessBoundMs,
    });
    const { machine } = run;
    const coreIndex = coreFieldIndex(machine.layout, 0, CoreField.state);
    const kicksReceived = () => machine.f64[threadStatIndex(machine.layout, 1, ThreadStat.kicksReceived)];
    try {
      await waitUntil(
        () => modeOf(Atomics.load(machine.i32, coreIndex), 1) === Mode.guest,
        'ht1 in the guest',
      );
      expect(kicksReceived()).toBe(0);
      run.send(1, Vector.kick);
      await waitUntil(() => kicksReceived() >= 1, 'ht1 to take the kick exit');
    } finally {
      await run.waitForEnd(0);
      const result = await run.finish();
      expect(result.kickExits).toBeGreaterThanOrEqual(1);
      expect(result.exits).toBe(0);
      expect(brokenIds(result)).toEqual([]);
    }
  });

  it('the benchmark driver kicks a real hyperthread out of the guest, round trip after round trip', async () => {
    const run = await WorkersRun.start(kickConfig(), policyByName('asi'), {
      timeMs: runTimeMs,
      livenessBoundMs: safeLivenessBoundMs,
    });
    const setup: KickDriverSetup = {
      machineBuffer: run.machine.buffer,
      controlBuffer: run.control.buffer,
      driverThread: 0,
      targetThread: 1,
      spinChecks: 1000,
      waitTimeoutMs: 5,
      tripTimeoutMs: runTimeMs,
    };
    const driver = new Worker(workerScriptPath('kick-bench.worker'), { workerData: setup });
    const remote = Comlink.wrap<{
      roundTrips(count: number, maxMs?: number): RoundTripBatch;
      release(): void;
    }>(nodeEndpoint(driver));
    try {
      const batch = await remote.roundTrips(50, runTimeMs);
      expect(batch.trips).toBe(50);
      expect(batch.bracketedTrips).toBe(50);
      expect(batch.bracketedNs).toBeGreaterThan(0);
      await remote.release();
    } finally {
      remote[Comlink.releaseProxy]();
      await driver.terminate();
      await run.waitForEnd(0);
      const result = await run.finish();
      // 50 warm-up trips and 50 timed ones, each one kick exit (and any kick sent again counted apart).
      expect(result.kickExits).toBeGreaterThanOrEqual(100);
      expect(brokenIds(result)).toEqual([]);
    }
  });
});
