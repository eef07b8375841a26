import { assert } from '../assert.js';
import { framesPer2M, type Rmp, type RmpPageSize, rmpFlags, rmpPageSize2M, rmpPageSize4K } from './rmp.js';

/**
 * PVALIDATE: an SNP guest validates (or rescinds validation of) one of its pages in the RMP, and the
 * guest-side policy Linux wraps around it.
 *
 * What the instruction does (AMD APM vol. 3, PVALIDATE): the guest names a page and a size (ECX 0 =
 * 4 KiB, 1 = 2 MiB) and whether to validate (EDX = 1) or rescind (EDX = 0). The CPU walks the nested
 * page table to the host frame and checks that frame's RMP entry:
 *   - misaligned address for the size                         -> RAX = FAIL_INPUT (1)
 *   - entry not assigned to this guest, or at another GPA     -> #NPF to the hypervisor (RMP violation)
 *   - 2 MiB request on a 4 KiB entry                          -> RAX = FAIL_SIZEMISMATCH (6)
 *   - 4 KiB request inside a 2 MiB entry                      -> #NPF with the size-mismatch bit; the
 *                                                                hypervisor PSMASHes and the guest retries
 *   - validated bit already as requested                      -> RAX = 0 with CF set: "no RMP change".
 *                                                                Linux turns CF into PVALIDATE_FAIL_NOUPDATE
 *                                                                (255, software-defined, asm/sev.h)
 *   - otherwise the validated bit flips                       -> RAX = SUCCESS (0)
 *
 * Guest policy (arch/x86/coco/sev/core.c, `pval_pages()` / `pvalidate_pages()`): try the entry's size;
 * on FAIL_SIZEMISMATCH for a 2 MiB entry, validate its 512 4 KiB pages one by one; any other non-zero
 * result terminates the guest with reason set SEV_TERM_SET_LINUX (1), code GHCB_TERM_PVALIDATE (2)
 * (arch/x86/include/asm/sev-common.h). That includes "no RMP change" while validating: a page that is
 * already validated means someone (a malicious hypervisor remapping pages, or a guest bug) is trying to
 * get one page validated twice, which is INV-11.
 */

export const pvalidateReturnCodes = {
  SUCCESS: 0,
  FAIL_INPUT: 1,
  FAIL_SIZEMISMATCH: 6,
  /** Not a hardware RAX value: CF=1, as Linux reports it (PVALIDATE_FAIL_NOUPDATE). */
  NO_RMP_CHANGE: 255,
} as const;
export type PvalidateReturnName = keyof typeof pvalidateReturnCodes;

/** Linux's termination reason for a PVALIDATE failure (sev-common.h). */
export const sevTermSetLinux = 1;
export const ghcbTermPvalidate = 2;

/** Why the hardware exits to the hypervisor with #NPF instead of returning a code to the guest. */
export type PvalidateNpfReason =
  | 'unmapped'
  | 'not-assigned'
  | 'asid-mismatch'
  | 'gpa-mismatch'
  | 'immutable'
  | 'size-mismatch';

export type PvalidateResult =
  | { readonly kind: 'returned'; readonly name: PvalidateReturnName; readonly rc: number }
  | {
      readonly kind: 'npf';
      readonly reason: PvalidateNpfReason;
      readonly gfn: number;
      readonly pfn: number;
    };

/** What PVALIDATE needs to know about the guest executing it. */
export interface SnpGuestView {
  readonly asid: number;
  /** Nested-page-table translation of a guest frame to its host frame; -1 when not mapped. */
  pfnOf(gfn: number): number;
}

/**
 * INV-11 record: a page was about to be validated/accepted a second time. Shared by PVALIDATE (SNP),
 * TDG.MEM.PAGE.ACCEPT (TDX) and the unaccepted-memory bitmap.
 */
export interface ValidateOnceViolation {
  readonly invariant: 'INV-11';
  readonly mechanism: 'pvalidate' | 'tdg.mem.page.accept' | 'unaccepted-memory';
  readonly gfn: number;
  readonly npages: number;
  readonly detail: string;
}

const returned: { readonly [K in PvalidateReturnName]: PvalidateResult } = {
  SUCCESS: Object.freeze({ kind: 'returned', name: 'SUCCESS', rc: pvalidateReturnCodes.SUCCESS }),
  FAIL_INPUT: Object.freeze({ kind: 'returned', name: 'FAIL_INPUT', rc: pvalidateReturnCodes.FAIL_INPUT }),
  FAIL_SIZEMISMATCH: Object.freeze({
    kind: 'returned',
    name: 'FAIL_SIZEMISMATCH',
    rc: pvalidateReturnCodes.FAIL_SIZEMISMATCH,
  }),
  NO_RMP_CHANGE: Object.freeze({
    kind: 'returned',
    name: 'NO_RMP_CHANGE',
    rc: pvalidateReturnCodes.NO_RMP_CHANGE,
  }),
};

