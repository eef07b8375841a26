import { assert } from '../assert.js';
import {
  type GuestPvalidateOutcome,
  guestPvalidate,
  type PvalidateNpfReason,
  type SnpGuestView,
  sevTermSetLinux,
} from './pvalidate.js';
import { framesPer2M, type Rmp, type RmpPageSize, rmpFlags, rmpPageSize2M, rmpPageSize4K } from './rmp.js';

/**
 * The GHCB Page State Change (PSC) request of SEV-SNP: both the hypervisor's processing and the guest's
 * checks of what the hypervisor did.
 *
 * The request lives in the GHCB shared buffer (arch/x86/include/asm/sev-common.h):
 *   struct psc_hdr   { u16 cur_entry; u16 end_entry; u32 reserved; }
 *   struct psc_entry { u64 cur_page:12, gfn:40, operation:4, pagesize:1, reserved:7; }
 * The shared buffer is 2032 bytes, so it holds an 8-byte header and (2032 - 8) / 8 = 253 entries: the
 * GHCB-defined maximum. Older kernels call it VMGEXIT_PSC_MAX_ENTRY; newer ones keep that name for the
 * guest's own (smaller, 64-entry, stack-bound) descriptor and use VMGEXIT_PSC_MAX_COUNT = 253 on the
 * hypervisor side.
 *
 * Hypervisor side (arch/x86/kvm/svm/sev.c, `snp_begin_psc()` / `__snp_complete_one_psc()`):
 *   - end_entry >= 253                                    -> VMGEXIT_PSC_ERROR_INVALID_HDR, nothing done
 *   - entries from cur_entry: an entry whose cur_page > its page count, or whose gfn is not aligned to
 *     its size                                            -> VMGEXIT_PSC_ERROR_INVALID_ENTRY
 *   - fully done entries (cur_page == page count) are skipped, advancing cur_entry
 *   - a 2 MiB entry with 0 < cur_page < 512 is finished page by page at 4 KiB from cur_page
 *   - following entries with the same operation, the next gfn, cur_page 0 and the same size are merged
 *     into the same KVM_HC_MAP_GPA_RANGE exit to userspace
 *   - operations other than private (1) / shared (2) are treated as done without an exit
 *   - after each exit: every merged entry gets cur_page = its page count and cur_entry moves past them
 *   - a failed exit                                       -> VMGEXIT_PSC_ERROR_GENERIC
 * Error values are written to SW_EXITINFO2 (sev-common.h: GENERIC = 0x100 << 32, INVALID_HDR =
 * (1 << 32) | 1, INVALID_ENTRY = (1 << 32) | 2).
 *
 * Guest side (arch/x86/coco/sev/core.c, `vmgexit_psc()` and `__set_pages_state()`): the guest repeats
 * the VMGEXIT while cur_entry <= end_entry and terminates (SEV_TERM_SET_LINUX, GHCB_TERM_PSC) when the
 * hypervisor returns an error, sets the reserved header field, grows end_entry, or moves cur_entry below
 * its value at the start of the request. Around the request it rescinds validation before making pages
 * shared and validates after making them private.
 */

/** Entries one PSC request can carry (GHCB spec; VMGEXIT_PSC_MAX_COUNT in sev-common.h). */
export const pscEntriesMax = 253;
/** GHCB shared buffer bytes (GHCB_SHARED_BUF_SIZE): the 253 is derived from it. */
export const ghcbSharedBufferBytes = 2032;
const pscHeaderBytes = 8;
const pscEntryBytes = 8;
assert(
  pscEntriesMax === (ghcbSharedBufferBytes - pscHeaderBytes) / pscEntryBytes,
  '253 PSC entries fill the GHCB shared buffer',
);

/** PSC operations (VMGEXIT_PSC_OP_PRIVATE / _SHARED). */
export const pscOpPrivate = 1;
export const pscOpShared = 2;

/** SW_EXITINFO2 values (sev-common.h). Below 2^53, so exact as JS numbers. */
export const pscErrorGeneric = 0x100 * 2 ** 32;
export const pscErrorInvalidHeader = 2 ** 32 + 1;
export const pscErrorInvalidEntry = 2 ** 32 + 2;

/** Linux's termination reason code for a failed PSC (sev-common.h, GHCB_TERM_PSC). */
export const ghcbTermPsc = 1;

/** Bit widths of the entry fields, so a descriptor built in JS stays encodable. */
const curPageMax = (1 << 12) - 1;
const gfnMax = 2 ** 40 - 1;
const operationMax = (1 << 4) - 1;

