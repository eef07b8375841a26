import { describe, expect, it } from 'vitest';
import {
  buildPscDescriptors,
  createPscDescriptor,
  guestPscRequest,
  guestSetPagesState,
  type PscDescriptor,
  type PscEntry,
  type PscHostContext,
  processPsc,
  pscEntriesMax,
  pscErrorGeneric,
  pscErrorInvalidEntry,
  pscErrorInvalidHeader,
  pscOpPrivate,
  pscOpShared,
  type SnpGuestContext,
} from '../../src/coco/psc.js';
import { framesPer2M, Rmp, rmpI32s, rmpPageSize2M, rmpPageSize4K } from '../../src/coco/rmp.js';

const gfnCount = 3 * framesPer2M;
const frameCount = 4 * framesPer2M;
const asid = 5;
/** Guest frame g lives at host frame g + 512 (2 MiB-aligned, so 2 MiB pages line up). */
const pfnOf = (gfn: number): number => (gfn >= 0 && gfn < gfnCount ? gfn + framesPer2M : -1);

function setup() {
  const rmp = new Rmp(new Int32Array(rmpI32s(frameCount)), 0, frameCount);
  // Before the guest converts anything, every page is hypervisor-owned (shared).
  const sharedTruth = new Uint8Array(gfnCount).fill(1);
  const converted: Array<[number, number, string]> = [];
  const host: PscHostContext = {
    rmp,
    asid,
    gfnCount,
    pfnOf,
    sharedTruth,
    onConverted: (gfn, npages, op) => converted.push([gfn, npages, op]),
  };
  const ctx: SnpGuestContext = {
    rmp,
    guest: { asid, pfnOf },
    callHost: (desc) => processPsc(desc, host).swExitInfo2,
    // The hypervisor's answer to a size-mismatch #NPF: split the 2 MiB entry (KVM does the same).
    resolveNpf: (reason, _gfn, pfn) => reason === 'size-mismatch' && rmp.psmash(rmp.governingPfn(pfn)).ok,
  };
  return { rmp, sharedTruth, host, ctx, converted };
}

function descriptorOf(entries: ReadonlyArray<Partial<PscEntry>>): PscDescriptor {
  const desc = createPscDescriptor();
  entries.forEach((entry, i) => {
    Object.assign(desc.entries[i], entry);
  });
  desc.header.endEntry = entries.length - 1;
  return desc;
}

const shared4K = (gfn: number): Partial<PscEntry> => ({
  gfn,
  operation: pscOpShared,
  pageSize: rmpPageSize4K,
});
const private4K = (gfn: number): Partial<PscEntry> => ({
  gfn,
  operation: pscOpPrivate,
  pageSize: rmpPageSize4K,
});

