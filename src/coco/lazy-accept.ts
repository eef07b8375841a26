import { assert } from '../assert.js';
import { largePage2MBytes, pageBytes } from '../constants.js';
import type { ValidateOnceViolation } from './pvalidate.js';

/**
 * Lazy acceptance of guest memory: the unaccepted-memory bitmap shared by SNP and TDX guests.
 *
 * Firmware hands the kernel memory it has not accepted (EFI_UNACCEPTED_MEMORY). The kernel tracks it
 * in a bitmap with one bit per 2 MiB unit (EFI_UNACCEPTED_UNIT_SIZE = PMD_SIZE, arch/x86/include/asm/
 * efi.h) and accepts units on first allocation (mm/page_alloc.c via accept_memory()). Two halves:
 *
 *  - The EFI stub, `process_unaccepted_memory()` (drivers/firmware/efi/libstub/unaccepted_memory.c),
 *    records a range. The bitmap only holds whole units, so a range shorter than two units is accepted
 *    at once, and otherwise the unaligned head and tail pieces are accepted at once and only the
 *    aligned middle is marked unaccepted.
 *  - The kernel, `accept_memory()` (drivers/firmware/efi/unaccepted_memory.c), accepts the set units of
 *    a range and clears their bits. Two rules from there:
 *      * Guard unit. load_unaligned_zeropad() may read a few bytes past the end of a page it was given.
 *        On ordinary memory a fault fixup hides that; on unaccepted TDX memory the stray load exits to
 *        the VMM, which can only kill the guest. So when the range ends exactly on a unit boundary the
 *        next unit is accepted too (and range_contains_unaccepted_memory() looks one unit further).
 *      * In-flight exclusion. The lock is dropped while the architecture accepts memory, so accepts in
 *        progress are kept in `accepting_list`; a caller whose units overlap one of them, compared at
 *        unit granularity, drops the lock and retries. Here that caller gets a 'busy' result and no
 *        real waiting happens: the backend decides when it tries again.
 *
 * A cleared bit is never set again by the kernel, so memory is accepted at most once (INV-11). The
 * model also remembers every page it ever handed to the architecture's accept, so a bug that would
 * accept a page twice (say, firmware re-reporting accepted memory as unaccepted) is caught and
 * reported rather than silently repeated.
 */

/** One bit of the bitmap covers this many bytes (EFI_UNACCEPTED_UNIT_SIZE). */
export const unacceptedUnitBytes = largePage2MBytes;
export const unacceptedUnitPages = unacceptedUnitBytes / pageBytes;

/**
 * The architecture's accept for guest frames [startGfn, endGfn): PVALIDATE loops on SNP,
 * `tdx_accept_memory()` on TDX. The default accepts nothing but still lets the model keep history.
 */
export type ArchAccept = (startGfn: number, endGfn: number) => ArchAcceptOutcome;
export type ArchAcceptOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly detail: string; readonly violation: ValidateOnceViolation | null };

export interface UnacceptedMemoryOptions {
  /** Guest memory size in 4 KiB frames; every accepted page must lie below it. */
  readonly gfnCount: number;
  /** First frame the bitmap describes (phys_base); unit-aligned. */
  readonly baseGfn: number;
  /** Units (bits) in the bitmap. */
  readonly unitCount: number;
  /** Accepts that can be in flight at once: one per hyperthread that may allocate memory. */
  readonly inFlightMax: number;
  readonly archAccept?: ArchAccept;
}

export interface AcceptedPieces {
  /** Ranges of frames handed to the architecture's accept, in order. */
  readonly accepted: ReadonlyArray<readonly [startGfn: number, endGfn: number]>;
  /** INV-11 records (a page accepted a second time) and failures of the architecture's accept. */
  readonly violations: readonly ValidateOnceViolation[];
  readonly failures: readonly string[];
}

export interface ProcessUnacceptedResult extends AcceptedPieces {
  /** Units [startUnit, endUnit) now marked unaccepted, or null when everything was accepted at once. */
  readonly markedUnits: readonly [startUnit: number, endUnit: number] | null;
}

