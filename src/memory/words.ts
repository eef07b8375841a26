/**
 * Word operations on the machine buffer that are atomic only when they have to be. With the `workers`
 * backend a core's siblings and the monitors run in different threads, and every read of a word
 * another thread writes must be an Atomics operation. The `sim` backend drives every hyperthread from
 * one thread (Machine.concurrent is false): nothing else touches the buffer, and a plain access gives
 * the same result.
 *
 * Why bother: in Node 20 an Atomics call is not inlined; on the sim's 2-CPU reference machine
 * `Atomics.load` costs ~5 ns and `Atomics.add` / `compareExchange` ~9-10 ns, against ~0.5 ns for a plain
 * typed-array access, and a sim step does several (DESIGN.md "Performance goals": 10 million steps/s
 * leaves 100 ns a step). Each helper is small enough to be inlined, so the `atomic` branch costs one
 * well-predicted test.
 *
 * The classes on the sim's hot path (Hyperthread, CoreL1d, CoreFillBuffers, Tlb, PageTables,
 * FrameTable, Mailboxes, Monitor, EventLog) also `declare` the fields they set in their constructor,
 * and take no parameter properties. This project compiles to ES2022 class fields, which define every
 * field as `undefined` before the constructor runs; V8 then stores numbers in such a field boxed, and
 * reads check them, where a field first assigned a number keeps an unboxed representation. With the
 * fields defined first, the fill-buffer access of a sim trace ran ~2x slower and a sim run ~7% slower.
 *
 * The same modules read their imports through module-private constants (`const loadWord =
 * importedLoadWord;` after the imports), and a module's own exports that its hot code reads through a
 * private copy (hyperthread.ts `StepCode`). An import is a live binding: V8 (Node 20) loads it from its
 * cell and checks it at every use (initialized yet? the function or the object's map expected?), where a
 * private `const` is folded into the optimized code. Measured in exact instruction counts (valgrind, asi
 * on all-fast, the bench's mix of policies warmed first): about 7% fewer per sim step, and a quarter of
 * the branch mispredictions gone (one run before and one after; repeats of a build vary by a few percent).
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
