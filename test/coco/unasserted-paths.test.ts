import { describe, expect, it } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import { ConfidentialVm } from '../../src/coco/confidential-vm.js';
import {
  ghcbTermPvalidate,
  guestPvalidate,
  pvalidate,
  pvalidateReturnCodes,
  type SnpGuestView,
  sevTermSetLinux,
} from '../../src/coco/pvalidate.js';
import {
  framesPer2M,
  Rmp,
  rmpI32s,
  rmpPageSize2M,
  rmpPageSize4K,
  rmpUpdateReturnCodes,
} from '../../src/coco/rmp.js';
import type { Violation } from '../../src/invariants/violation.js';
import { createMachine } from '../../src/machine.js';
import { confidentialRunConfig } from '../helpers/machines.js';

/**
 * Issue 24: coco paths no test asserted. The guest's termination on a PVALIDATE failure other than the
 * size mismatch it falls back from (FAIL_INPUT, "no RMP change" on a 2 MiB page, an #NPF inside the
 * 4 KiB fallback), a terminated guest's silence afterwards, and every fault on an immutable RMP entry
 * (PVALIDATE's #NPF, the host's RMP check, RMPUPDATE's FAIL_PERMISSION on 2 MiB entries). Each outcome is
 * asserted whole, with its exact codes.
 */

const frameCount = 4 * framesPer2M;
const asid = 3;
/** The guest's frames sit at host frame gfn + offset (2 MiB-aligned, so 2 MiB pages line up). */
const offset = framesPer2M;
const guest: SnpGuestView = { asid, pfnOf: (gfn) => (gfn + offset < frameCount ? gfn + offset : -1) };

function newRmp(): Rmp {
  return new Rmp(new Int32Array(rmpI32s(frameCount)), 0, frameCount);
}

/** An entry assigned to the guest at `gfn` and immutable (as firmware pages are: the VMSA, secrets page). */
function makeImmutable(rmp: Rmp, gfn: number, pageSize: 0 | 1 = rmpPageSize4K): void {
  const made = rmp.rmpUpdate(gfn + offset, { assigned: true, asid, gfn, pageSize, immutable: true });
  expect(made.ok).toBe(true);
}

describe('the guest terminates on PVALIDATE failures other than the size mismatch it falls back from', () => {
  it('FAIL_INPUT (a 2 MiB request at a misaligned gfn): terminate with the Linux reason, no INV-11 record', () => {
    const rmp = newRmp();
    expect(guestPvalidate(rmp, guest, 5, rmpPageSize2M, true)).toEqual({
      kind: 'terminate',
      reasonSet: sevTermSetLinux,
      reasonCode: ghcbTermPvalidate,
      gfn: 5,
      rc: pvalidateReturnCodes.FAIL_INPUT,
      violation: null,
    });
    // SEV_TERM_SET_LINUX = 1, GHCB_TERM_PVALIDATE = 2 (asm/sev-common.h).
    expect([sevTermSetLinux, ghcbTermPvalidate, pvalidateReturnCodes.FAIL_INPUT]).toEqual([1, 2, 1]);
  });

  it('a 2 MiB page validated twice: terminate, and the INV-11 record covers all 512 pages', () => {
    const rmp = newRmp();
    expect(rmp.makePrivate(offset, 0, asid, rmpPageSize2M).ok).toBe(true);
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, true)).toEqual({ kind: 'ok', fellBackTo4K: false });
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, true)).toEqual({
      kind: 'terminate',
      reasonSet: sevTermSetLinux,
      reasonCode: ghcbTermPvalidate,
      gfn: 0,
      rc: pvalidateReturnCodes.NO_RMP_CHANGE,
      violation: {
        invariant: 'INV-11',
        mechanism: 'pvalidate',
        gfn: 0,
        npages: framesPer2M,
        detail: 'PVALIDATE of an already-validated page made no RMP change; the guest terminates',
      },
    });
  });

  it('rescinding a 2 MiB page that is not validated: terminate, no INV-11 (nothing was validated twice)', () => {
    const rmp = newRmp();
    rmp.makePrivate(offset, 0, asid, rmpPageSize2M);
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, false)).toEqual({
      kind: 'terminate',
      reasonSet: sevTermSetLinux,
      reasonCode: ghcbTermPvalidate,
      gfn: 0,
      rc: pvalidateReturnCodes.NO_RMP_CHANGE,
      violation: null,
    });
    expect(rmp.entry(offset).validated).toBe(false);
  });

  it('an #NPF inside the 4 KiB fallback is handed back naming the page, the pages before it validated', () => {
    const rmp = newRmp();
    const hole = 100;
    for (let gfn = 0; gfn < framesPer2M; gfn++) {
      if (gfn !== hole) rmp.makePrivate(gfn + offset, gfn, asid, rmpPageSize4K);
    }
    expect(guestPvalidate(rmp, guest, 0, rmpPageSize2M, true)).toEqual({
      kind: 'npf',
      reason: 'not-assigned',
      gfn: hole,
      pfn: hole + offset,
    });
    expect(rmp.entry(hole - 1 + offset).validated).toBe(true);
    expect(rmp.entry(hole + 1 + offset).validated).toBe(false);
  });
});

