// Loads one user policy module for the main thread (src/backend/workers/policy-probe.ts) and posts
// back its identity, or the loader's error as data. The main thread terminates this worker afterwards,
// or when the import does not finish in time.
import { parentPort, workerData } from 'node:worker_threads';
import type { ProbeAnswer } from '../src/backend/workers/policy-probe.js';
import { ConfigError } from '../src/errors.js';
import { loadPolicyModule } from '../src/policy/policy-module.js';

if (parentPort === null) throw new Error('policy-probe.worker must run as a worker thread');
const { path, field, name } = workerData as { path: string; field: string; name?: string };
// The load time limit starts now, not while this thread itself was starting (slow on a loaded machine).
parentPort.postMessage('loading');
let answer: ProbeAnswer;
try {
  const loaded = await loadPolicyModule(path, { field, name });
  const { policy } = loaded;
  answer = {
    ok: true,
    policy: {
      name: policy.name,
      description: policy.description,
      path: loaded.path,
      sha256: loaded.sha256,
      smt: policy.smt,
      safe: policy.safe !== false,
      linuxAsi: policy.linuxAsi !== undefined,
    },
  };
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  answer = {
    ok: false,
    field: error.field,
    accepted: error.accepted,
    got: error.got,
    message: error.message,
  };
}
parentPort.postMessage(answer);
