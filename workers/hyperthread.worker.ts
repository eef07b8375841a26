// One hyperthread of a `workers` run: attach to the machine buffer, build the hyperthread, and expose
// its control API over comlink (start, pause, resume, stop, stats, state). The loop lives in src/.
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { WorkerSetup } from '../src/backend/workers/control.js';
import { createHyperthreadRunner } from '../src/backend/workers/hyperthread-runner.js';

if (parentPort === null) throw new Error('hyperthread.worker must run as a worker thread');
const runner = await createHyperthreadRunner(workerData as WorkerSetup);
Comlink.expose(runner.api(), nodeEndpoint(parentPort));
