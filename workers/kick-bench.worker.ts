// Hyperthread A of the sibling-kick benchmark (src/backend/workers/kick-bench.ts): attaches to the
// machine of a running `workers` run and exposes the timed round trips over comlink.
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { KickDriver, type KickDriverSetup } from '../src/backend/workers/kick-bench.js';

if (parentPort === null) throw new Error('kick-bench.worker must run as a worker thread');
const driver = new KickDriver(workerData as KickDriverSetup);
Comlink.expose(
  {
    roundTrips: (count: number, maxMs?: number, warmup?: number) => driver.roundTrips(count, maxMs, warmup),
    release: () => driver.release(),
  },
  nodeEndpoint(parentPort),
);
