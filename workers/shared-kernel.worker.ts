// One hyperthread of the shared-kernel prototype (bench/shared-kernel.ts): makes both paths' views over
// the posted buffer and memory, runs its rounds and posts the batches back.
import { parentPort, workerData } from 'node:worker_threads';
import {
  runSharedKernelRounds,
  type SharedKernelPath,
  SharedKernelRig,
  type SharedKernelSetup,
} from '../bench/shared-kernel.js';

interface Job extends SharedKernelSetup {
  paths: SharedKernelPath[];
  rounds: number;
  accesses: number;
  barrier: SharedArrayBuffer;
  parties: number;
}

if (parentPort === null) throw new Error('shared-kernel.worker must run as a worker thread');
const job = workerData as Job;
const rig = new SharedKernelRig(job);
parentPort.postMessage(
  runSharedKernelRounds(rig, job.paths, job.rounds, job.accesses, new Int32Array(job.barrier), job.parties),
);