export interface PscHeader {
  curEntry: number;
  endEntry: number;
  reserved: number;
}

export interface PscEntry {
  curPage: number;
  gfn: number;
  operation: number;
  pageSize: RmpPageSize;
}

/** One PSC request as it sits in the GHCB shared buffer: always 253 entry slots, zero when unused. */
export interface PscDescriptor {
  readonly header: PscHeader;
  readonly entries: PscEntry[];
}

export function createPscDescriptor(): PscDescriptor {
  const entries: PscEntry[] = [];
  for (let i = 0; i < pscEntriesMax; i++)
    entries.push({ curPage: 0, gfn: 0, operation: 0, pageSize: rmpPageSize4K });
  return { header: { curEntry: 0, endEntry: 0, reserved: 0 }, entries };
}

/** One KVM_HC_MAP_GPA_RANGE exit: the merged range the hypervisor converts in one go. */
export interface MapGpaRangeExit {
  readonly gfn: number;
  readonly npages: number;
  readonly op: 'private' | 'shared';
  readonly pageSize: RmpPageSize;
  /** How many PSC entries were merged into this exit. */
  readonly entryCount: number;
}

export type PscHostResultName = 'OK' | 'INVALID_HDR' | 'INVALID_ENTRY' | 'GENERIC';

export interface PscHostResult {
  readonly name: PscHostResultName;
  /** What the hypervisor writes to SW_EXITINFO2. */
  readonly swExitInfo2: number;
  readonly exits: readonly MapGpaRangeExit[];
  /** Index of the offending entry for INVALID_ENTRY, else -1. */
  readonly entryIndex: number;
}

/** The hypervisor's view of one SNP guest while it processes PSC requests. */
export interface PscHostContext {
  readonly rmp: Rmp;
  readonly asid: number;
  readonly gfnCount: number;
  /** Where each guest frame lives in host memory; -1 when unbacked. */
  pfnOf(gfn: number): number;
  /** Per guest frame: 1 = shared, 0 = private. The reference the host's trackers are checked against. */
  readonly sharedTruth: Uint8Array;
  /** Told about every completed conversion (e.g. to update a shared-range tracker). */
  onConverted?(gfn: number, npages: number, op: 'private' | 'shared'): void;
}

/**
 * Process one PSC VMGEXIT the way KVM does (see the top of this file). Mutates the descriptor's
 * header and entries exactly where KVM writes them back to the guest.
 */
export function processPsc(desc: PscDescriptor, host: PscHostContext): PscHostResult {
  assert(desc.entries.length === pscEntriesMax, 'a PSC descriptor always has 253 entry slots');
  assert(host.sharedTruth.length === host.gfnCount, 'sharedTruth must have one byte per guest frame');
  const header = desc.header;
  assert(isU16(header.curEntry) && isU16(header.endEntry), 'PSC header indices are u16 fields');
  const exits: MapGpaRangeExit[] = [];
  // KVM copies the indices once: the guest may rewrite the buffer while the host works on it.
  const indexEnd = header.endEntry;
  if (indexEnd >= pscEntriesMax) {
    return result('INVALID_HDR', pscErrorInvalidHeader, exits, -1);
  }
  // Each pass handles at least one entry, so 253 passes (plus the final empty one) bound the loop.
  for (let pass = 0; pass <= pscEntriesMax; pass++) {
    let index = header.curEntry;
    let gfn = 0;
    let npages = 0;
    let huge = false;
    let start: PscEntry | null = null;
    for (; index <= indexEnd; index++, header.curEntry++) {
      const entry = desc.entries[index];
      const entryPages = entry.pageSize === rmpPageSize2M ? framesPer2M : 1;
      assert(isEncodable(entry), `PSC entry ${index} has a field its bit width cannot hold`);
      if (entry.curPage > entryPages || entry.gfn % entryPages !== 0) {
        return result('INVALID_ENTRY', pscErrorInvalidEntry, exits, index);
      }
      gfn = entry.gfn;
      npages = entryPages;
      huge = entry.pageSize === rmpPageSize2M;
      if (entry.curPage > 0) {
        // A partly done 2 MiB entry is finished at 4 KiB from where the hypervisor stopped.
        npages -= entry.curPage;
        gfn += entry.curPage;
        huge = false;
      }
      if (npages > 0) {
        start = entry;
        break;
      }
    }
    if (start === null) return result('OK', 0, exits, -1);

    const firstIndex = index;
    let merged = 1;
    // Merge following entries of the same operation that continue the range at the same size.
    // (KVM compares against the start entry's original gfn; the model uses the range's own start,
    // which differs only after a partly done 2 MiB entry, where KVM's comparison looks unintended.)
    while (index + merged <= indexEnd) {
      const next = desc.entries[index + merged];
      if (
        next.operation !== start.operation ||
        next.gfn !== gfn + npages ||
        next.curPage !== 0 ||
        (next.pageSize === rmpPageSize2M) !== huge
      ) {
        break;
      }
      npages += huge ? framesPer2M : 1;
      merged++;
    }

    if (start.operation === pscOpPrivate || start.operation === pscOpShared) {
      const op = start.operation === pscOpPrivate ? 'private' : 'shared';
      exits.push({ gfn, npages, op, pageSize: huge ? rmpPageSize2M : rmpPageSize4K, entryCount: merged });
      if (!mapGpaRange(host, gfn, npages, op, huge)) return result('GENERIC', pscErrorGeneric, exits, -1);
    }
    // Unsupported operations (SMASH/UNSMASH) are completed without an exit, like KVM.
    for (let done = firstIndex; done < firstIndex + merged; done++) {
      const entry = desc.entries[done];
      entry.curPage = entry.pageSize === rmpPageSize2M ? framesPer2M : 1;
    }
    header.curEntry = firstIndex + merged;
  }
  assert(false, 'processPsc: more passes than entries');
}

