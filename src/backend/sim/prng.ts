import { assert } from '../../assert.js';
import type { GuestDraws, Sfc32Area } from '../../cpu/access-path.js';
import { sfc32AreaDraws } from '../../memory/sub-layouts.js';

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, PractRand-tested): 128 bits of state,
 * 32-bit output. Seeded through splitmix32 so nearby seeds give unrelated streams. The sim draws every
 * choice from one of these, so the same seed gives the same run.
 */
/** Draws made ahead at a time (see `Prng.random`): as many as a kernel's sfc32 area holds. */
const batch = sfc32AreaDraws;
/** 2^-32: a product by it is exact (a power of two), as the quotient by 2^32 is. */
const twoToMinus32 = 2 ** -32;

export class Prng implements GuestDraws {
  /**
   * a, b, c, d as Int32 words. Not number fields: the values pass 2^30, and V8 stores such a number
   * boxed in a field defined before the constructor runs (ES2022 class fields), so every draw allocated
   * (a draw took ~7 ns that way, ~1.2 ns now, measured on Node 20).
   */
  private readonly state: Int32Array;
  /**
   * The next draws, made `batch` at a time, as `random` returns them. `random` is then a load and an
   * increment, small enough for V8 to inline where the generator itself was not (its inlining budget was
   * spent): a call that is not inlined boxes its double result, an allocation per draw. Every method
   * reads from here, so the stream is the same sfc32 stream in the same order.
   */
  private readonly ahead: Float64Array;
  /**
   * The index in `ahead` of the next draw (`batch`: the batch is used up, remade before the next draw).
   * The accelerated path's kernel draws a guest stretch's reads from the area and moves it
   * (`GuestDraws`, cpu/access-path.ts): the stream is the one `random` gives.
   */
  cursor = batch;
  /** Where the kernel makes the batches (state and draws live there), else null: the loop here. */
  readonly area: Sfc32Area | null;

  /**
   * @param area a sim machine's sfc32 area (`Machine.access.prngArea`, the accelerated path's): its kernel makes the batches, ~20
   *   instructions an output against ~30 for the loop here; the stream is the same either way
   *   (test/sim/prng.test.ts). Null: the loop here.
   */
  constructor(seed: number, area: Sfc32Area | null = null) {
    assert(Number.isSafeInteger(seed), `seed must be an integer, got ${seed}`);
    assert(area === null || (area.state.length === 4 && area.ahead.length === batch), 'prng area size');
    this.area = area;
    this.state = area === null ? new Int32Array(4) : area.state;
    this.ahead = area === null ? new Float64Array(batch) : area.ahead;
    let s = (seed ^ Math.floor(seed / 4294967296)) >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    for (let word = 0; word < 4; word++) this.state[word] = next();
    // sfc32's warm-up: its first 12 outputs, dropped.
    this.refill();
    this.cursor = 12;
  }

  /**
   * The next `batch` sfc32 outputs into `ahead`, each a uniform double in [0, 1) (exact: u32 x 2^-32),
   * by the kernel where the generator lives in its memory.
   */
  private refill(): void {
    const area = this.area;
    if (area !== null) area.sfc32(area.stateI32Index, area.aheadF64Index, batch);
    else this.refillHere();
    this.cursor = 0;
  }

  /**
   * `refill` in JavaScript: the reference the kernel's `sfc32` transcribes. The state lives in locals for
   * the batch (read and written through the array at every step it took ~3x the instructions), and the
   * loop has nothing else to test: with the warm-up's no-output case in the same loop, V8 re-checked the
   * output array at every step (~36 instructions an output, valgrind).
   */
  private refillHere(): void {
    const state = this.state;
    const ahead = this.ahead;
    let a = state[0];
    let b = state[1];
    let c = state[2];
    let d = state[3];
    for (let i = 0; i < batch; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      ahead[i] = (t >>> 0) * twoToMinus32;
    }
    state[0] = a;
    state[1] = b;
    state[2] = c;
    state[3] = d;
  }

  nextU32(): number {
    // Exact: the double holds u32 / 2^32.
    return this.random() * 4294967296;
  }

  /** Uniform in [0, 1). */
  random(): number {
    if (this.cursor === batch) this.refill();
    return this.ahead[this.cursor++];
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
}
