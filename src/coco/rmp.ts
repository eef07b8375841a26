import { assert, assertDebug } from '../assert.js';
import { largePage2MBytes, pageBytes } from '../constants.js';
import { rmpEntryI32s, rmpI32s } from '../memory/sub-layouts.js';

/**
 * The SEV-SNP Reverse Map Table: one entry per host-physical 4 KiB frame that says who owns it.
 *
 * An entry records (arch/x86/include/asm/sev.h, `struct rmp_state`, and AMD APM vol. 2 "Reverse Map
 * Table"): whether the frame is assigned to a guest, to which ASID, at which guest frame (GPA), at
 * which page size, whether the guest has validated it (PVALIDATE), and whether it is immutable (only
 * the AMD-SP firmware may change it). A 2 MiB assignment lives in the 2 MiB-aligned head entry, which
 * is then authoritative for all 512 frames; the other 511 entries stay unassigned until PSMASH splits
 * the page (the same lookup rule as `__snp_lookup_rmpentry()` in arch/x86/virt/svm/sev.c).
 *
 * Storage: two Int32 words per frame in a caller-provided Int32Array, so the machine layout can place
 * the table in the shared buffer. Word 0 holds the flags and the ASID and is read and written with
 * Atomics (PVALIDATE flips the validated bit with a compare-exchange, so two hyperthreads validating
 * the same frame cannot both succeed); word 1 holds the guest frame number and is written before
 * word 0 on update, read after it.
 */

/** RMP page sizes, as the hardware encodes them (RMP_PG_SIZE_4K / RMP_PG_SIZE_2M in asm/sev.h). */
export const rmpPageSize4K = 0;
export const rmpPageSize2M = 1;
export type RmpPageSize = typeof rmpPageSize4K | typeof rmpPageSize2M;

/** 4 KiB frames per 2 MiB RMP entry. */
export const framesPer2M = largePage2MBytes / pageBytes;

/** The entry's words and the table's size are declared with the other sub-layouts (memory/sub-layouts.ts). */
export { rmpEntryI32s, rmpI32s } from '../memory/sub-layouts.js';

// Word 0 bits. The ASID sits above the flags; SNP ASIDs are small (the minimum SEV-ES ASID is
// reported by CPUID 0x8000001F and is below 2^10 on shipping parts), 20 bits leaves room.
const flagAssigned = 1 << 0;
const flagValidated = 1 << 1;
const flagSize2M = 1 << 2;
const flagImmutable = 1 << 3;
const asidShift = 8;
/** Largest ASID an entry can hold. */
export const rmpAsidMax = (1 << 20) - 1;
assert(rmpAsidMax << asidShift > 0, 'RMP ASID field must fit in the positive range of an Int32 word');

/** RMPUPDATE failure codes (AMD APM vol. 3, RMPUPDATE; RMPUPDATE_FAIL_OVERLAP = 4 in asm/sev.h). */
export const rmpUpdateReturnCodes = {
  FAIL_INPUT: 1,
  FAIL_PERMISSION: 2,
  FAIL_INUSE: 3,
  FAIL_OVERLAP: 4,
} as const;
export type RmpUpdateFailure = keyof typeof rmpUpdateReturnCodes;

export type RmpUpdateResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly code: RmpUpdateFailure;
      readonly rc: number;
      readonly pfn: number;
      readonly reason: string;
    };

/** The new state an RMPUPDATE writes (the `struct rmp_state` the instruction takes in RCX). */
export interface RmpUpdateRequest {
  readonly assigned: boolean;
  /** Owner ASID; 0 with `assigned` means firmware-owned (how Linux reclaims pages for the AMD-SP). */
  readonly asid: number;
  /** Guest frame the page is mapped at in the guest; ignored when unassigned. */
  readonly gfn: number;
  readonly pageSize: RmpPageSize;
  readonly immutable: boolean;
}

