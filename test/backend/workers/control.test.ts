import { describe, expect, it } from 'vitest';
import { WorkersRun } from '../../../src/backend/workers/run-workers.js';
import { ThreadField, ThreadStat, threadFieldIndex, threadStatIndex } from '../../../src/memory/layout.js';
import { policyByName } from '../../../src/policy/index.js';
import { brokenIds, distBuilt, runTimeMs, safeLivenessBoundMs, waitUntil, workersConfig } from './helpers.js';

/**
 * Issue 4: real worker threads attach to one machine buffer and answer the comlink control plane
 * (state, pause, resume, stop); machine data is read from the buffer, never from messages.
 */
describe.skipIf(!distBuilt)('workers backend: attach and control (seed 1)', () => {
  it('attaches every hyperthread to the one buffer; state, pause, resume and stop answer', async () => {
    const config = workersConfig({
      machine: { cores: 2, smt: 2, vms: [{ vcpus: 4, guestMemoryMiB: 1 }] },
      run: { exits: 100_000_000 },
    });
    const run = await WorkersRun.start(config, policyByName('asi'), {
      timeMs: runTimeMs,
      livenessBoundMs: safeLivenessBoundMs,
    });
    const { machine } = run;
    const steps = (thread: number) => machine.f64[threadStatIndex(machine.layout, thread, ThreadStat.steps)];
    try {
      // Each worker built its hyperthread over the shared buffer: what it wrote there is seen here.
      for (const thread of [0, 1, 2, 3]) {
        expect(Atomics.load(machine.i32, threadFieldIndex(machine.layout, thread, ThreadField.vmId))).toBe(0);
        expect(Atomics.load(machine.i32, threadFieldIndex(machine.layout, thread, ThreadField.vcpu))).toBe(
          thread,
        );
      }
      await waitUntil(() => run.workloadExits > 0, 'the first workload exits');
      const states = await run.states();
      expect(states.map((state) => state.thread)).toEqual([0, 1, 2, 3]);
      expect(states.map((state) => state.core)).toEqual([0, 0, 1, 1]);

      const paused = await run.pause();
      expect(paused.map((state) => state.loop)).toEqual(['parked', 'parked', 'parked', 'parked']);
      const frozen = [0, 1, 2, 3].map(steps);
      const again = await run.states();
      expect(again.map((state) => state.steps)).toEqual(frozen);
      expect([0, 1, 2, 3].map(steps)).toEqual(frozen);

      await run.resume();
      await waitUntil(
        () => [0, 1, 2, 3].every((thread) => steps(thread) > frozen[thread]),
        'steps after resume',
      );
    } finally {
      await run.waitForEnd(0);
      const result = await run.finish();
      expect(result.backend).toBe('workers');
      expect(run.loopStates()).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
      expect(brokenIds(result)).toEqual([]);
    }
  });

  it('refuses a request after the run finished, with a typed error', async () => {
    const run = await WorkersRun.start(workersConfig({ run: { exits: 200 } }), policyByName('asi'), {
      timeMs: runTimeMs,
    });
    await run.waitForEnd();
    await run.finish();
    await expect(run.pause()).rejects.toMatchObject({ name: 'NotAllowedError' });
    await expect(run.finish()).rejects.toMatchObject({ name: 'NotAllowedError' });
  });
});