/**
 * A PVALIDATE loses its compare-exchange only when another hyperthread changed the same entry in
 * between; after that change the retry sees the new state and returns. More losses than this mean a
 * livelock in the model, which is a bug.
 */
const pvalidateAttemptsMax = 8;

/** Execute PVALIDATE for guest frame `gfn` (see the table at the top of this file). */
export function pvalidate(
  rmp: Rmp,
  guest: SnpGuestView,
  gfn: number,
  pageSize: RmpPageSize,
  validate: boolean,
): PvalidateResult {
  assert(Number.isSafeInteger(gfn) && gfn >= 0, `PVALIDATE: bad gfn ${gfn}`);
  assert(pageSize === rmpPageSize4K || pageSize === rmpPageSize2M, `PVALIDATE: bad page size ${pageSize}`);
  if (pageSize === rmpPageSize2M && gfn % framesPer2M !== 0) return returned.FAIL_INPUT;
  const pfn = guest.pfnOf(gfn);
  if (pfn < 0) return npf('unmapped', gfn, pfn);

  for (let attempt = 0; attempt < pvalidateAttemptsMax; attempt++) {
    const governing = rmp.governingPfn(pfn);
    const flags = rmp.flagsOf(governing);
    if (!rmpFlags.isAssigned(flags)) return npf('not-assigned', gfn, pfn);
    if (rmpFlags.asid(flags) !== guest.asid) return npf('asid-mismatch', gfn, pfn);
    if (rmpFlags.isImmutable(flags)) return npf('immutable', gfn, pfn);
    if (rmp.gfnWord(governing) + (pfn - governing) !== gfn) return npf('gpa-mismatch', gfn, pfn);
    const entryIs2M = rmpFlags.is2M(flags);
    if (pageSize === rmpPageSize2M && !entryIs2M) return returned.FAIL_SIZEMISMATCH;
    if (pageSize === rmpPageSize4K && entryIs2M) return npf('size-mismatch', gfn, pfn);
    if (rmpFlags.isValidated(flags) === validate) return returned.NO_RMP_CHANGE;
    if (rmp.compareExchangeValidated(governing, flags, validate)) return returned.SUCCESS;
  }
  assert(false, `PVALIDATE: gfn ${gfn} lost ${pvalidateAttemptsMax} compare-exchanges in a row`);
}

export type GuestPvalidateOutcome =
  | { readonly kind: 'ok'; readonly fellBackTo4K: boolean }
  | {
      readonly kind: 'terminate';
      readonly reasonSet: number;
      readonly reasonCode: number;
      readonly gfn: number;
      readonly rc: number;
      /** Set when the failure is a second validation of a validated page (INV-11). */
      readonly violation: ValidateOnceViolation | null;
    }
  | {
      readonly kind: 'npf';
      readonly reason: PvalidateNpfReason;
      readonly gfn: number;
      readonly pfn: number;
    };

/**
 * The Linux guest's use of PVALIDATE for one PSC entry: the entry's size first, the 4 KiB fallback on
 * FAIL_SIZEMISMATCH, termination on anything else. An #NPF is handed back to the caller: on hardware
 * it is the hypervisor's to resolve before the guest re-executes the instruction.
 */
export function guestPvalidate(
  rmp: Rmp,
  guest: SnpGuestView,
  gfn: number,
  pageSize: RmpPageSize,
  validate: boolean,
): GuestPvalidateOutcome {
  const first = pvalidate(rmp, guest, gfn, pageSize, validate);
  if (first.kind === 'npf') return first;
  if (first.name === 'SUCCESS') return { kind: 'ok', fellBackTo4K: false };
  if (first.name !== 'FAIL_SIZEMISMATCH' || pageSize !== rmpPageSize2M) {
    return terminate(gfn, first.rc, validate, pageSize === rmpPageSize2M ? framesPer2M : 1);
  }
  for (let page = gfn; page < gfn + framesPer2M; page++) {
    const small = pvalidate(rmp, guest, page, rmpPageSize4K, validate);
    if (small.kind === 'npf') return small;
    if (small.name !== 'SUCCESS') return terminate(page, small.rc, validate, 1);
  }
  return { kind: 'ok', fellBackTo4K: true };
}

function terminate(gfn: number, rc: number, validate: boolean, npages: number): GuestPvalidateOutcome {
  const doubleValidation = validate && rc === pvalidateReturnCodes.NO_RMP_CHANGE;
  return {
    kind: 'terminate',
    reasonSet: sevTermSetLinux,
    reasonCode: ghcbTermPvalidate,
    gfn,
    rc,
    violation: doubleValidation
      ? {
          invariant: 'INV-11',
          mechanism: 'pvalidate',
          gfn,
          npages,
          detail: 'PVALIDATE of an already-validated page made no RMP change; the guest terminates',
        }
      : null,
  };
}

function npf(reason: PvalidateNpfReason, gfn: number, pfn: number): PvalidateResult {
  return { kind: 'npf', reason, gfn, pfn };
}