describe('a terminated confidential guest does nothing more', () => {
  it('after detecting a remapped page it stops: no conversion, no accept, no further remap', () => {
    const config = confidentialRunConfig({ exits: 10 });
    const machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    try {
      const violations: Violation[] = [];
      const vm = new ConfidentialVm(
        machine,
        0,
        machine.rmp,
        { asid: 1, hostileVmm: true, guestRevalidates: false, keepsVmmMapping: false },
        (violation) => violations.push(violation),
      );
      const firstPage = () => 0; // hostileRemap and accept pick page 1 + floor(0 * ...) = 1
      const pfn = machine.region('guest-memory:0').firstPfn + 1;
      expect(machine.rmp.entry(pfn)).toMatchObject({ assigned: true, validated: true }); // validated at launch
      vm.hostileRemap(firstPage, 0);
      expect(vm.stats.hostileRemaps).toBe(1);
      expect(machine.rmp.entry(pfn).validated).toBe(false);
      const before = { ...vm.stats };
      vm.guestTouch(1, 100);
      expect(vm.terminated).toBe(true);
      expect(vm.stats).toEqual({ ...before, guestTerminations: 1 });
      expect(machine.rmp.entry(pfn).validated).toBe(false); // it did not validate the page again
      // From now on nothing moves: conversions, accepts, remaps and touches are ignored.
      const isPrivate = vm.isPrivate.slice();
      vm.convert(10, 4, false, 200);
      vm.convert(0, 1, true, 200);
      vm.accept(firstPage, 300);
      vm.hostileRemap(firstPage, 400);
      vm.guestTouch(1, 500);
      expect(vm.stats).toEqual({ ...before, guestTerminations: 1 });
      expect(vm.isPrivate).toEqual(isPrivate);
      expect(violations).toEqual([]);
    } finally {
      machine.dispose();
    }
  });
});

describe('an immutable RMP entry faults', () => {
  it('PVALIDATE of an immutable page exits with #NPF (immutable), and the guest hands it back, not terminates', () => {
    const rmp = newRmp();
    makeImmutable(rmp, 40);
    const npf = { kind: 'npf', reason: 'immutable', gfn: 40, pfn: 40 + offset };
    expect(pvalidate(rmp, guest, 40, rmpPageSize4K, true)).toEqual(npf);
    expect(pvalidate(rmp, guest, 40, rmpPageSize4K, false)).toEqual(npf);
    expect(guestPvalidate(rmp, guest, 40, rmpPageSize4K, true)).toEqual(npf);
    expect(rmp.entry(40 + offset)).toMatchObject({ immutable: true, validated: false });
  });

  it('a 4 KiB PVALIDATE inside an immutable 2 MiB entry reports the immutability before the size mismatch', () => {
    const rmp = newRmp();
    makeImmutable(rmp, framesPer2M, rmpPageSize2M);
    expect(pvalidate(rmp, guest, framesPer2M + 7, rmpPageSize4K, true)).toEqual({
      kind: 'npf',
      reason: 'immutable',
      gfn: framesPer2M + 7,
      pfn: framesPer2M + 7 + offset,
    });
    expect(pvalidate(rmp, guest, framesPer2M, rmpPageSize2M, true)).toMatchObject({
      kind: 'npf',
      reason: 'immutable',
    });
  });

  it('a host access to an immutable guest page faults, marked immutable; an RMP #PF only for a write', () => {
    const rmp = newRmp();
    makeImmutable(rmp, 60);
    const fault = { invariant: 'INV-10', pfn: 60 + offset, asid, gfn: 60, immutable: true };
    expect(rmp.checkHostAccess(60 + offset, true)).toEqual({
      ok: false,
      fault: { ...fault, write: true, rmpPageFault: true },
    });
    expect(rmp.checkHostAccess(60 + offset, false)).toEqual({
      ok: false,
      fault: { ...fault, write: false, rmpPageFault: false },
    });
    // An ordinary private page faults too, but is not marked immutable.
    rmp.makePrivate(61 + offset, 61, asid, rmpPageSize4K);
    expect(rmp.checkHostAccess(61 + offset, false)).toMatchObject({ ok: false, fault: { immutable: false } });
  });

  it('RMPUPDATE refuses (FAIL_PERMISSION) to replace an immutable 2 MiB entry or cover an immutable 4 KiB one', () => {
    const rmp = newRmp();
    makeImmutable(rmp, 0, rmpPageSize2M);
    expect(rmp.makeShared(offset, rmpPageSize2M)).toEqual({
      ok: false,
      code: 'FAIL_PERMISSION',
      rc: rmpUpdateReturnCodes.FAIL_PERMISSION,
      pfn: offset,
      reason: 'the 2 MiB entry is immutable',
    });
    expect(rmp.entry(offset + 3)).toMatchObject({ assigned: true, immutable: true, gfn: 3 });

    const second = 2 * framesPer2M;
    makeImmutable(rmp, second + 9 - offset);
    expect(rmp.makePrivate(second, second - offset, asid, rmpPageSize2M)).toEqual({
      ok: false,
      code: 'FAIL_PERMISSION',
      rc: rmpUpdateReturnCodes.FAIL_PERMISSION,
      pfn: second + 9,
      reason: 'an entry of the range is immutable',
    });
    expect(rmp.entry(second)).toMatchObject({ assigned: false });
    expect(rmp.entry(second + 9)).toMatchObject({ immutable: true, pageSize: rmpPageSize4K });
  });
});