/**
 * KVM_HC_MAP_GPA_RANGE as the model's VMM carries it out: update the per-page truth and the RMP.
 * (On a real host the RMP side happens in guest_memfd when pages are faulted in or invalidated; doing
 * it here keeps the RMP and the truth in step.) Pages already in the requested state are left alone:
 * re-assigning a private page would clear its validated bit behind the guest's back.
 * Returns false when the range is outside guest memory or unbacked (the VMM's hypercall fails).
 */
function mapGpaRange(
  host: PscHostContext,
  gfn: number,
  npages: number,
  op: 'private' | 'shared',
  huge: boolean,
): boolean {
  if (npages <= 0 || gfn + npages > host.gfnCount) return false;
  const wantShared = op === 'shared' ? 1 : 0;
  for (let page = gfn; page < gfn + npages; ) {
    if (huge && page % framesPer2M === 0 && convert2M(host, page, op)) {
      host.sharedTruth.fill(wantShared, page, page + framesPer2M);
      page += framesPer2M;
      continue;
    }
    if (host.sharedTruth[page] !== wantShared) {
      if (!convert4K(host, page, op)) return false;
      host.sharedTruth[page] = wantShared;
    }
    page++;
  }
  host.onConverted?.(gfn, npages, op);
  return true;
}

/** Try to convert a whole 2 MiB-aligned guest range with one 2 MiB RMP entry; false means use 4 KiB. */
function convert2M(host: PscHostContext, gfn: number, op: 'private' | 'shared'): boolean {
  const pfn = host.pfnOf(gfn);
  if (pfn < 0 || pfn % framesPer2M !== 0) return false;
  for (let offset = 1; offset < framesPer2M; offset++)
    if (host.pfnOf(gfn + offset) !== pfn + offset) return false;
  if (op === 'private') {
    // Partly private already: convert page by page and leave those pages (and their validated bits) alone.
    const firstPrivate = host.sharedTruth.indexOf(0, gfn);
    if (firstPrivate !== -1 && firstPrivate < gfn + framesPer2M) return false;
    return host.rmp.makePrivate(pfn, gfn, host.asid, rmpPageSize2M).ok;
  }
  const flags = host.rmp.flagsOf(pfn);
  if (!(rmpFlags.isAssigned(flags) && rmpFlags.is2M(flags))) return false;
  return host.rmp.makeShared(pfn, rmpPageSize2M).ok;
}

function convert4K(host: PscHostContext, gfn: number, op: 'private' | 'shared'): boolean {
  const pfn = host.pfnOf(gfn);
  if (pfn < 0) return false;
  // A 4 KiB change inside an assigned 2 MiB entry needs the entry split first, as KVM does with PSMASH.
  const governing = host.rmp.governingPfn(pfn);
  const governingFlags = host.rmp.flagsOf(governing);
  if (
    rmpFlags.isAssigned(governingFlags) &&
    rmpFlags.is2M(governingFlags) &&
    !host.rmp.psmash(governing).ok
  ) {
    return false;
  }
  const update =
    op === 'private'
      ? host.rmp.makePrivate(pfn, gfn, host.asid, rmpPageSize4K)
      : host.rmp.makeShared(pfn, rmpPageSize4K);
  return update.ok;
}