/** A functional (non-mutating) view of the entry that governs one frame, for checkers and tests. */
export interface RmpEntryView {
  readonly pfn: number;
  /** The frame whose entry is authoritative: `pfn` itself, or the head of a 2 MiB entry. */
  readonly governingPfn: number;
  readonly assigned: boolean;
  readonly validated: boolean;
  readonly pageSize: RmpPageSize;
  readonly immutable: boolean;
  readonly asid: number;
  /** Guest frame `pfn` is assigned at (for a 2 MiB entry: the head's gfn plus the offset). */
  readonly gfn: number;
}

/**
 * INV-10 record: a host access reached a frame the RMP assigns to a guest (or to firmware). The access
 * is reported and refused; the RMP is left exactly as it was — never "fixed up" by unassigning the page.
 */
export interface RmpHostAccessFault {
  readonly invariant: 'INV-10';
  readonly pfn: number;
  readonly write: boolean;
  readonly asid: number;
  readonly gfn: number;
  readonly immutable: boolean;
  /**
   * Whether SNP hardware itself raises the RMP #PF (X86_PF_RMP in the error code): only for writes.
   * Hypervisor reads of guest pages are not RMP-checked on hardware (they return ciphertext); the
   * emulator still reports them because INV-10 forbids any host address space from reaching the
   * frame at all (guest_memfd never maps private memory into the VMM).
   */
  readonly rmpPageFault: boolean;
}

export type HostAccessResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly fault: RmpHostAccessFault };

const okResult: { readonly ok: true } = Object.freeze({ ok: true });

export class Rmp {
  readonly frameCount: number;
  private readonly i32: Int32Array;
  private readonly baseI32Index: number;

  constructor(i32: Int32Array, baseI32Index: number, frameCount: number) {
    assert(Number.isSafeInteger(frameCount) && frameCount > 0, `Rmp: bad frameCount ${frameCount}`);
    assert(Number.isSafeInteger(baseI32Index) && baseI32Index >= 0, `Rmp: bad baseI32Index ${baseI32Index}`);
    assert(
      baseI32Index + rmpI32s(frameCount) <= i32.length,
      `Rmp: ${frameCount} frames need ${rmpI32s(frameCount)} words from ${baseI32Index}, array has ${i32.length}`,
    );
    this.i32 = i32;
    this.baseI32Index = baseI32Index;
    this.frameCount = frameCount;
  }

