import { assert } from '../assert.js';
import { largePage1GBytes, largePage2MBytes, pageBytes } from '../constants.js';
import type { ValidateOnceViolation } from './pvalidate.js';

/**
 * TDX private-memory acceptance: the TD's view of its private pages and Linux's `tdx_accept_memory()`.
 *
 * A private page the VMM adds to a TD (TDH.MEM.PAGE.AUG) is *pending* until the TD accepts it with
 * TDG.MEM.PAGE.ACCEPT; RCX bits 2:0 give the size (0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB). Accepting a page
 * that is already accepted fails with TDX_PAGE_ALREADY_ACCEPTED. Early TDX guest patches tolerated that
 * status; upstream Linux does not: `try_accept_one()` treats any failure as "this size did not work",
 * `tdx_accept_memory()` (arch/x86/coco/tdx/tdx-shared.c) tries 1 GiB, then 2 MiB, then 4 KiB where the
 * address is aligned and enough of the range remains, and returns false when even 4 KiB fails, which
 * its callers turn into a panic. So a second accept of a page stops the guest: INV-11.
 *
 * Status values are the TDX module's (arch/x86/kvm/vmx/tdx_errno.h); they exceed 2^53, so the model
 * keeps them as names with their hex spelling for reports.
 */

export const tdxLevel4K = 0;
export const tdxLevel2M = 1;
export const tdxLevel1G = 2;
export type TdxPageLevel = typeof tdxLevel4K | typeof tdxLevel2M | typeof tdxLevel1G;

/** 4 KiB pages per accept size, indexed by level. */
export const tdxLevelPages: readonly [number, number, number] = [
  1,
  largePage2MBytes / pageBytes,
  largePage1GBytes / pageBytes,
];

export type TdxAcceptStatus =
  | 'TDX_SUCCESS'
  | 'TDX_OPERAND_INVALID'
  | 'TDX_PAGE_SIZE_MISMATCH'
  | 'TDX_PAGE_ALREADY_ACCEPTED'
  | 'TDX_EPT_WALK_FAILED';

export const tdxStatusHex: { readonly [K in TdxAcceptStatus]: string } = {
  TDX_SUCCESS: '0x0000000000000000',
  TDX_OPERAND_INVALID: '0xC000010000000000',
  TDX_PAGE_SIZE_MISMATCH: '0xC0000B0B00000000',
  TDX_PAGE_ALREADY_ACCEPTED: '0x00000B0A00000000',
  TDX_EPT_WALK_FAILED: '0xC0000B0000000000',
};

export type TdxPageState = 'absent' | 'pending' | 'accepted';
const stateAbsent = 0;
const statePending = 1;
const stateAccepted = 2;

/**
 * The private pages of one TD, per guest frame: absent (shared or never added), pending, or accepted,
 * and the largest Secure-EPT leaf the VMM can back each frame with. An accept at a larger size than
 * that fails with TDX_PAGE_SIZE_MISMATCH; a smaller one is served (the VMM splits its mapping).
 */
export class TdxGuestMemory {
  readonly gfnCount: number;
  private readonly states: Uint8Array;
  private readonly levelMax: Uint8Array;

