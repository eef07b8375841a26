import { assert, assertDebug, assertDebugEnabled } from '../assert.js';
import { framesMax, linesPerPage, sectionAlignI32s } from '../constants.js';
import { isForeignTo, privateDomain } from '../memory/domains.js';
import { loadWord, storeWord } from '../memory/words.js';

/**
 * What every per-core buffer of cache lines offers (DESIGN.md "Core resources"): the L1D and the fill
 * buffers. Both keep their state in the machine buffer (a SharedArrayBuffer), because the hyperthreads of
 * one core run in different worker threads and share them; an instance is only a view with cached
 * offsets, so any number of views over the same section see the same lines.
 *
 * Threads: `access` and `flush` are called by the core's hyperthreads and take the section's lock word
 * (kick/core-lock.ts: the cache model itself never blocks a thread).
 * `count`, `validLines` and `foreignLines` are lock-free reads (`Atomics.load`) that a monitor in another
 * thread may call at any time; each value is exact, but several of them read while a sibling mutates
 * are not one snapshot. `firstForeignLine` and `peek` are non-mutating functional reads (gem5 style): they
 * take no lock, so a checker never delays a hyperthread.
 */
export interface CoreBuffer {
  /** A load/store of one 64-byte line of physical frame `pfn` (lineInPage 0..63) owned by `domain`. Returns true on hit. */
  access(pfn: number, lineInPage: number, domain: number): boolean;
  /** Empties it (L1D flush / VERW); returns the number of valid lines dropped. */
  flush(): number;
  /** Valid lines of `domain` (Atomics.load; O(1)). */
  count(domain: number): number;
  validLines(): number;
  /** Lines foreign to guest vmId (host, other VMs' vm:/private:), O(1) from the per-domain counts. */
  foreignLines(vmId: number): number;
  /** For violation reports only (may scan): the first foreign line, or null. Non-mutating. */
  firstForeignLine(vmId: number): CachedLine | null;
  /** Where the counts `foreignLines` reads live, for a `CoreForeignLines` that asks at every step. */
  countsView(): CountsView;
}

/** A core buffer's view and the indices of its valid-line total and its per-domain counts. */
export interface CountsView {
  i32: Int32Array;
  validLinesI32Index: number;
  countsI32Index: number;
  domainCount: number;
}

/** One line as reports and tests see it. */
export interface CachedLine {
  pfn: number;
  lineInPage: number;
  domain: number;
}

/**
 * A stored line's owner word holds `domain + 1`, so that 0 means "invalid": a zero-filled section (as a
 * fresh SharedArrayBuffer is) is an empty buffer, and a second view needs no initialisation.
 */
export const ownerInvalid = 0;

export function ownerOf(domain: number): number {
  return domain + 1;
}

export function domainOfOwner(owner: number): number {
  return owner - 1;
}

/**
 * Lines foreign to guest `vmId` from the per-domain counts (INV-2): the sum of the foreign domains' counts
 * (host, other VMs' vm:/private:). With siblings mutating the counts while a monitor reads them, several
 * loads are not one snapshot, and a difference such as "valid lines less the own domains" could read a
 * line leaving kvm but not yet arriving in vm:N and report a foreign line that never existed; a sum of
 * the foreign counts cannot: if no foreign line exists at any instant, every one reads 0. The per-step
 * question of the sim goes through `CoreForeignLines`, which reads the same counts without Atomics.
 */
export function foreignLinesFromCounts(
  i32: Int32Array,
  countsI32Index: number,
  domainCount: number,
  vmId: number,
): number {
  if (assertDebugEnabled)
    assertDebug(vmId >= 0 && privateDomain(vmId) < domainCount, 'foreignLines: vmId out of range');
  let foreign = 0;
  for (let domain = 0; domain < domainCount; domain++) {
    if (isForeignTo(domain, vmId)) foreign += Atomics.load(i32, countsI32Index + domain);
  }
  return foreign;
}

/**
 * The checks of `access` arguments, shared by the core buffers (ASI_EMU_DEBUG=1 only: callers guard the
 * call with their `assertDebugEnabled`). `what` names the buffer in the message.
 */
export function checkLineArguments(
  what: string,
  pfn: number,
  lineInPage: number,
  domain: number,
  domainCount: number,
): void {
  assertDebug(
    Number.isInteger(pfn) && pfn >= 0 && pfn <= framesMax,
    `${what} access: pfn must be an integer 0..framesMax`,
  );
  assertDebug(
    Number.isInteger(lineInPage) && lineInPage >= 0 && lineInPage < linesPerPage,
    `${what} access: lineInPage must be an integer 0..63`,
  );
  assertDebug(
    Number.isInteger(domain) && domain >= 0 && domain < domainCount,
    `${what} access: domain must be an integer 0..domainCount-1`,
  );
}

/** Constructor-time checks shared by every core buffer. */
export function assertCoreBufferView(i32: Int32Array, baseI32Index: number, sectionI32s: number): void {
  assert(i32.buffer instanceof SharedArrayBuffer, 'a core buffer lives in the shared machine buffer');
  assert(
    Number.isSafeInteger(baseI32Index) && baseI32Index >= 0,
    `baseI32Index must be >= 0, got ${baseI32Index}`,
  );
  // Per-core sections start on 64-byte boundaries so that cores do not false-share (STYLE.md habit 1).
  assert(
    (i32.byteOffset / Int32Array.BYTES_PER_ELEMENT + baseI32Index) % sectionAlignI32s === 0,
    `core buffer section at i32 index ${baseI32Index} is not 64-byte aligned`,
  );
  assert(
    baseI32Index + sectionI32s <= i32.length,
    `core buffer section [${baseI32Index}, ${baseI32Index + sectionI32s}) past the view's ${i32.length} words`,
  );
}