function isU16(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

function isEncodable(entry: PscEntry): boolean {
  return (
    Number.isInteger(entry.curPage) &&
    entry.curPage >= 0 &&
    entry.curPage <= curPageMax &&
    Number.isInteger(entry.gfn) &&
    entry.gfn >= 0 &&
    entry.gfn <= gfnMax &&
    Number.isInteger(entry.operation) &&
    entry.operation >= 0 &&
    entry.operation <= operationMax &&
    (entry.pageSize === rmpPageSize4K || entry.pageSize === rmpPageSize2M)
  );
}

function result(
  name: PscHostResultName,
  swExitInfo2: number,
  exits: readonly MapGpaRangeExit[],
  entryIndex: number,
): PscHostResult {
  return { name, swExitInfo2, exits, entryIndex };
}

// ---------------------------------------------------------------------------------------------------
// Guest side

/**
 * Build the PSC descriptors Linux's `__set_pages_state()` would send for [gfn, gfn + npages): 2 MiB
 * entries where the range is 2 MiB-aligned and at least 2 MiB remain, else 4 KiB entries, at most
 * `entriesMax` per descriptor (253 by the GHCB; Linux itself uses 64 to bound its stack).
 */
export function buildPscDescriptors(
  gfn: number,
  npages: number,
  op: 'private' | 'shared',
  entriesMax: number = pscEntriesMax,
): PscDescriptor[] {
  assert(Number.isSafeInteger(gfn) && gfn >= 0, `buildPscDescriptors: bad gfn ${gfn}`);
  assert(Number.isSafeInteger(npages) && npages > 0, `buildPscDescriptors: bad npages ${npages}`);
  assert(
    Number.isInteger(entriesMax) && entriesMax >= 1 && entriesMax <= pscEntriesMax,
    `buildPscDescriptors: entriesMax must be 1..${pscEntriesMax}, got ${entriesMax}`,
  );
  const descriptors: PscDescriptor[] = [];
  const end = gfn + npages;
  let page = gfn;
  while (page < end) {
    const desc = createPscDescriptor();
    let count = 0;
    while (page < end && count < entriesMax) {
      const huge = page % framesPer2M === 0 && end - page >= framesPer2M;
      const entry = desc.entries[count];
      entry.gfn = page;
      entry.operation = op === 'private' ? pscOpPrivate : pscOpShared;
      entry.pageSize = huge ? rmpPageSize2M : rmpPageSize4K;
      entry.curPage = 0;
      page += huge ? framesPer2M : 1;
      count++;
    }
    desc.header.curEntry = 0;
    desc.header.endEntry = count - 1;
    descriptors.push(desc);
  }
  return descriptors;
}

export type GuestPscTermination = 'host-error' | 'reserved-set' | 'end-entry-grew' | 'cur-entry-backwards';

export type GuestPscOutcome =
  | { readonly kind: 'done'; readonly calls: number }
  | {
      readonly kind: 'terminate';
      readonly reasonSet: number;
      readonly reasonCode: number;
      readonly why: GuestPscTermination;
      readonly calls: number;
      readonly swExitInfo2: number;
    }
  /** Model-only: Linux would loop forever on a hypervisor that never advances cur_entry. */
  | { readonly kind: 'stalled'; readonly calls: number };

/** VMGEXITs one request may take before the model calls the hypervisor stalled (STYLE: every loop bounded). */
export const pscGuestCallsMax = 4 * pscEntriesMax;

/**
 * The guest's loop around the PSC VMGEXIT (`vmgexit_psc()`): call the hypervisor while
 * cur_entry <= end_entry and check what it wrote back. Note that Linux compares cur_entry with its
 * value at the start of the request, not with the previous round: a hypervisor may move it back and
 * forth above that point without being caught, and the model keeps that behaviour.
 */
export function guestPscRequest(
  desc: PscDescriptor,
  callHost: (desc: PscDescriptor) => number,
  callsMax: number = pscGuestCallsMax,
): GuestPscOutcome {
  const header = desc.header;
  const curEntryAtStart = header.curEntry;
  const endEntryAtStart = header.endEntry;
  let calls = 0;
  while (header.curEntry <= header.endEntry) {
    if (calls >= callsMax) return { kind: 'stalled', calls };
    const swExitInfo2 = callHost(desc);
    calls++;
    if (swExitInfo2 !== 0) return terminatePsc('host-error', calls, swExitInfo2);
    if (header.reserved !== 0) return terminatePsc('reserved-set', calls, 0);
    if (header.endEntry > endEntryAtStart) return terminatePsc('end-entry-grew', calls, 0);
    if (curEntryAtStart > header.curEntry) return terminatePsc('cur-entry-backwards', calls, 0);
  }
  return { kind: 'done', calls };
}

function terminatePsc(why: GuestPscTermination, calls: number, swExitInfo2: number): GuestPscOutcome {
  return { kind: 'terminate', reasonSet: sevTermSetLinux, reasonCode: ghcbTermPsc, why, calls, swExitInfo2 };
}

/** The steps of a conversion in the order the guest took them, for tests and traces. */
export type ConversionStep = 'rescind' | 'psc' | 'validate';

export interface SnpGuestContext {
  readonly rmp: Rmp;
  readonly guest: SnpGuestView;
  /** Performs the VMGEXIT: returns SW_EXITINFO2 (e.g. `(d) => processPsc(d, host).swExitInfo2`). */
  callHost(desc: PscDescriptor): number;
  /** Resolves an #NPF raised by PVALIDATE (e.g. PSMASH on a size mismatch); true means retry. */
  resolveNpf?(reason: PvalidateNpfReason, gfn: number, pfn: number): boolean;
  readonly entriesMax?: number;
}

export type SetPagesStateOutcome =
  | { readonly kind: 'ok'; readonly steps: readonly ConversionStep[] }
  | { readonly kind: 'psc-failed'; readonly steps: readonly ConversionStep[]; readonly psc: GuestPscOutcome }
  | {
      readonly kind: 'pvalidate-failed';
      readonly steps: readonly ConversionStep[];
      readonly pvalidate: GuestPvalidateOutcome;
    };

/**
 * Linux's `set_pages_state()`: convert [gfn, gfn + npages) with PSC requests. Validation is rescinded
 * before a private->shared request, so a page the guest gives up is never left both assigned to it and
 * validated (if the hypervisor skips the conversion, a stale private access faults instead of working).
 * Validation comes after a shared->private request, because PVALIDATE only works on a page the RMP
 * already assigns to the guest.
 */
export function guestSetPagesState(
  ctx: SnpGuestContext,
  gfn: number,
  npages: number,
  op: 'private' | 'shared',
): SetPagesStateOutcome {
  const steps: ConversionStep[] = [];
  for (const desc of buildPscDescriptors(gfn, npages, op, ctx.entriesMax)) {
    const entryCount = desc.header.endEntry + 1;
    if (op === 'shared') {
      steps.push('rescind');
      const failed = pvalidateEntries(ctx, desc, entryCount, false);
      if (failed) return { kind: 'pvalidate-failed', steps, pvalidate: failed };
    }
    steps.push('psc');
    const psc = guestPscRequest(desc, (d) => ctx.callHost(d));
    if (psc.kind !== 'done') return { kind: 'psc-failed', steps, psc };
    if (op === 'private') {
      steps.push('validate');
      const failed = pvalidateEntries(ctx, desc, entryCount, true);
      if (failed) return { kind: 'pvalidate-failed', steps, pvalidate: failed };
    }
  }
  return { kind: 'ok', steps };
}

/** Bound on #NPF round trips for one entry (one PSMASH is all a size mismatch should need). */
const npfRetriesMax = 2;

function pvalidateEntries(
  ctx: SnpGuestContext,
  desc: PscDescriptor,
  entryCount: number,
  validate: boolean,
): GuestPvalidateOutcome | null {
  for (let i = 0; i < entryCount; i++) {
    const entry = desc.entries[i];
    let outcome = guestPvalidate(ctx.rmp, ctx.guest, entry.gfn, entry.pageSize, validate);
    for (let retry = 0; outcome.kind === 'npf' && retry < npfRetriesMax; retry++) {
      if (!ctx.resolveNpf?.(outcome.reason, outcome.gfn, outcome.pfn)) break;
      outcome = guestPvalidate(ctx.rmp, ctx.guest, entry.gfn, entry.pageSize, validate);
    }
    if (outcome.kind !== 'ok') return outcome;
  }
  return null;
}