export type BeginAcceptResult =
  | {
      /** Another acceptor holds an overlapping unit: retry later. */
      readonly kind: 'busy';
      readonly heldBy: number;
    }
  | {
      readonly kind: 'started';
      readonly ticket: number;
      readonly startUnit: number;
      readonly endUnit: number;
      /** The unit that was added because the range ended on a unit boundary, or -1. */
      readonly guardUnit: number;
    }
  /** Nothing of the range is described by the bitmap: nothing to accept, nothing registered. */
  | { readonly kind: 'nothing' };

export type AcceptMemoryResult =
  | { readonly kind: 'busy'; readonly heldBy: number }
  | ({ readonly kind: 'done'; readonly guardUnit: number } & AcceptedPieces);

const noTicket = -1;

export class UnacceptedMemory {
  readonly gfnCount: number;
  readonly baseGfn: number;
  readonly unitCount: number;
  private readonly bits: Uint8Array;
  /** Per frame: 1 once the frame has been handed to the architecture's accept. */
  private readonly acceptedHistory: Uint8Array;
  private readonly archAccept: ArchAccept;
  // The in-flight list (accepting_list), fixed capacity: one slot per possible acceptor.
  private readonly inFlightStartUnit: Int32Array;
  private readonly inFlightEndUnit: Int32Array;
  private readonly inFlightAcceptor: Int32Array;