describe('PSC request validation (KVM snp_begin_psc)', () => {
  it('rejects end_entry >= 253 as an invalid header, changing nothing', () => {
    const { host, sharedTruth } = setup();
    const desc = descriptorOf([private4K(0)]);
    desc.header.endEntry = pscEntriesMax;
    const result = processPsc(desc, host);
    expect(result).toMatchObject({ name: 'INVALID_HDR', swExitInfo2: pscErrorInvalidHeader, exits: [] });
    expect(pscErrorInvalidHeader).toBe(0x1_0000_0001);
    expect(sharedTruth.every((shared) => shared === 1)).toBe(true);
  });

  it('accepts the full 253 entries, one exit per non-adjacent page', () => {
    const { host, sharedTruth } = setup();
    const desc = descriptorOf(Array.from({ length: pscEntriesMax }, (_, i) => private4K(2 * i)));
    const result = processPsc(desc, host);
    expect(result.name).toBe('OK');
    expect(result.exits).toHaveLength(pscEntriesMax);
    expect(desc.header.curEntry).toBe(pscEntriesMax);
    expect(desc.entries.every((entry) => entry.curPage === 1)).toBe(true);
    expect(sharedTruth[2 * 252]).toBe(0);
    expect(sharedTruth[2 * 252 + 1]).toBe(1);
  });

  it('rejects a 2 MiB entry with a misaligned gfn, and a cur_page beyond the entry, as invalid entries', () => {
    const { host } = setup();
    const misaligned = descriptorOf([
      private4K(0),
      { gfn: 3, operation: pscOpPrivate, pageSize: rmpPageSize2M },
    ]);
    const result = processPsc(misaligned, host);
    expect(result).toMatchObject({ name: 'INVALID_ENTRY', swExitInfo2: pscErrorInvalidEntry, entryIndex: 1 });
    // The first entry was already handled in its own exit before the bad one was reached.
    expect(result.exits).toHaveLength(1);
    expect(misaligned.header.curEntry).toBe(1);

    const tooFar = descriptorOf([{ gfn: 0, operation: pscOpPrivate, pageSize: rmpPageSize4K, curPage: 2 }]);
    expect(processPsc(tooFar, host)).toMatchObject({ name: 'INVALID_ENTRY', entryIndex: 0 });
    const tooFar2M = descriptorOf([
      { gfn: 0, operation: pscOpPrivate, pageSize: rmpPageSize2M, curPage: 513 },
    ]);
    expect(processPsc(tooFar2M, host)).toMatchObject({ name: 'INVALID_ENTRY', entryIndex: 0 });
  });

  it('fails with the generic error when the range is outside guest memory', () => {
    const { host } = setup();
    expect(processPsc(descriptorOf([private4K(gfnCount)]), host)).toMatchObject({
      name: 'GENERIC',
      swExitInfo2: pscErrorGeneric,
    });
  });

  it('does nothing and succeeds when cur_entry is past end_entry or every entry is done', () => {
    const { host, converted } = setup();
    const past = descriptorOf([private4K(0)]);
    past.header.curEntry = 1;
    expect(processPsc(past, host)).toMatchObject({ name: 'OK', exits: [] });
    const done = descriptorOf([
      { ...private4K(0), curPage: 1 },
      { ...private4K(1), curPage: 1 },
    ]);
    expect(processPsc(done, host)).toMatchObject({ name: 'OK', exits: [] });
    expect(done.header.curEntry).toBe(2);
    expect(converted).toEqual([]);
  });

  it('completes unsupported operations without an exit', () => {
    const { host, converted } = setup();
    const desc = descriptorOf([{ gfn: 0, operation: 3, pageSize: rmpPageSize4K }, private4K(9)]);
    const result = processPsc(desc, host);
    expect(result.exits).toEqual([
      { gfn: 9, npages: 1, op: 'private', pageSize: rmpPageSize4K, entryCount: 1 },
    ]);
    expect(desc.entries[0].curPage).toBe(1);
    expect(converted).toEqual([[9, 1, 'private']]);
  });
});

describe('PSC merging by the hypervisor', () => {
  it('merges adjacent entries of the same operation and size into one exit', () => {
    const { host } = setup();
    const desc = descriptorOf([
      private4K(10),
      private4K(11),
      private4K(12),
      shared4K(13),
      private4K(14),
      private4K(16),
      { gfn: framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M },
      { gfn: 2 * framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M },
    ]);
    const exits = processPsc(desc, host).exits.map((exit) => [
      exit.gfn,
      exit.npages,
      exit.op,
      exit.entryCount,
    ]);
    expect(exits).toEqual([
      [10, 3, 'private', 3],
      [13, 1, 'shared', 1],
      [14, 1, 'private', 1],
      [16, 1, 'private', 1],
      [framesPer2M, 2 * framesPer2M, 'private', 2],
    ]);
  });

  it('does not merge a 4 KiB entry with a following 2 MiB entry, nor an entry with cur_page set', () => {
    const { host } = setup();
    const desc = descriptorOf([
      private4K(framesPer2M - 1),
      { gfn: framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M },
      { gfn: 2 * framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M, curPage: 10 },
    ]);
    const exits = processPsc(desc, host).exits.map((exit) => [exit.gfn, exit.npages, exit.pageSize]);
    expect(exits).toEqual([
      [framesPer2M - 1, 1, rmpPageSize4K],
      [framesPer2M, framesPer2M, rmpPageSize2M],
      [2 * framesPer2M + 10, framesPer2M - 10, rmpPageSize4K],
    ]);
  });

  it('finishes a partly done 2 MiB entry at 4 KiB from cur_page', () => {
    const { host, sharedTruth } = setup();
    const desc = descriptorOf([
      { gfn: framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M, curPage: 100 },
    ]);
    const result = processPsc(desc, host);
    expect(result.exits).toEqual([
      {
        gfn: framesPer2M + 100,
        npages: framesPer2M - 100,
        op: 'private',
        pageSize: rmpPageSize4K,
        entryCount: 1,
      },
    ]);
    expect(desc.entries[0].curPage).toBe(framesPer2M);
    expect(sharedTruth[framesPer2M + 99]).toBe(1);
    expect(sharedTruth[framesPer2M + 100]).toBe(0);
  });

  it('backs a 2 MiB private entry with one 2 MiB RMP entry and splits it for a later 4 KiB change', () => {
    const { host, rmp } = setup();
    processPsc(descriptorOf([{ gfn: framesPer2M, operation: pscOpPrivate, pageSize: rmpPageSize2M }]), host);
    expect(rmp.entry(2 * framesPer2M + 5)).toMatchObject({
      pageSize: rmpPageSize2M,
      governingPfn: 2 * framesPer2M,
    });
    expect(processPsc(descriptorOf([shared4K(framesPer2M + 5)]), host).name).toBe('OK');
    expect(rmp.entry(2 * framesPer2M + 5).assigned).toBe(false);
    expect(rmp.entry(2 * framesPer2M + 6)).toMatchObject({
      assigned: true,
      pageSize: rmpPageSize4K,
      gfn: framesPer2M + 6,
    });
  });
});