/** Valid entries among [firstI32Index, endI32Index): records of `strideI32s` words, owner word at `ownerOffsetI32`. */
export function countValidEntries(
  i32: Int32Array,
  firstI32Index: number,
  endI32Index: number,
  strideI32s: number,
  ownerOffsetI32: number,
): number {
  let valid = 0;
  for (let at = firstI32Index; at < endI32Index; at += strideI32s) {
    if (i32[at + ownerOffsetI32] !== ownerInvalid) valid++;
  }
  return valid;
}

/**
 * A flush's paired check, then the reset of the counts: the valid-line total and the per-domain
 * counts kept at every step must agree with the `dropped` entries found in the section itself.
 */
export function checkAndClearCounts(
  i32: Int32Array,
  validLinesI32Index: number,
  countsI32Index: number,
  domainCount: number,
  dropped: number,
  what: string,
  atomic = true,
): void {
  let countedLines = 0;
  for (let domain = 0; domain < domainCount; domain++)
    countedLines += loadWord(i32, countsI32Index + domain, atomic);
  const validLines = loadWord(i32, validLinesI32Index, atomic);
  if (dropped !== validLines || dropped !== countedLines) {
    // The message is built only on failure: flushes are frequent enough that a string per call shows.
    assert(false, `${what} flush: valid entries, valid-line total and per-domain counts disagree`);
  }
  for (let domain = 0; domain < domainCount; domain++) storeWord(i32, countsI32Index + domain, 0, atomic);
  storeWord(i32, validLinesI32Index, 0, atomic);
}

/**
 * INV-2's question for one VM on one core, asked at every guest step: how many lines of the core's L1D and
 * fill buffers are foreign to the VM. The same sum of the foreign domains' counts as the two buffers'
 * `foreignLines(vmId)` (snapshot-safe: see `foreignLinesFromCounts`), with the indices of those counts
 * worked out once: host, and each other VM's vm: and private: domains, so one load per buffer when the
 * machine runs one VM. With plain loads when one thread drives the machine (sim), else Atomics.
 */
export class CoreForeignLines {
  private readonly atomic: boolean;
  private readonly l1dI32: Int32Array;
  /** Indices in l1dI32 of the counts of the domains foreign to the VM. */
  private readonly l1dForeign: Int32Array;
  private readonly fillI32: Int32Array;
  private readonly fillForeign: Int32Array;
  /**
   * With one foreign domain per buffer (the machine runs one VM: the host's lines are the foreign
   * ones), the index of each buffer's one count, else -1: `count` then adds two loads instead of two
   * loops, at every guest step.
   */
  private readonly l1dOnly: number;
  private readonly fillOnly: number;

  /** @param atomic false when one thread drives every hyperthread (sim): plain loads. */
  constructor(l1d: CountsView, fillBuffers: CountsView, vmId: number, atomic: boolean) {
    for (const view of [l1d, fillBuffers]) {
      assert(
        Number.isInteger(vmId) && vmId >= 0 && privateDomain(vmId) < view.domainCount,
        `CoreForeignLines: no VM ${vmId} among ${view.domainCount} domains`,
      );
    }
    this.atomic = atomic;
    this.l1dI32 = l1d.i32;
    this.l1dForeign = foreignCountIndices(l1d, vmId);
    this.fillI32 = fillBuffers.i32;
    this.fillForeign = foreignCountIndices(fillBuffers, vmId);
    const single = this.l1dForeign.length === 1 && this.fillForeign.length === 1;
    this.l1dOnly = single ? this.l1dForeign[0] : -1;
    this.fillOnly = single ? this.fillForeign[0] : -1;
  }

  count(): number {
    if (this.atomic) {
      return sumAtomic(this.l1dI32, this.l1dForeign) + sumAtomic(this.fillI32, this.fillForeign);
    }
    if (this.l1dOnly >= 0) return this.l1dI32[this.l1dOnly] + this.fillI32[this.fillOnly];
    return sumPlain(this.l1dI32, this.l1dForeign) + sumPlain(this.fillI32, this.fillForeign);
  }
}

/** The indices of the per-domain counts of the domains foreign to vmId (`foreignLinesFromCounts`'s). */
function foreignCountIndices(view: CountsView, vmId: number): Int32Array {
  const indices: number[] = [];
  for (let domain = 0; domain < view.domainCount; domain++) {
    if (isForeignTo(domain, vmId)) indices.push(view.countsI32Index + domain);
  }
  return Int32Array.from(indices);
}

/** Apart from `sumAtomic`: Atomics calls compiled into the same function slowed the plain path (l1d.ts). */
function sumPlain(i32: Int32Array, indices: Int32Array): number {
  let sum = 0;
  for (let k = 0; k < indices.length; k++) sum += i32[indices[k]];
  return sum;
}

function sumAtomic(i32: Int32Array, indices: Int32Array): number {
  let sum = 0;
  for (let k = 0; k < indices.length; k++) sum += Atomics.load(i32, indices[k]);
  return sum;
}
