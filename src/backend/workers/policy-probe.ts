import { Worker } from 'node:worker_threads';
import { ConfigError } from '../../errors.js';
import { policyModuleAccepted } from '../../policy/policy-module.js';
import { workerScriptPath } from './worker-script.js';

/**
 * Loads a user's policy module in a worker thread under a time limit and reports what it exports
 * (issue 18): the CLI's main thread never imports a user module, because a module's top-level code
 * can loop forever, and only another thread can stop it (`Worker.terminate`). The worker is thrown
 * away after the answer; pool and hyperthread workers load the module again for themselves, through
 * the same loader (policy/policy-module.ts).
 */
export interface ProbedPolicy {
  name: string;
  description: string;
  /** Absolute path of the module. */
  path: string;
  sha256: string;
  /** The policy's `smt` setting: which hyperthreads a workers run starts for it. */
  smt: boolean;
  /** The policy's `safe` setting (false: unsafe on purpose; policy.ts `Policy.safe`). */
  safe: boolean;
  /** Whether it carries today's Linux ASI settings (`linuxAsi`): then it runs a user mix's userspace class. */
  linuxAsi: boolean;
}

/** What the probe worker posts back: the policy's identity, or the loader's ConfigError as data. */
export type ProbeAnswer =
  | { ok: true; policy: ProbedPolicy }
  | { ok: false; field: string; accepted: string; got: unknown; message: string };

/**
 * A module's import and checks take milliseconds; 10 s is far beyond any honest module (a cold disk
 * included) and short enough that a module stuck in a loop is reported before the user gives up.
 * ASI_EMU_POLICY_LOAD_TIMEOUT_MS lowers it (the hostile-input tests do; 100 ms .. 10 min).
 */
const loadTimeoutMsDefault = 10_000;

export function policyModuleLoadTimeoutMs(): number {
  const fromEnvironment = Number(process.env.ASI_EMU_POLICY_LOAD_TIMEOUT_MS);
  return Number.isInteger(fromEnvironment) && fromEnvironment >= 100 && fromEnvironment <= 600_000
    ? fromEnvironment
    : loadTimeoutMsDefault;
}

/** The probe worker's own start-up (importing the loader), before the module's time starts. */
const workerStartLimitMs = 60_000;

export async function probePolicyModule(
  path: string,
  options: { field?: string; name?: string; timeoutMs?: number } = {},
): Promise<ProbedPolicy> {
  const field = options.field ?? '--policy-module';
  const timeoutMs = options.timeoutMs ?? policyModuleLoadTimeoutMs();
  const worker = new Worker(workerScriptPath('policy-probe.worker'), {
    workerData: { path, field, name: options.name },
    // A module's console output still reaches the terminal; its stdin is not the CLI's.
    stdin: false,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await new Promise<ProbeAnswer>((resolve, reject) => {
      const startLimit = (limitMs: number, problem: string) => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            reject(
              new ConfigError(
                field,
                `${policyModuleAccepted}, whose import finishes within ${timeoutMs / 1000} s`,
                `${path} (${problem})`,
              ),
            ),
          limitMs,
        );
      };
      // Our own worker's start-up is bounded too, generously: it is not the module's time.
      startLimit(workerStartLimitMs, `the loader thread did not start within ${workerStartLimitMs / 1000} s`);
      worker.on('message', (message: 'loading' | ProbeAnswer) => {
        if (message === 'loading') {
          startLimit(
            timeoutMs,
            `still loading after ${timeoutMs / 1000} s: its top-level code does not return`,
          );
        } else {
          resolve(message);
        }
      });
      worker.once('error', (error) =>
        reject(new ConfigError(field, policyModuleAccepted, `${path} (loading it failed: ${error.message})`)),
      );
      worker.once('exit', (code) =>
        reject(
          new ConfigError(field, policyModuleAccepted, `${path} (loading it ended the thread, code ${code})`),
        ),
      );
    });
    if (!answer.ok) throw new ConfigError(answer.field, answer.accepted, answer.got);
    return answer.policy;
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
}