  /**
   * RMPUPDATE: the host (re)writes the entry of `pfn`. The new entry always starts unvalidated: the
   * guest must PVALIDATE a page after every assignment, which is what lets it notice a remap.
   */
  rmpUpdate(pfn: number, request: RmpUpdateRequest): RmpUpdateResult {
    this.assertPfn(pfn);
    assert(
      Number.isInteger(request.asid) && request.asid >= 0 && request.asid <= rmpAsidMax,
      `RMPUPDATE: bad ASID ${request.asid}`,
    );
    const is2M = request.pageSize === rmpPageSize2M;
    if (is2M) {
      if (pfn % framesPer2M !== 0)
        return fail('FAIL_INPUT', pfn, 'a 2 MiB entry needs a 2 MiB-aligned frame');
      if (pfn + framesPer2M > this.frameCount)
        return fail('FAIL_INPUT', pfn, 'the 2 MiB page runs past the RMP');
      if (request.assigned && request.gfn % framesPer2M !== 0) {
        return fail('FAIL_INPUT', pfn, 'a 2 MiB entry needs a 2 MiB-aligned guest frame');
      }
    }
    if (request.assigned) {
      assert(Number.isSafeInteger(request.gfn) && request.gfn >= 0, `RMPUPDATE: bad gfn ${request.gfn}`);
      assert(request.gfn <= 0x7fffffff, `RMPUPDATE: gfn ${request.gfn} does not fit an Int32 word`);
    }

    const head = pfn - (pfn % framesPer2M);
    const headFlags = this.flagsOf(head);
    const headIs2M = (headFlags & (flagAssigned | flagSize2M)) === (flagAssigned | flagSize2M);
    if (headIs2M) {
      // A 2 MiB entry covers this frame. Only a 2 MiB update of the head itself may replace it; a
      // 4 KiB update inside it must wait for PSMASH (the host's RMPUPDATE_FAIL_OVERLAP case).
      if (!(is2M && pfn === head)) return fail('FAIL_OVERLAP', pfn, 'frame is covered by a 2 MiB entry');
      if (headFlags & flagImmutable) return fail('FAIL_PERMISSION', pfn, 'the 2 MiB entry is immutable');
    } else if (is2M) {
      // A new 2 MiB entry may not overlap any assigned 4 KiB entry of the range.
      for (let frame = pfn; frame < pfn + framesPer2M; frame++) {
        const flags = this.flagsOf(frame);
        if (flags & flagImmutable)
          return fail('FAIL_PERMISSION', frame, 'an entry of the range is immutable');
        if (flags & flagAssigned)
          return fail('FAIL_OVERLAP', frame, 'a 4 KiB entry of the range is assigned');
      }
    } else if (this.flagsOf(pfn) & flagImmutable) {
      return fail('FAIL_PERMISSION', pfn, 'entry is immutable');
    }

    let flags = 0;
    if (request.assigned) flags |= flagAssigned | (request.asid << asidShift);
    if (is2M) flags |= flagSize2M;
    if (request.immutable) flags |= flagImmutable;
    const index = this.entryIndex(pfn);
    // gfn first, flags second: a reader that loads the flags and then the gfn sees a consistent pair.
    Atomics.store(this.i32, index + 1, request.assigned ? request.gfn : 0);
    Atomics.store(this.i32, index, flags);
    assertDebug(this.flagsOf(pfn) === flags, 'RMPUPDATE: entry must read back as written');
    return okResult;
  }

  /** rmp_make_private(): assign `pfn` to guest `asid` at `gfn` (arch/x86/virt/svm/sev.c). */
  makePrivate(pfn: number, gfn: number, asid: number, pageSize: RmpPageSize): RmpUpdateResult {
    return this.rmpUpdate(pfn, { assigned: true, asid, gfn, pageSize, immutable: false });
  }

  /** rmp_make_shared(): give `pfn` back to the hypervisor. */
  makeShared(pfn: number, pageSize: RmpPageSize): RmpUpdateResult {
    return this.rmpUpdate(pfn, { assigned: false, asid: 0, gfn: 0, pageSize, immutable: false });
  }

  /**
   * PSMASH: split the 2 MiB entry headed at `pfn` into 512 4 KiB entries with the same owner and
   * validated state, so the host can then change single frames (KVM does this on an RMP #NPF with the
   * size-mismatch bit, and before converting part of a 2 MiB private page).
   */
  psmash(pfn: number): RmpUpdateResult {
    this.assertPfn(pfn);
    if (pfn % framesPer2M !== 0) return fail('FAIL_INPUT', pfn, 'PSMASH needs a 2 MiB-aligned frame');
    const headFlags = this.flagsOf(pfn);
    if ((headFlags & (flagAssigned | flagSize2M)) !== (flagAssigned | flagSize2M)) {
      return fail('FAIL_INPUT', pfn, 'frame does not head an assigned 2 MiB entry');
    }
    const headGfn = Atomics.load(this.i32, this.entryIndex(pfn) + 1);
    const smallFlags = headFlags & ~flagSize2M;
    // Sub-entries first, the head last, so a concurrent lookup keeps finding one authoritative entry.
    for (let offset = framesPer2M - 1; offset >= 0; offset--) {
      const index = this.entryIndex(pfn + offset);
      Atomics.store(this.i32, index + 1, headGfn + offset);
      Atomics.store(this.i32, index, smallFlags);
    }
    return okResult;
  }

