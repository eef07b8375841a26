/**
 * Asserts carry correctness (STYLE.md, TigerBeetle). `assert` is always on: it guards the edges of
 * modules and every write to shared state. `assertDebug` guards inner loops and costs one branch on a
 * module-level constant when disabled (set ASI_EMU_DEBUG=1 to enable it).
 */

/** A broken internal rule: a bug in asi-emu (or in a user policy), never a user input mistake. */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/**
 * ASI_EMU_DEBUG=1. The innermost functions (a cache access, a frame-owner read) guard their checks with
 * `if (assertDebugEnabled) ...` rather than calling `assertDebug`: the arguments of a call are evaluated
 * even when the assert is off (~1.5 ns for a `Number.isInteger` pair, measured on Node 20), while a
 * branch on this constant costs nothing once compiled (the bundle makes it one constant of the chunk:
 * scripts/build.mjs). Several checks go in a function of their own, so the hot path stays short.
 */
export const assertDebugEnabled = typeof process !== 'undefined' && process.env?.ASI_EMU_DEBUG === '1';

/** Checked only when ASI_EMU_DEBUG=1: for the hot path, where a check per step would cost too much. */
export function assertDebug(condition: unknown, message: string): asserts condition {
  if (assertDebugEnabled && !condition) throw new AssertionError(message);
}

export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable: unexpected ${what}: ${String(value)}`);
}

export function assertInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new AssertionError(`${what} must be a safe integer, got ${value}`);
}
