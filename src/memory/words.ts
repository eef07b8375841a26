/**
 * Word operations on the machine buffer that are atomic only when they have to be. With the `workers`
 * backend a core's siblings and the monitors run in different threads, and every read of a word
 * another thread writes must be an Atomics operation. The `sim` backend drives every hyperthread from
 * one thread (Machine.concurrent is false): nothing else touches the buffer, and a plain access gives
 * the same result.
 *
 * Why bother: on the sim's 2-CPU reference machine (Node 20) `Atomics.load` costs ~5 ns and
 * `Atomics.add` / `compareExchange` ~9-10 ns, against ~0.5 ns for a plain typed-array access, and a sim
 * step does several (DESIGN.md "Performance goals": 10 million steps/s leaves 100 ns a step). Each helper
 * is small, so the `atomic` branch costs one well-predicted test.
 *
 * The rest of the sim's speed comes from the build, not from idioms in these modules: tsconfig.json's
 * `useDefineForClassFields: false` and one bundled module scope for all of src/ (scripts/build.mjs);
 * docs/perf-log.md ("Where the speed machinery lives") has the reasons and the figures.
 */

export function loadWord(i32: Int32Array, i32Index: number, atomic: boolean): number {
  return atomic ? Atomics.load(i32, i32Index) : i32[i32Index];
}

export function storeWord(i32: Int32Array, i32Index: number, value: number, atomic: boolean): void {
  if (atomic) Atomics.store(i32, i32Index, value);
  else i32[i32Index] = value;
}

/** Adds `delta`; returns the previous value (as Atomics.add). */
export function addWord(i32: Int32Array, i32Index: number, delta: number, atomic: boolean): number {
  if (atomic) return Atomics.add(i32, i32Index, delta);
  const previous = i32[i32Index];
  i32[i32Index] = previous + delta;
  return previous;
}

/** ORs `bits` in; returns the previous value (as Atomics.or). */
export function orWord(i32: Int32Array, i32Index: number, bits: number, atomic: boolean): number {
  if (atomic) return Atomics.or(i32, i32Index, bits);
  const previous = i32[i32Index];
  i32[i32Index] = previous | bits;
  return previous;
}

/** ANDs `bits` in; returns the previous value (as Atomics.and). */
export function andWord(i32: Int32Array, i32Index: number, bits: number, atomic: boolean): number {
  if (atomic) return Atomics.and(i32, i32Index, bits);
  const previous = i32[i32Index];
  i32[i32Index] = previous & bits;
  return previous;
}

/** Stores `replacement` if the word holds `expected`; returns the previous value (as Atomics.compareExchange). */
export function compareExchangeWord(
  i32: Int32Array,
  i32Index: number,
  expected: number,
  replacement: number,
  atomic: boolean,
): number {
  if (atomic) return Atomics.compareExchange(i32, i32Index, expected, replacement);
  const previous = i32[i32Index];
  if (previous === expected) i32[i32Index] = replacement;
  return previous;
}