  constructor(gfnCount: number) {
    assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `TdxGuestMemory: bad gfnCount ${gfnCount}`);
    this.gfnCount = gfnCount;
    this.states = new Uint8Array(gfnCount);
    this.levelMax = new Uint8Array(gfnCount);
  }

  /** VMM side (TDH.MEM.PAGE.AUG): absent frames of the range become pending; accepted ones stay. */
  augment(gfn: number, npages: number, levelMax: TdxPageLevel = tdxLevel4K): void {
    this.assertRange(gfn, npages);
    for (let page = gfn; page < gfn + npages; page++) {
      if (this.states[page] === stateAbsent) this.states[page] = statePending;
      this.levelMax[page] = levelMax;
    }
  }

  /** VMM side: the range goes back to shared (the private pages are removed). */
  remove(gfn: number, npages: number): void {
    this.assertRange(gfn, npages);
    this.states.fill(stateAbsent, gfn, gfn + npages);
  }

  state(gfn: number): TdxPageState {
    this.assertRange(gfn, 1);
    const state = this.states[gfn];
    return state === stateAccepted ? 'accepted' : state === statePending ? 'pending' : 'absent';
  }

  /** TDG.MEM.PAGE.ACCEPT of the page of size `level` at `gfn`. */
  pageAccept(gfn: number, level: TdxPageLevel): TdxAcceptStatus {
    assert(level === tdxLevel4K || level === tdxLevel2M || level === tdxLevel1G, `bad TDX level ${level}`);
    assert(Number.isSafeInteger(gfn) && gfn >= 0, `TDG.MEM.PAGE.ACCEPT: bad gfn ${gfn}`);
    const npages = tdxLevelPages[level];
    if (gfn % npages !== 0 || gfn + npages > this.gfnCount) return 'TDX_OPERAND_INVALID';
    const end = gfn + npages;
    for (let page = gfn; page < end; page++) if (this.levelMax[page] < level) return 'TDX_PAGE_SIZE_MISMATCH';
    for (let page = gfn; page < end; page++)
      if (this.states[page] === stateAbsent) return 'TDX_EPT_WALK_FAILED';
    for (let page = gfn; page < end; page++) {
      if (this.states[page] === stateAccepted) return 'TDX_PAGE_ALREADY_ACCEPTED';
    }
    this.states.fill(stateAccepted, gfn, end);
    return 'TDX_SUCCESS';
  }

  private assertRange(gfn: number, npages: number): void {
    assert(
      Number.isSafeInteger(gfn) &&
        Number.isSafeInteger(npages) &&
        gfn >= 0 &&
        npages > 0 &&
        gfn + npages <= this.gfnCount,
      `TdxGuestMemory: range [${gfn}, +${npages}) outside ${this.gfnCount} frames`,
    );
  }
}

/** One TDG.MEM.PAGE.ACCEPT the guest issued. */
export interface TdxAcceptCall {
  readonly gfn: number;
  readonly level: TdxPageLevel;
  readonly status: TdxAcceptStatus;
}

export type TdxAcceptOutcome =
  | { readonly ok: true; readonly calls: readonly TdxAcceptCall[] }
  | {
      readonly ok: false;
      readonly calls: readonly TdxAcceptCall[];
      /** Where even a 4 KiB accept failed; Linux panics here. */
      readonly failedGfn: number;
      readonly status: TdxAcceptStatus;
      readonly violation: ValidateOnceViolation | null;
    };

/** `tdx_accept_memory()` for guest frames [startGfn, endGfn): largest size first, as tdx-shared.c. */
export function tdxAcceptMemory(memory: TdxGuestMemory, startGfn: number, endGfn: number): TdxAcceptOutcome {
  assert(
    Number.isSafeInteger(startGfn) && Number.isSafeInteger(endGfn) && 0 <= startGfn && startGfn <= endGfn,
    `tdxAcceptMemory: bad range [${startGfn}, ${endGfn})`,
  );
  const calls: TdxAcceptCall[] = [];
  let gfn = startGfn;
  // Each round advances by at least one page or returns, so the loop is bounded by the range size.
  while (gfn < endGfn) {
    const remaining = endGfn - gfn;
    let accepted = tryAcceptOne(memory, calls, gfn, remaining, tdxLevel1G);
    if (accepted === 0) accepted = tryAcceptOne(memory, calls, gfn, remaining, tdxLevel2M);
    if (accepted === 0) accepted = tryAcceptOne(memory, calls, gfn, remaining, tdxLevel4K);
    if (accepted === 0) {
      const status = calls[calls.length - 1].status;
      const violation: ValidateOnceViolation | null =
        status === 'TDX_PAGE_ALREADY_ACCEPTED'
          ? {
              invariant: 'INV-11',
              mechanism: 'tdg.mem.page.accept',
              gfn,
              npages: 1,
              detail:
                'TDG.MEM.PAGE.ACCEPT of an already-accepted page; tdx_accept_memory() fails and the guest panics',
            }
          : null;
      return { ok: false, calls, failedGfn: gfn, status, violation };
    }
    gfn += accepted;
  }
  return { ok: true, calls };
}

/** `try_accept_one()`: 0 when the size does not fit here or the TDX module refused it. */
function tryAcceptOne(
  memory: TdxGuestMemory,
  calls: TdxAcceptCall[],
  gfn: number,
  remaining: number,
  level: TdxPageLevel,
): number {
  const npages = tdxLevelPages[level];
  if (gfn % npages !== 0 || remaining < npages) return 0;
  const status = memory.pageAccept(gfn, level);
  calls.push({ gfn, level, status });
  return status === 'TDX_SUCCESS' ? npages : 0;
}