  constructor(options: UnacceptedMemoryOptions) {
    const { gfnCount, baseGfn, unitCount, inFlightMax } = options;
    assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `UnacceptedMemory: bad gfnCount ${gfnCount}`);
    assert(Number.isSafeInteger(unitCount) && unitCount > 0, `UnacceptedMemory: bad unitCount ${unitCount}`);
    assert(
      Number.isSafeInteger(baseGfn) && baseGfn >= 0 && baseGfn % unacceptedUnitPages === 0,
      `UnacceptedMemory: baseGfn ${baseGfn} must be a non-negative multiple of ${unacceptedUnitPages}`,
    );
    assert(
      Number.isInteger(inFlightMax) && inFlightMax > 0,
      `UnacceptedMemory: bad inFlightMax ${inFlightMax}`,
    );
    this.gfnCount = gfnCount;
    this.baseGfn = baseGfn;
    this.unitCount = unitCount;
    this.bits = new Uint8Array(unitCount);
    this.acceptedHistory = new Uint8Array(gfnCount);
    this.archAccept = options.archAccept ?? (() => ({ ok: true }));
    this.inFlightStartUnit = new Int32Array(inFlightMax);
    this.inFlightEndUnit = new Int32Array(inFlightMax);
    this.inFlightAcceptor = new Int32Array(inFlightMax).fill(noTicket);
  }

  /** Whether bitmap unit `unit` is still unaccepted. */
  isUnitUnaccepted(unit: number): boolean {
    assert(Number.isInteger(unit) && unit >= 0 && unit < this.unitCount, `unit ${unit} out of range`);
    return this.bits[unit] === 1;
  }

  unacceptedUnitCount(): number {
    let count = 0;
    for (let unit = 0; unit < this.unitCount; unit++) count += this.bits[unit];
    return count;
  }

  /** Whether frame `gfn` has ever been handed to the architecture's accept by this model. */
  wasAccepted(gfn: number): boolean {
    assert(Number.isInteger(gfn) && gfn >= 0 && gfn < this.gfnCount, `gfn ${gfn} out of range`);
    return this.acceptedHistory[gfn] === 1;
  }

  /** The EFI stub's `process_unaccepted_memory()` for frames [startGfn, endGfn). */
  processUnaccepted(startGfn: number, endGfn: number): ProcessUnacceptedResult {
    this.assertRange(startGfn, endGfn);
    const pieces = newPieces();
    let start = startGfn;
    let end = endGfn;
    // Too short to be sure a whole unit remains after trimming: accept all of it now.
    if (end - start < 2 * unacceptedUnitPages) {
      this.acceptPages(start, end, pieces);
      return { ...pieces, markedUnits: null };
    }
    if (start % unacceptedUnitPages !== 0) {
      const alignedStart = roundUp(start, unacceptedUnitPages);
      this.acceptPages(start, alignedStart, pieces);
      start = alignedStart;
    }
    if (end % unacceptedUnitPages !== 0) {
      const alignedEnd = roundDown(end, unacceptedUnitPages);
      this.acceptPages(alignedEnd, end, pieces);
      end = alignedEnd;
    }
    if (start < this.baseGfn) {
      const belowBaseEnd = Math.min(this.baseGfn, end);
      this.acceptPages(start, belowBaseEnd, pieces);
      start = this.baseGfn;
    }
    if (end <= this.baseGfn) return { ...pieces, markedUnits: null };
    const bitmapEnd = this.baseGfn + this.unitCount * unacceptedUnitPages;
    if (end > bitmapEnd) {
      this.acceptPages(Math.max(start, bitmapEnd), end, pieces);
      end = bitmapEnd;
    }
    if (start >= end) return { ...pieces, markedUnits: null };
    const startUnit = (start - this.baseGfn) / unacceptedUnitPages;
    const endUnit = (end - this.baseGfn) / unacceptedUnitPages;
    this.bits.fill(1, startUnit, endUnit);
    return { ...pieces, markedUnits: [startUnit, endUnit] };
  }

  /**
   * `range_contains_unaccepted_memory()`: whether [startGfn, endGfn) (plus the guard unit when it ends
   * on a unit boundary) still has an unaccepted unit.
   */
  rangeContainsUnaccepted(startGfn: number, endGfn: number): boolean {
    const units = this.unitsOf(startGfn, endGfn);
    if (units === null) return false;
    for (let unit = units.startUnit; unit < units.endUnit; unit++) if (this.bits[unit] === 1) return true;
    return false;
  }

  /**
   * First half of `accept_memory()`: register [startGfn, endGfn) (in units, plus the guard unit) as in
   * flight for `acceptor`, unless it overlaps an accept already in flight. Between this and
   * `finishAccept` is the window in which Linux runs the architecture's accept with the lock dropped.
   */
  beginAccept(startGfn: number, endGfn: number, acceptor: number): BeginAcceptResult {
    assert(Number.isInteger(acceptor) && acceptor >= 0, `beginAccept: bad acceptor ${acceptor}`);
    const units = this.unitsOf(startGfn, endGfn);
    if (units === null) return { kind: 'nothing' };
    let freeSlot = -1;
    for (let slot = 0; slot < this.inFlightAcceptor.length; slot++) {
      const holder = this.inFlightAcceptor[slot];
      if (holder === noTicket) {
        if (freeSlot === -1) freeSlot = slot;
        continue;
      }
      assert(holder !== acceptor, `acceptor ${acceptor} already has an accept in flight`);
      // Compared in units, not frames: two requests for different pages of one unit still collide.
      if (this.inFlightEndUnit[slot] <= units.startUnit || this.inFlightStartUnit[slot] >= units.endUnit)
        continue;
      return { kind: 'busy', heldBy: holder };
    }
    assert(freeSlot !== -1, `more than ${this.inFlightAcceptor.length} accepts in flight`);
    this.inFlightStartUnit[freeSlot] = units.startUnit;
    this.inFlightEndUnit[freeSlot] = units.endUnit;
    this.inFlightAcceptor[freeSlot] = acceptor;
    return {
      kind: 'started',
      ticket: freeSlot,
      startUnit: units.startUnit,
      endUnit: units.endUnit,
      guardUnit: units.guardUnit,
    };
  }

  /**
   * Second half of `accept_memory()`: accept every run of set bits in the registered units, clear them,
   * and take the registration off the in-flight list.
   */
  finishAccept(ticket: number, acceptor: number): AcceptedPieces {
    assert(
      Number.isInteger(ticket) && ticket >= 0 && ticket < this.inFlightAcceptor.length,
      `finishAccept: bad ticket ${ticket}`,
    );
    assert(
      this.inFlightAcceptor[ticket] === acceptor,
      `finishAccept: ticket ${ticket} is not held by ${acceptor}`,
    );
    const pieces = newPieces();
    const endUnit = this.inFlightEndUnit[ticket];
    let unit = this.inFlightStartUnit[ticket];
    while (unit < endUnit) {
      if (this.bits[unit] === 0) {
        unit++;
        continue;
      }
      let runEnd = unit + 1;
      while (runEnd < endUnit && this.bits[runEnd] === 1) runEnd++;
      this.acceptPages(
        this.baseGfn + unit * unacceptedUnitPages,
        this.baseGfn + runEnd * unacceptedUnitPages,
        pieces,
      );
      this.bits.fill(0, unit, runEnd);
      unit = runEnd;
    }
    this.inFlightAcceptor[ticket] = noTicket;
    return pieces;
  }

  /** `accept_memory()` in one step: 'busy' when it overlaps an accept in flight. */
  acceptMemory(startGfn: number, endGfn: number, acceptor: number): AcceptMemoryResult {
    const begun = this.beginAccept(startGfn, endGfn, acceptor);
    if (begun.kind === 'busy') return begun;
    if (begun.kind === 'nothing') return { kind: 'done', guardUnit: -1, ...newPieces() };
    return { kind: 'done', guardUnit: begun.guardUnit, ...this.finishAccept(begun.ticket, acceptor) };
  }

  /** The bitmap units [startUnit, endUnit) a kernel request covers, guard unit included; null if none. */
  private unitsOf(
    startGfn: number,
    endGfn: number,
  ): { startUnit: number; endUnit: number; guardUnit: number } | null {
    this.assertRange(startGfn, endGfn);
    if (endGfn < this.baseGfn) return null;
    const start = Math.max(startGfn, this.baseGfn) - this.baseGfn;
    let end = endGfn - this.baseGfn;
    let guardUnit = -1;
    if (end % unacceptedUnitPages === 0) {
      guardUnit = end / unacceptedUnitPages;
      end += unacceptedUnitPages;
    }
    const bitmapPages = this.unitCount * unacceptedUnitPages;
    if (end > bitmapPages) end = bitmapPages;
    if (guardUnit >= this.unitCount) guardUnit = -1;
    const startUnit = Math.floor(start / unacceptedUnitPages);
    const endUnit = Math.ceil(end / unacceptedUnitPages);
    if (startUnit >= endUnit) return null;
    return { startUnit, endUnit, guardUnit };
  }

  /** Hand [start, end) to the architecture, checking and recording the once-only history. */
  private acceptPages(start: number, end: number, pieces: MutablePieces): void {
    if (start >= end) return;
    assert(end <= this.gfnCount, `accept of [${start}, ${end}) past guest memory (${this.gfnCount} frames)`);
    const again = this.acceptedHistory.indexOf(1, start);
    if (again !== -1 && again < end) {
      pieces.violations.push({
        invariant: 'INV-11',
        mechanism: 'unaccepted-memory',
        gfn: again,
        npages: 1,
        detail: `frame ${again} was accepted before and is being accepted again`,
      });
    }
    const outcome = this.archAccept(start, end);
    if (!outcome.ok) {
      pieces.failures.push(outcome.detail);
      if (outcome.violation !== null) pieces.violations.push(outcome.violation);
    }
    this.acceptedHistory.fill(1, start, end);
    pieces.accepted.push([start, end]);
  }

  private assertRange(startGfn: number, endGfn: number): void {
    assert(
      Number.isSafeInteger(startGfn) && Number.isSafeInteger(endGfn) && 0 <= startGfn && startGfn < endGfn,
      `unaccepted memory: bad range [${startGfn}, ${endGfn})`,
    );
    assert(endGfn <= this.gfnCount, `unaccepted memory: range end ${endGfn} past ${this.gfnCount} frames`);
  }
}

interface MutablePieces {
  accepted: Array<readonly [number, number]>;
  violations: ValidateOnceViolation[];
  failures: string[];
}

function newPieces(): MutablePieces {
  return { accepted: [], violations: [], failures: [] };
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

function roundDown(value: number, multiple: number): number {
  return Math.floor(value / multiple) * multiple;
}