  /**
   * The RMP check on a host access to `pfn` (INV-10). Never changes the RMP: a refused access is
   * reported to the caller, which records the violation; it is not repaired by unassigning the frame.
   */
  checkHostAccess(pfn: number, write: boolean): HostAccessResult {
    this.assertPfn(pfn);
    const governing = this.governingPfn(pfn);
    const flags = this.flagsOf(governing);
    if ((flags & flagAssigned) === 0) return okResult;
    return {
      ok: false,
      fault: {
        invariant: 'INV-10',
        pfn,
        write,
        asid: flags >>> asidShift,
        gfn: this.gfnWord(governing) + (pfn - governing),
        immutable: (flags & flagImmutable) !== 0,
        rmpPageFault: write,
      },
    };
  }

  /** The frame whose entry governs `pfn`: the 2 MiB head when one covers it, else `pfn`. */
  governingPfn(pfn: number): number {
    assertDebug(Number.isInteger(pfn) && pfn >= 0 && pfn < this.frameCount, 'RMP: pfn out of range');
    const head = pfn - (pfn % framesPer2M);
    const headFlags = Atomics.load(this.i32, this.entryIndex(head));
    return (headFlags & (flagAssigned | flagSize2M)) === (flagAssigned | flagSize2M) ? head : pfn;
  }

  /** Raw flags word of the entry stored at `pfn` (not resolved through a 2 MiB head). */
  flagsOf(pfn: number): number {
    return Atomics.load(this.i32, this.entryIndex(pfn));
  }

  /** Raw guest-frame word of the entry stored at `pfn`. */
  gfnWord(pfn: number): number {
    return Atomics.load(this.i32, this.entryIndex(pfn) + 1);
  }

  /**
   * Flip the validated bit of the entry stored at `governingPfn` if its flags still equal `expected`
   * (PVALIDATE's atomic update, see pvalidate.ts). Returns whether this caller won.
   */
  compareExchangeValidated(governingPfn: number, expected: number, validated: boolean): boolean {
    this.assertPfn(governingPfn);
    const replacement = validated ? expected | flagValidated : expected & ~flagValidated;
    return (
      Atomics.compareExchange(this.i32, this.entryIndex(governingPfn), expected, replacement) === expected
    );
  }

  /** Functional read of the entry governing `pfn` (allocates; for checkers, tests and reports). */
  entry(pfn: number): RmpEntryView {
    this.assertPfn(pfn);
    const governing = this.governingPfn(pfn);
    const flags = this.flagsOf(governing);
    const assigned = (flags & flagAssigned) !== 0;
    return {
      pfn,
      governingPfn: governing,
      assigned,
      validated: (flags & flagValidated) !== 0,
      pageSize: flags & flagSize2M ? rmpPageSize2M : rmpPageSize4K,
      immutable: (flags & flagImmutable) !== 0,
      asid: flags >>> asidShift,
      gfn: assigned ? this.gfnWord(governing) + (pfn - governing) : 0,
    };
  }

  private entryIndex(pfn: number): number {
    return this.baseI32Index + pfn * rmpEntryI32s;
  }

  private assertPfn(pfn: number): void {
    assert(Number.isInteger(pfn) && pfn >= 0 && pfn < this.frameCount, `RMP: pfn ${pfn} out of range`);
  }
}

/** Decoders for the flags word, shared with pvalidate.ts so the bit layout stays in this file. */
export const rmpFlags = {
  isAssigned: (flags: number): boolean => (flags & flagAssigned) !== 0,
  isValidated: (flags: number): boolean => (flags & flagValidated) !== 0,
  is2M: (flags: number): boolean => (flags & flagSize2M) !== 0,
  isImmutable: (flags: number): boolean => (flags & flagImmutable) !== 0,
  asid: (flags: number): number => flags >>> asidShift,
} as const;

function fail(code: RmpUpdateFailure, pfn: number, reason: string): RmpUpdateResult {
  return { ok: false, code, rc: rmpUpdateReturnCodes[code], pfn, reason };
}
