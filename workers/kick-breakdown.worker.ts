// One side of the kick breakdown benchmark (bench/kick-breakdown.ts): the target answers until stopped;
// the driver exposes `roundTrips` over comlink and times them.
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { BreakdownDriver, type BreakdownLevel, runBreakdownTarget } from '../bench/kick-breakdown.js';

interface BreakdownSetup {
  buffer: SharedArrayBuffer;
  role: 'driver' | 'target';
  level: BreakdownLevel;
}

if (parentPort === null) throw new Error('kick-breakdown.worker must run as a worker thread');
const setup = workerData as BreakdownSetup;
const i32 = new Int32Array(setup.buffer);
if (setup.role === 'target') {
  parentPort.postMessage({ answered: runBreakdownTarget(i32, setup.level) });
  parentPort.close();
} else {
  const driver = new BreakdownDriver(i32, setup.level);
  Comlink.expose(
    {
      roundTrips: (count: number, maxMs?: number, warmup?: number) => driver.roundTrips(count, maxMs, warmup),
      stop: () => driver.stop(),
    },
    nodeEndpoint(parentPort),
  );
}
