import { describe, expect, it } from 'vitest';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { domainName } from '../../src/memory/domains.js';
import { kernelSpace, kvmSpace, vmmSpace } from '../../src/paging/address-space.js';
import { directMapVa, vmmGuestMemoryVa } from '../../src/paging/va-layout.js';
import { policies } from '../../src/policy/index.js';
import { confidentialRunConfig, confidentialVmFixture } from '../helpers/machines.js';

/** A confidential VM in the machine: conversions move pages between host-visible and private. */
function config(confidential: Record<string, unknown> = {}, seed = 7) {
  return confidentialRunConfig({ exits: 3000, seed }, confidential);
}

const confidentialVm = confidentialVmFixture;

describe('confidential VM memory in the machine', () => {
  it('private pages are split out of the 2 MiB direct map and unmapped from kernel, kvm:N and vmm:N (INV-10 by construction)', () => {
    const { machine, vm, memory } = confidentialVm();
    const tables = machine.pageTables;
    for (const gfn of [1, 17, 300, memory.frames - 1]) {
      const pfn = memory.firstPfn + gfn;
      expect(vm.isPrivate[gfn]).toBe(1);
      expect(domainName(machine.frames.ownerOf(pfn))).toBe('private:0');
      for (const space of [kernelSpace, kvmSpace(0)]) {
        expect(tables.translate(space, directMapVa + pfn * 4096)).toMatchObject({
          ok: false,
          reason: 'not-present',
        });
      }
      expect(tables.translate(vmmSpace(0), vmmGuestMemoryVa + gfn * 4096)).toMatchObject({ ok: false });
      expect(vm.guestMaps(gfn)).toBe(true); // the guest still reaches it through the EPT
    }
    // The GHCB page (gfn 0) stays shared and host-visible, now through a 4 KiB entry of the split leaf.
    const ghcb = tables.translate(kernelSpace, directMapVa + memory.firstPfn * 4096);
    expect(ghcb).toMatchObject({ ok: true, pfn: memory.firstPfn, leafBytes: 4096 });
    expect(machine.rmp.checkHostAccess(memory.firstPfn + 5, false).ok).toBe(false);
    expect(machine.rmp.checkHostAccess(memory.firstPfn, true).ok).toBe(true);
  });

  it('converting back to shared maps the page for the host again; trackers agree with the truth', () => {
    const { machine, vm, violations, memory } = confidentialVm();
    vm.convert(10, 4, false, 0);
    expect(
      machine.pageTables.translate(kernelSpace, directMapVa + (memory.firstPfn + 11) * 4096),
    ).toMatchObject({ ok: true });
    expect(domainName(machine.frames.ownerOf(memory.firstPfn + 11))).toBe('vm:0');
    expect(vm.trackers.map((tracker) => tracker.isShared(11))).toEqual([true, true, true]);
    vm.convert(10, 4, true, 0);
    expect(vm.trackers.map((tracker) => tracker.isShared(11))).toEqual([false, false, false]);
    expect(violations).toEqual([]);
  });

  it('a full run of an SNP guest under asi converts, accepts and breaks nothing', () => {
    const result = runSim(config(), policies.asi);
    expect(Object.values(result.violations).every((count) => count === 0)).toBe(true);
    const [stats] = result.confidential;
    expect(stats.toPrivate).toBeGreaterThan(10);
    expect(stats.toShared).toBeGreaterThan(10);
    expect(stats.accepts).toBeGreaterThan(10);
    expect(stats.trackers.map((tracker) => tracker.kind)).toEqual(['bitmap', 'range-list', 'interval-tree']);
  });

  it('a hostile VMM that remaps validated pages is detected by a correct guest, which stops (no INV-11)', () => {
    const result = runSim(config({ hostileVmm: true, hostileRemapShare: 1 }), policies.asi);
    expect(result.violations['INV-11']).toBe(0);
    expect(result.confidential[0].hostileRemaps).toBeGreaterThan(0);
    expect(result.confidential[0].guestTerminations).toBe(1);
  });

  it('planted: a guest that re-validates a remapped page breaks INV-11, and it is caught', () => {
    const result = runSim(
      config({ hostileVmm: true, hostileRemapShare: 1, guestRevalidates: true }),
      policies.asi,
    );
    expect(result.violations['INV-11']).toBeGreaterThan(0);
    expect(result.violationRecords.find((violation) => violation.id === 'INV-11')?.detail).toMatch(
      /validated a second time/,
    );
  });

  it('planted: a host read of a private frame (the VMM mapping kept on conversion) breaks INV-10, and it is caught', () => {
    const result = runSim(config({ keepsVmmMapping: true }), policies.asi);
    expect(result.violations['INV-10']).toBeGreaterThan(0);
    const record = result.violationRecords.find((violation) => violation.id === 'INV-10');
    expect(record?.address).toMatch(/^0x7f/);
    expect(record?.detail).toMatch(/guest-private/);
  });

  it('a hostile guest flooding single-page conversions overflows the bounded trackers, flagged, never past the bound (INV-12)', () => {
    const { vm, violations } = confidentialVm({ rangesMax: 4, nodesMax: 4 });
    for (let gfn = 1; gfn < 200; gfn += 2) vm.convert(gfn, 1, false, 0);
    const [bitmap, list, tree] = vm.trackers;
    expect(bitmap.overflowed).toBe(false);
    expect(list.overflowed).toBe(true);
    expect(tree.overflowed).toBe(true);
    expect(list.entryCount).toBeLessThanOrEqual(4);
    expect(violations.filter((violation) => violation.id === 'INV-12')).toEqual([]);
    expect(violations.filter((violation) => violation.id === 'INV-13')).toEqual([]);
  });

  it('planted: a tracker past its bound (INV-12) and a tracker that disagrees with the truth (INV-13) are caught', () => {
    const { vm, violations } = confidentialVm();
    const list = vm.trackers[1];
    Object.defineProperty(list, 'memoryBytes', { value: () => list.bound.memoryBytesMax + 1 });
    vm.convert(5, 1, false, 0);
    expect(violations.map((violation) => violation.id)).toContain('INV-12');
    const tree = vm.trackers[2];
    Object.defineProperty(tree, 'isShared', { value: (gfn: number) => gfn === 99 });
    vm.convert(6, 1, false, 0);
    expect(violations.map((violation) => violation.id)).toContain('INV-13');
  });
});
