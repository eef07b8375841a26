import type { RunConfig } from '../../config/run-config.js';
import type { ExitMix } from '../../cpu/mixes.js';
import { UsageError } from '../../errors.js';
import type { Policy } from '../../policy/policy.js';

/** `bench --backend workers`: wired to the workers backend once it lands (issue 4). */
export async function runWorkersBenchCommand(
  _config: RunConfig,
  _policies: Policy[],
  _mixes: ExitMix[],
  _options: { json?: string; kick?: boolean },
): Promise<void> {
  throw new UsageError('--backend', 'sim (the workers backend is not built yet)', 'workers');
}
