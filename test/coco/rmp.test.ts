import { describe, expect, it } from 'vitest';
import { framesPer2M, Rmp, rmpEntryI32s, rmpI32s, rmpPageSize2M, rmpPageSize4K } from '../../src/coco/rmp.js';

const frameCount = 4 * framesPer2M;
const asid = 7;

function newRmp(baseI32Index = 0): { rmp: Rmp; i32: Int32Array } {
  const i32 = new Int32Array(new SharedArrayBuffer((baseI32Index + rmpI32s(frameCount) + 4) * 4));
  return { rmp: new Rmp(i32, baseI32Index, frameCount), i32 };
}

describe('RMP layout', () => {
  it('needs two Int32 words per frame and stays inside its section', () => {
    expect(rmpI32s(frameCount)).toBe(frameCount * rmpEntryI32s);
    const { rmp, i32 } = newRmp(16);
    expect(rmp.makePrivate(frameCount - 1, 99, asid, rmpPageSize4K).ok).toBe(true);
    // Words before the base and after the last entry are untouched.
    expect(Array.from(i32.subarray(0, 16))).toEqual(new Array(16).fill(0));
    expect(Array.from(i32.subarray(16 + rmpI32s(frameCount)))).toEqual([0, 0, 0, 0]);
  });

  it('rejects an Int32Array too small for the frames (programmer error)', () => {
    expect(() => new Rmp(new Int32Array(10), 0, frameCount)).toThrow(/words/);
  });
});

describe('RMPUPDATE', () => {
  it('assigns and unassigns a 4 KiB frame', () => {
    const { rmp } = newRmp();
    expect(rmp.makePrivate(5, 1234, asid, rmpPageSize4K)).toEqual({ ok: true });
    expect(rmp.entry(5)).toMatchObject({
      assigned: true,
      asid,
      gfn: 1234,
      validated: false,
      pageSize: rmpPageSize4K,
    });
    expect(rmp.makeShared(5, rmpPageSize4K).ok).toBe(true);
    expect(rmp.entry(5).assigned).toBe(false);
  });

  it('requires 2 MiB alignment of the frame and of the guest frame for a 2 MiB entry', () => {
    const { rmp } = newRmp();
    expect(rmp.makePrivate(framesPer2M + 1, 0, asid, rmpPageSize2M)).toMatchObject({
      ok: false,
      code: 'FAIL_INPUT',
      rc: 1,
    });
    expect(rmp.makePrivate(framesPer2M, 3, asid, rmpPageSize2M)).toMatchObject({
      ok: false,
      code: 'FAIL_INPUT',
    });
    expect(rmp.makePrivate(framesPer2M, 2 * framesPer2M, asid, rmpPageSize2M).ok).toBe(true);
    // The head governs every frame of the 2 MiB page, with the gfn offset applied.
    expect(rmp.entry(framesPer2M + 17)).toMatchObject({
      assigned: true,
      governingPfn: framesPer2M,
      gfn: 2 * framesPer2M + 17,
      pageSize: rmpPageSize2M,
    });
  });

  it('refuses a 2 MiB entry over an assigned 4 KiB entry, and a 4 KiB update inside a 2 MiB entry (FAIL_OVERLAP)', () => {
    const { rmp } = newRmp();
    expect(rmp.makePrivate(3, 3, asid, rmpPageSize4K).ok).toBe(true);
    expect(rmp.makePrivate(0, 0, asid, rmpPageSize2M)).toMatchObject({
      ok: false,
      code: 'FAIL_OVERLAP',
      rc: 4,
      pfn: 3,
    });
    expect(rmp.makePrivate(framesPer2M, 0, asid, rmpPageSize2M).ok).toBe(true);
    expect(rmp.makeShared(framesPer2M + 4, rmpPageSize4K)).toMatchObject({ ok: false, code: 'FAIL_OVERLAP' });
    // After PSMASH the single frame can be changed.
    expect(rmp.psmash(framesPer2M).ok).toBe(true);
    expect(rmp.makeShared(framesPer2M + 4, rmpPageSize4K).ok).toBe(true);
    expect(rmp.entry(framesPer2M + 5)).toMatchObject({ assigned: true, pageSize: rmpPageSize4K, gfn: 5 });
  });

  it('refuses to change an immutable entry (FAIL_PERMISSION)', () => {
    const { rmp } = newRmp();
    expect(
      rmp.rmpUpdate(9, { assigned: true, asid: 0, gfn: 0, pageSize: rmpPageSize4K, immutable: true }).ok,
    ).toBe(true);
    expect(rmp.makeShared(9, rmpPageSize4K)).toMatchObject({ ok: false, code: 'FAIL_PERMISSION', rc: 2 });
  });

  it('always writes an unvalidated entry, even when re-assigning the same page', () => {
    const { rmp } = newRmp();
    rmp.makePrivate(8, 8, asid, rmpPageSize4K);
    expect(rmp.compareExchangeValidated(8, rmp.flagsOf(8), true)).toBe(true);
    expect(rmp.entry(8).validated).toBe(true);
    rmp.makePrivate(8, 8, asid, rmpPageSize4K);
    expect(rmp.entry(8).validated).toBe(false);
  });

  it('PSMASH keeps owner, gfn and validated state in every 4 KiB entry', () => {
    const { rmp } = newRmp();
    rmp.makePrivate(0, framesPer2M, asid, rmpPageSize2M);
    rmp.compareExchangeValidated(0, rmp.flagsOf(0), true);
    expect(rmp.psmash(1)).toMatchObject({ ok: false, code: 'FAIL_INPUT' });
    expect(rmp.psmash(0).ok).toBe(true);
    for (const pfn of [0, 1, 255, framesPer2M - 1]) {
      expect(rmp.entry(pfn)).toMatchObject({
        governingPfn: pfn,
        assigned: true,
        validated: true,
        asid,
        gfn: framesPer2M + pfn,
        pageSize: rmpPageSize4K,
      });
    }
  });
});

describe('RMP host-access check (INV-10)', () => {
  it('lets the host reach hypervisor-owned frames', () => {
    const { rmp } = newRmp();
    expect(rmp.checkHostAccess(100, true)).toEqual({ ok: true });
    expect(rmp.checkHostAccess(100, false)).toEqual({ ok: true });
  });

  it('reports a planted bad host read of a guest-private frame and never fixes it up', () => {
    const { rmp } = newRmp();
    rmp.makePrivate(42, 4242, asid, rmpPageSize4K);
    rmp.compareExchangeValidated(42, rmp.flagsOf(42), true);
    const before = rmp.entry(42);
    const result = rmp.checkHostAccess(42, false);
    expect(result).toEqual({
      ok: false,
      fault: {
        invariant: 'INV-10',
        pfn: 42,
        write: false,
        asid,
        gfn: 4242,
        immutable: false,
        rmpPageFault: false,
      },
    });
    // No silent conversion: the frame is still assigned and validated.
    expect(rmp.entry(42)).toEqual(before);
  });

  it('marks a host write to a private frame as a hardware RMP #PF, also inside a 2 MiB entry', () => {
    const { rmp } = newRmp();
    rmp.makePrivate(2 * framesPer2M, 0, asid, rmpPageSize2M);
    const result = rmp.checkHostAccess(2 * framesPer2M + 300, true);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.fault).toMatchObject({ rmpPageFault: true, gfn: 300, asid });
    expect(rmp.entry(2 * framesPer2M + 300).assigned).toBe(true);
  });
});
