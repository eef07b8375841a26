// One side of the raw Atomics ping-pong baseline (src/backend/workers/ping-pong.ts). The pinger exposes
// `roundTrips` over comlink and times them; the ponger answers until the ping word says stop, then exits.
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Pinger, type PingPongOptions, runPonger } from '../src/backend/workers/ping-pong.js';

interface PingPongSetup {
  buffer: SharedArrayBuffer;
  role: 'pinger' | 'ponger';
  options: PingPongOptions;
}

if (parentPort === null) throw new Error('ping-pong.worker must run as a worker thread');
const setup = workerData as PingPongSetup;
const i32 = new Int32Array(setup.buffer);
if (setup.role === 'ponger') {
  parentPort.postMessage({ answered: runPonger(i32, setup.options) });
  parentPort.close();
} else {
  const pinger = new Pinger(i32, setup.options);
  Comlink.expose(
    {
      roundTrips: (count: number, maxMs?: number, warmup?: number) => pinger.roundTrips(count, maxMs, warmup),
      stop: () => pinger.stop(),
    },
    nodeEndpoint(parentPort),
  );
}