describe('guest checks on the hypervisor (Linux vmgexit_psc)', () => {
  it('finishes in one call against an honest hypervisor', () => {
    const { ctx } = setup();
    expect(guestPscRequest(descriptorOf([private4K(0), private4K(1)]), (d) => ctx.callHost(d))).toEqual({
      kind: 'done',
      calls: 1,
    });
  });

  it('terminates when the hypervisor moves cur_entry below where the request started', () => {
    const desc = descriptorOf([private4K(0), private4K(1), private4K(2), private4K(3)]);
    desc.header.curEntry = 2;
    const outcome = guestPscRequest(desc, (d) => {
      d.header.curEntry = 1;
      return 0;
    });
    expect(outcome).toMatchObject({
      kind: 'terminate',
      why: 'cur-entry-backwards',
      reasonSet: 1,
      reasonCode: 1,
    });
  });

  it('does not catch a rewind to the starting cur_entry (Linux compares with the start, not the last round)', () => {
    const { ctx } = setup();
    const desc = descriptorOf([private4K(0), private4K(1)]);
    let rewound = false;
    const outcome = guestPscRequest(desc, (d) => {
      const info = ctx.callHost(d);
      if (!rewound) {
        rewound = true;
        d.header.curEntry = 0;
      }
      return info;
    });
    expect(outcome).toEqual({ kind: 'done', calls: 2 });
  });

  it('terminates when the hypervisor grows end_entry', () => {
    const desc = descriptorOf([private4K(0)]);
    const outcome = guestPscRequest(desc, (d) => {
      d.header.endEntry = 5;
      return 0;
    });
    expect(outcome).toMatchObject({ kind: 'terminate', why: 'end-entry-grew' });
  });

  it('terminates on a reserved header field or an error in SW_EXITINFO2', () => {
    const reserved = guestPscRequest(descriptorOf([private4K(0)]), (d) => {
      d.header.reserved = 1;
      return 0;
    });
    expect(reserved).toMatchObject({ kind: 'terminate', why: 'reserved-set' });
    const { host } = setup();
    const bad = descriptorOf([{ gfn: 1, operation: pscOpPrivate, pageSize: rmpPageSize2M }]);
    const error = guestPscRequest(bad, (d) => processPsc(d, host).swExitInfo2);
    expect(error).toMatchObject({ kind: 'terminate', why: 'host-error', swExitInfo2: pscErrorInvalidEntry });
  });

  it('gives up on a hypervisor that never advances (a bound Linux does not have)', () => {
    const outcome = guestPscRequest(descriptorOf([private4K(0)]), () => 0, 10);
    expect(outcome).toEqual({ kind: 'stalled', calls: 10 });
  });
});

