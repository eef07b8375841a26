import { Mode } from './modes.js';

/**
 * A thread's speed while k of its core's threads are busy, as a share of a lone thread's: the core's
 * combined throughput over k. Combined throughput is 1 for one busy thread and `smtSpeedup` for all
 * `smt` busy; between them (smt > 2) it grows linearly with each thread added, an interpolation with no
 * source of its own (docs/model.md "SMT").
 */
export function speedPerThread(busy: number, smt: number, smtSpeedup: number): number {
  if (busy <= 1 || smt <= 1) return 1;
  const speedup = Math.min(Math.max(1, smtSpeedup), smt);
  return (1 + ((speedup - 1) * (busy - 1)) / (smt - 1)) / busy;
}

/** Running code, guest or host: what shares a core's pipeline with its siblings. */
export function isBusy(mode: number): boolean {
  return mode === Mode.guest || mode === Mode.isolated || mode === Mode.full || mode === Mode.vmm;
}
