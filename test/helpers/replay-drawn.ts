import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CaseVerdict, type FuzzCase, MachineCache, runFuzzCase } from '../../src/fuzz/fuzz-case.js';
import { fuzzLimits } from '../../src/fuzz/limits.js';
import type { LinuxAsiDraws } from '../../src/fuzz/linux-asi-draws.js';
import { replayCase, replayDocumentOf } from '../../src/fuzz/replay.js';
import { readReplayFile, writeReplayFile } from '../../src/fuzz/replay-format.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase } from '../../src/fuzz/shrink.js';
import type { Policy } from '../../src/policy/policy.js';

/**
 * The first of `casesMax` cases of campaign `seed` (drawn with `draws`) that `accept` takes and `policy`
 * fails, written as a replay file under `outDir` and replayed from it: what the replay tests of drawn
 * linux-asi settings and drawn classes both check. Null when no such case is among them.
 */
export async function replayFirstDrawnFailure(options: {
  seed: number;
  policy: Policy;
  draws: LinuxAsiDraws | null;
  accept: (drawn: FuzzCase) => boolean;
  outDir: string;
  casesMax?: number;
}) {
  const machines = new MachineCache();
  for (let index = 0; index < (options.casesMax ?? 200); index++) {
    const caseSeed = caseSeedOf(options.seed, index);
    const drawn = generateCase(caseSeed, fuzzLimits, options.draws);
    if (!options.accept(drawn)) continue;
    const { verdict }: { verdict: CaseVerdict } = runFuzzCase(drawn, options.policy, { machines });
    if (verdict.failure === null) continue;
    const path = join(options.outDir, 'drawn.replay.json');
    writeReplayFile(
      path,
      replayDocumentOf(
        { name: options.policy.name },
        { campaignSeed: options.seed, caseIndex: index, caseSeed },
        drawn,
        { fuzzCase: drawn, verdict },
        null,
      ),
    );
    const written = JSON.parse(readFileSync(path, 'utf8'));
    const replayed = await replayCase(readReplayFile(path));
    return { drawn, verdict, written, replayed };
  }
  return null;
}
