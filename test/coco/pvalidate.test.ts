import { describe, expect, it } from 'vitest';
import { guestPvalidate, pvalidate, type SnpGuestView } from '../../src/coco/pvalidate.js';
import { framesPer2M, Rmp, rmpI32s, rmpPageSize2M, rmpPageSize4K } from '../../src/coco/rmp.js';

const frameCount = 4 * framesPer2M;
const asid = 3;
/** The guest's frames sit at host frame gfn + offset (2 MiB-aligned, so 2 MiB pages line up). */
const offset = framesPer2M;
const guest: SnpGuestView = { asid, pfnOf: (gfn) => (gfn + offset < frameCount ? gfn + offset : -1) };

function newRmp(): Rmp {
  return new Rmp(new Int32Array(rmpI32s(frameCount)), 0, frameCount);
}

describe('PVALIDATE return codes', () => {
  it('SUCCESS flips the validated bit, and validating again makes no RMP change', () => {
    const rmp = newRmp();
    rmp.makePrivate(10 + offset, 10, asid, rmpPageSize4K);
    expect(pvalidate(rmp, guest, 10, rmpPageSize4K, true)).toMatchObject({
      kind: 'returned',
      name: 'SUCCESS',
      rc: 0,
    });
    expect(rmp.entry(10 + offset).validated).toBe(true);
    expect(pvalidate(rmp, guest, 10, rmpPageSize4K, true)).toMatchObject({ name: 'NO_RMP_CHANGE', rc: 255 });
    expect(pvalidate(rmp, guest, 10, rmpPageSize4K, false)).toMatchObject({ name: 'SUCCESS' });
    expect(pvalidate(rmp, guest, 10, rmpPageSize4K, false)).toMatchObject({ name: 'NO_RMP_CHANGE' });
  });

  it('FAIL_INPUT for a 2 MiB request at a misaligned address', () => {
    const rmp = newRmp();
    expect(pvalidate(rmp, guest, 1, rmpPageSize2M, true)).toMatchObject({ name: 'FAIL_INPUT', rc: 1 });
  });

  it('FAIL_SIZEMISMATCH for a 2 MiB request over 4 KiB entries', () => {
    const rmp = newRmp();
    for (let gfn = 0; gfn < framesPer2M; gfn++) rmp.makePrivate(gfn + offset, gfn, asid, rmpPageSize4K);
    expect(pvalidate(rmp, guest, 0, rmpPageSize2M, true)).toMatchObject({ name: 'FAIL_SIZEMISMATCH', rc: 6 });
  });

  it('exits with #NPF when the frame is not this guest’s, sits at another GPA, or a 4 KiB request hits a 2 MiB entry', () => {
    const rmp = newRmp();
    expect(pvalidate(rmp, guest, 20, rmpPageSize4K, true)).toMatchObject({
      kind: 'npf',
      reason: 'not-assigned',
    });
    rmp.makePrivate(20 + offset, 20, asid + 1, rmpPageSize4K);
    expect(pvalidate(rmp, guest, 20, rmpPageSize4K, true)).toMatchObject({
      kind: 'npf',
      reason: 'asid-mismatch',
    });
    rmp.makePrivate(20 + offset, 21, asid, rmpPageSize4K);
    expect(pvalidate(rmp, guest, 20, rmpPageSize4K, true)).toMatchObject({
      kind: 'npf',
      reason: 'gpa-mismatch',
    });
    rmp.makePrivate(framesPer2M + offset, framesPer2M, asid, rmpPageSize2M);
    expect(pvalidate(rmp, guest, framesPer2M + 1, rmpPageSize4K, true)).toMatchObject({
      kind: 'npf',
      reason: 'size-mismatch',
    });
    expect(pvalidate(rmp, guest, frameCount, rmpPageSize4K, true)).toMatchObject({
      kind: 'npf',
      reason: 'unmapped',
    });
  });
});

describe('Linux guest PVALIDATE policy', () => {
  it('falls back to 512 4 KiB validations on FAIL_SIZEMISMATCH', () => {
    const rmp = newRmp();
    for (let gfn = 0; gfn < framesPer2M; gfn++) rmp.makePrivate(gfn + offset, gfn, asid, rmpPageSize4K);
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, true)).toEqual({ kind: 'ok', fellBackTo4K: true });
    for (let gfn = 0; gfn < framesPer2M; gfn++) expect(rmp.entry(gfn + offset).validated).toBe(true);
  });

  it('validates a 2 MiB entry in one go', () => {
    const rmp = newRmp();
    rmp.makePrivate(offset, 0, asid, rmpPageSize2M);
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, true)).toEqual({ kind: 'ok', fellBackTo4K: false });
    expect(rmp.entry(offset + 300).validated).toBe(true);
  });

  it('catches a second validation of a validated page (INV-11) and terminates the guest', () => {
    const rmp = newRmp();
    rmp.makePrivate(30 + offset, 30, asid, rmpPageSize4K);
    expect(guestPvalidate(rmp, guest, 30, rmpPageSize4K, true).kind).toBe('ok');
    const second = guestPvalidate(rmp, guest, 30, rmpPageSize4K, true);
    expect(second).toMatchObject({
      kind: 'terminate',
      reasonSet: 1,
      reasonCode: 2,
      rc: 255,
      violation: { invariant: 'INV-11', mechanism: 'pvalidate', gfn: 30 },
    });
  });

  it('catches the double validation inside a 4 KiB fallback, naming the page', () => {
    const rmp = newRmp();
    for (let gfn = 0; gfn < framesPer2M; gfn++) rmp.makePrivate(gfn + offset, gfn, asid, rmpPageSize4K);
    expect(pvalidate(rmp, guest, 77, rmpPageSize4K, true)).toMatchObject({ name: 'SUCCESS' });
    const outcome = guestPvalidate(rmp, guest, 0, rmpPageSize2M, true);
    expect(outcome).toMatchObject({
      kind: 'terminate',
      gfn: 77,
      violation: { invariant: 'INV-11', gfn: 77 },
    });
  });

  it('terminates without an INV-11 record when rescinding a page that is not validated', () => {
    const rmp = newRmp();
    rmp.makePrivate(40 + offset, 40, asid, rmpPageSize4K);
    expect(guestPvalidate(rmp, guest, 40, rmpPageSize4K, false)).toMatchObject({
      kind: 'terminate',
      rc: 255,
      violation: null,
    });
  });

  it('lets exactly one of two racing validations of one page succeed', () => {
    const rmp = newRmp();
    rmp.makePrivate(50 + offset, 50, asid, rmpPageSize4K);
    const flagsSeenByBoth = rmp.flagsOf(50 + offset);
    // Hyperthread A wins the compare-exchange; B, having read the same flags, loses it and retries.
    expect(rmp.compareExchangeValidated(50 + offset, flagsSeenByBoth, true)).toBe(true);
    expect(rmp.compareExchangeValidated(50 + offset, flagsSeenByBoth, true)).toBe(false);
    expect(guestPvalidate(rmp, guest, 50, rmpPageSize4K, true)).toMatchObject({
      kind: 'terminate',
      violation: { invariant: 'INV-11' },
    });
  });
});