describe('guest conversions: validate and rescind around the PSC', () => {
  it('builds 2 MiB entries where aligned and splits requests at the entry limit', () => {
    const descriptors = buildPscDescriptors(framesPer2M - 2, framesPer2M + 4, 'private', 3);
    const entries = descriptors.flatMap((d) => d.entries.slice(0, d.header.endEntry + 1));
    expect(entries.map((e) => [e.gfn, e.pageSize])).toEqual([
      [framesPer2M - 2, rmpPageSize4K],
      [framesPer2M - 1, rmpPageSize4K],
      [framesPer2M, rmpPageSize2M],
      [2 * framesPer2M, rmpPageSize4K],
      [2 * framesPer2M + 1, rmpPageSize4K],
    ]);
    expect(descriptors.map((d) => d.header.endEntry)).toEqual([2, 1]);
  });

  it('shared -> private: PSC first, then PVALIDATE; the page ends validated and out of the host’s reach', () => {
    const { ctx, rmp, sharedTruth } = setup();
    expect(guestSetPagesState(ctx, 100, 4, 'private')).toEqual({ kind: 'ok', steps: ['psc', 'validate'] });
    expect(rmp.entry(pfnOf(101))).toMatchObject({ assigned: true, validated: true, gfn: 101 });
    expect(sharedTruth.subarray(100, 104).every((shared) => shared === 0)).toBe(true);
    expect(rmp.checkHostAccess(pfnOf(101), false).ok).toBe(false);
  });

  it('private -> shared: rescind first, then the PSC; the host may then touch the page', () => {
    const { ctx, rmp, sharedTruth } = setup();
    guestSetPagesState(ctx, 100, 4, 'private');
    expect(guestSetPagesState(ctx, 100, 4, 'shared')).toEqual({ kind: 'ok', steps: ['rescind', 'psc'] });
    expect(rmp.entry(pfnOf(102)).assigned).toBe(false);
    expect(sharedTruth[102]).toBe(1);
    expect(rmp.checkHostAccess(pfnOf(102), true)).toEqual({ ok: true });
  });

  it('PVALIDATE only works after the PSC: if the hypervisor skips the conversion, validating faults', () => {
    const { ctx } = setup();
    const skipped = guestSetPagesState(
      {
        ...ctx,
        callHost: (d) => {
          d.header.curEntry = d.header.endEntry + 1;
          return 0;
        },
      },
      200,
      1,
      'private',
    );
    expect(skipped).toMatchObject({
      kind: 'pvalidate-failed',
      steps: ['psc', 'validate'],
      pvalidate: { kind: 'npf', reason: 'not-assigned' },
    });
  });

  it('rescinding first means a skipped shared conversion leaves the page assigned but not validated', () => {
    const { ctx, rmp } = setup();
    guestSetPagesState(ctx, 300, 1, 'private');
    const lazyHost: SnpGuestContext = {
      ...ctx,
      callHost: (d) => {
        d.header.curEntry = d.header.endEntry + 1;
        return 0;
      },
    };
    expect(guestSetPagesState(lazyHost, 300, 1, 'shared').kind).toBe('ok');
    expect(rmp.entry(pfnOf(300))).toMatchObject({ assigned: true, validated: false });
  });

  it('resolves a 4 KiB rescind inside a 2 MiB entry through the hypervisor’s PSMASH', () => {
    const { ctx, rmp } = setup();
    expect(guestSetPagesState(ctx, framesPer2M, framesPer2M, 'private').kind).toBe('ok');
    expect(rmp.entry(pfnOf(framesPer2M)).pageSize).toBe(rmpPageSize2M);
    expect(guestSetPagesState(ctx, framesPer2M + 7, 1, 'shared')).toEqual({
      kind: 'ok',
      steps: ['rescind', 'psc'],
    });
    expect(rmp.entry(pfnOf(framesPer2M + 7)).assigned).toBe(false);
    expect(rmp.entry(pfnOf(framesPer2M + 8))).toMatchObject({
      assigned: true,
      validated: true,
      pageSize: rmpPageSize4K,
    });
  });

  it('converting an already-private page again makes its second validation an INV-11 stop', () => {
    const { ctx } = setup();
    guestSetPagesState(ctx, 400, 1, 'private');
    // Asking for private again: the host leaves the page alone (already private), so PVALIDATE makes
    // no RMP change and the guest stops instead of validating the page twice.
    const outcome = guestSetPagesState(ctx, 400, 1, 'private');
    expect(outcome).toMatchObject({
      kind: 'pvalidate-failed',
      pvalidate: { kind: 'terminate', violation: { invariant: 'INV-11', gfn: 400 } },
    });
  });
});
