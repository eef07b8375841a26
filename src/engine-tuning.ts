import { setFlagsFromString } from 'node:v8';

/**
 * V8's inlining budget for the sim's hot path. TurboFan inlines callees into an optimized function until
 * their bytecode adds up to `--max-inlined-bytecode-size-cumulative` (920 bytes by default in Node 20's
 * V8 11.3, `src/flags/flag-definitions.h`). A guest step calls through the scheduler, the hyperthread,
 * the TLB, the L1D, the fill buffers, the PRNG and the monitor: the default budget is spent part way,
 * and every call left out of line costs a call, and boxes a double result (an allocation per draw).
 *
 * Measured on the sim benchmark's asi / all-fast run (2 cores x 2, Node 20.20.2, AMD EPYC, 2 CPUs),
 * in instructions per hyperthread step (valgrind, exact counts; that machine's wall clock swung 2-3x
 * within a day): 2,107 with V8's defaults, 1,669 with the budgets below. Of the budgets tried
 * (cumulative 2,000 to 10,000, per callee 460 to 2,000) these two together gave the fewest; larger
 * ones gave more (register pressure in one huge function). Compiling more inline costs a little at
 * warm-up.
 */
export const inlinedBytecodeCumulativeMax = 6000;
/** Per callee (V8's default 460), raised with the cumulative budget above. */
export const inlinedBytecodeMax = 1000;

/** Set to 1 to keep V8's defaults (to measure what the tuning buys, or to rule it out). */
export const engineTuningOptOutVariable = 'ASI_EMU_V8_DEFAULTS';

let tuned = false;

/**
 * Raises V8's inlining budgets for this process (V8 flags are per process: worker threads started later
 * share them). Call it first thing in a program that runs long simulations, before the sim's code is hot:
 * TurboFan reads the flags when it optimizes a function, so code optimized earlier keeps its old inlining.
 * The CLI and `npm run bench` call it. Returns whether the budgets are raised (false when opted out).
 */
export function tuneEngineForSim(env: NodeJS.ProcessEnv = process.env): boolean {
  // Once raised, raised for good (V8 flags are not taken back): say so even if asked to opt out later.
  if (tuned) return true;
  if (env[engineTuningOptOutVariable] === '1') return false;
  setFlagsFromString(`--max-inlined-bytecode-size-cumulative=${inlinedBytecodeCumulativeMax}`);
  setFlagsFromString(`--max-inlined-bytecode-size=${inlinedBytecodeMax}`);
  tuned = true;
  return true;
}
