import { createSimMachine, runSim } from '../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../src/config/run-config.js';
import { policies } from '../src/policy/index.js';
import { type BenchFigure, newBench } from './common.js';

/**
 * Sim backend speed: hyperthread steps (events) per second on one thread, with the invariant monitor
 * and the event hash on, as every run has them. Goal (DESIGN.md): 10 million per second.
 */
export async function runSimBench(): Promise<BenchFigure[]> {
  const cases = [
    { policy: 'asi', mix: 'all-fast' },
    { policy: 'asi', mix: 'sysbench-cpu' },
    { policy: 'coschedule', mix: 'sysbench-cpu' },
    { policy: 'none', mix: 'sysbench-cpu' },
  ];
  const bench = newBench();
  const steps = new Map<string, number>();
  for (const { policy, mix } of cases) {
    const config = parseRunConfig({
      machine: { cores: 2, smt: 2, memoryMiB: 48, vms: [{ vcpus: 4, guestMemoryMiB: 2 }] },
      workload: { mix },
      run: { exits: 2000, seed: 1 },
    });
    const machine = createSimMachine(config.machine);
    const name = `sim steps, ${policy} on ${mix} (2 cores x 2, 2000 exits per run)`;
    bench.add(name, () => {
      const result = runSim(config, policies[policy], { machine });
      steps.set(name, result.steps);
    });
  }
  await bench.run();
  return bench.tasks.map((task) => {
    const result = task.result;
    if (result.state !== 'completed')
      throw new Error(`benchmark task ${task.name} did not complete: ${result.state}`);
    const perRun = steps.get(task.name) ?? 0;
    return {
      suite: 'sim',
      name: task.name,
      opsPerSecond: (perRun * 1000) / result.period,
      rmePercent: result.latency.rme,
      samples: result.latency.samplesCount,
      extra: {
        stepsPerRun: perRun,
        runsPerSecond: Number((1000 / result.period).toFixed(1)),
        goalStepsPerSecond: 10_000_000,
      },
    };
  });
}
