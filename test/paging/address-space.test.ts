import { describe, expect, it } from 'vitest';
import { largePage2MBytes, pageBytes } from '../../src/constants.js';
import { Machine } from '../../src/machine.js';
import { domainName, isAllowedInKvm } from '../../src/memory/domains.js';
import {
  addressSpaceName,
  buildGuestSpace,
  buildKernelSpace,
  buildKvmSpace,
  buildVmmSpace,
  guestSpace,
  kernelSpace,
  kvmSpace,
  vmmSpace,
} from '../../src/paging/address-space.js';
import { Access, MapFlag } from '../../src/paging/entry-format.js';
import { directMapVa, formatVa, vmmGuestMemoryVa } from '../../src/paging/va-layout.js';
import { smallMachine, twoVmMachine } from '../helpers/machines.js';

/** Every frame an address space maps, with the owner domain of each. */
function mappedFrames(machine: Machine, space: number): Map<number, number> {
  const frames = new Map<number, number>();
  for (const range of machine.pageTables.listMapped(space)) {
    for (let i = 0; i < range.pages; i++)
      frames.set(range.pfnStart + i, machine.frames.ownerOf(range.pfnStart + i));
  }
  return frames;
}

/** INV-5 as a checker: the frames of kvm:N whose owner is not public, kvm or vm:N. */
function inv5Offenders(machine: Machine, vmId: number): string[] {
  const offenders: string[] = [];
  for (const [pfn, owner] of mappedFrames(machine, kvmSpace(vmId))) {
    if (!isAllowedInKvm(owner, vmId))
      offenders.push(`pfn ${pfn} (${domainName(owner)}, ${machine.frames.regionOf(pfn).name})`);
  }
  return offenders;
}

describe('address spaces', () => {
  it('kernel maps every physical frame through the direct map, with 2 MiB pages where aligned', () => {
    const machine = smallMachine();
    const { frameCount } = machine.layout;
    for (let pfn = 0; pfn < frameCount; pfn += 97) {
      expect(machine.pageTables.translate(kernelSpace, directMapVa + pfn * pageBytes)).toMatchObject({
        ok: true,
        pfn,
      });
    }
    const direct = machine.pageTables.listMapped(
      kernelSpace,
      directMapVa,
      directMapVa + frameCount * pageBytes,
    );
    expect(direct.reduce((sum, range) => sum + range.pages, 0)).toBe(frameCount);
    expect(direct.some((range) => range.leafBytes === largePage2MBytes)).toBe(true);
    expect(direct.every((range) => !range.global && !range.executable)).toBe(true);
  });

  it('kvm:N is built from copied ranges into table pages of its own', () => {
    const machine = smallMachine();
    const kernelTables = new Set(machine.pageTables.tablePagesOf(kernelSpace));
    const kvmTables = machine.pageTables.tablePagesOf(kvmSpace(0));
    expect(kvmTables.length).toBeGreaterThan(4);
    expect(kvmTables.some((pfn) => kernelTables.has(pfn))).toBe(false);
    // What the RFC maps is there, through the same kernel VAs.
    for (const name of [
      'kernel-text',
      'entry-area/3',
      'irq-stack/0',
      'percpu-kvm/2',
      'kvm-module',
      'vm-struct:0',
      'vcpu-struct:0/3',
      'memslots:0',
      'io-bus:0',
      'guest-memory:0',
    ]) {
      const region = machine.region(name);
      const va = machine.regionVa(region);
      expect(machine.pageTables.translate(kvmSpace(0), va), name).toMatchObject({
        ok: true,
        pfn: region.firstPfn,
      });
      expect(
        machine.pageTables.translate(kvmSpace(0), va + (region.frames - 1) * pageBytes),
        name,
      ).toMatchObject({ ok: true, pfn: region.firstPfn + region.frames - 1 });
    }
  });

  it('INV-5: kvm:N maps no host frame and no frame of another VM, though the kernel maps them with 2 MiB pages', () => {
    const machine = twoVmMachine();
    for (const vmId of [0, 1]) expect(inv5Offenders(machine, vmId)).toEqual([]);
    // The checker can fail: copy one page of host secrets into kvm:0 (a planted bug).
    const keys = machine.region('keys');
    machine.pageTables.copyRange(kvmSpace(0), kernelSpace, machine.regionVa(keys), pageBytes);
    expect(inv5Offenders(machine, 0)).toEqual([`pfn ${keys.firstPfn} (host, keys)`]);
    expect(inv5Offenders(machine, 1)).toEqual([]);
  });

  it('INV-6: building and changing kvm:N never writes a kernel page-table page (checksums before and after)', () => {
    const machine = twoVmMachine();
    const tables = machine.pageTables;
    const before = tables.checksumTables(kernelSpace);
    const kernelWrites = tables.entryWrites(kernelSpace);
    // Change kvm:0 a lot: copy more ranges (some straddling 2 MiB kernel leaves), clear, remap, split.
    const guest = machine.region('guest-memory:0');
    const guestVa = machine.regionVa(guest);
    tables.clearRange(kvmSpace(0), guestVa, guest.frames * pageBytes);
    tables.copyRange(kvmSpace(0), kernelSpace, guestVa + 3 * pageBytes, 700 * pageBytes);
    tables.clearRange(kvmSpace(0), guestVa + 5 * pageBytes, 3 * pageBytes);
    tables.map(kvmSpace(0), 0x100000000000, guest.firstPfn, MapFlag.write);
    tables.copyRange(
      kvmSpace(1),
      kernelSpace,
      machine.regionVa(machine.region('vcpu-struct:1/0')),
      4 * pageBytes,
    );
    expect(tables.checksumTables(kernelSpace)).toBe(before);
    expect(tables.entryWrites(kernelSpace)).toBe(kernelWrites);
    // The checksum can fail: a change to the kernel is seen.
    tables.map(kernelSpace, 0x100000000000, 5, 0);
    expect(tables.checksumTables(kernelSpace)).not.toBe(before);
  });

  it('INV-6 from the start: building every kvm:N, guest:N and vmm:N leaves the kernel tables as the kernel build left them', () => {
    const full = twoVmMachine();
    const { config, plan, layout } = full;
    // createMachine's steps up to the kernel build, on a buffer of our own with the same header and config.
    const buffer = new SharedArrayBuffer(layout.totalBytes);
    const headerBytes = (layout.sections.config.offsetI32 + layout.sections.config.lengthI32) * 4;
    new Uint8Array(buffer).set(new Uint8Array(full.buffer, 0, headerBytes));
    const machine = new Machine(buffer, config, plan, layout, true);
    machine.frames.initialize();
    machine.pageTables.initializePool();
    buildKernelSpace(machine.pageTables, config, plan);
    const tables = machine.pageTables;
    const kernelBuilt = tables.checksumTables(kernelSpace);
    const kernelWrites = tables.entryWrites(kernelSpace);
    config.vms.forEach((_, vmId) => {
      buildKvmSpace(tables, plan, vmId);
      buildGuestSpace(tables, plan, vmId);
      buildVmmSpace(tables, plan, vmId);
      expect(tables.checksumTables(kernelSpace), `after the spaces of vm:${vmId}`).toBe(kernelBuilt);
      expect(tables.entryWrites(kernelSpace), `after the spaces of vm:${vmId}`).toBe(kernelWrites);
      expect(tables.entryWrites(kvmSpace(vmId)), `kvm:${vmId} was built`).toBeGreaterThan(0);
    });
    // And createMachine itself ends with the kernel mapping the kernel build made. (Not the same checksum:
    // the copied header carries the full machine's page-table pool cursor, so table pages sit elsewhere.)
    expect(full.pageTables.listMapped(kernelSpace)).toEqual(tables.listMapped(kernelSpace));
  });

  it('INV-7 at this level: a kvm:N walk of host memory returns a fault record naming address and access, never a frame', () => {
    const machine = smallMachine();
    for (const name of ['page-cache', 'keys', 'percpu/1', 'other-processes', 'vmm-heap:0']) {
      const va = machine.regionVa(machine.region(name));
      expect(machine.pageTables.translate(kernelSpace, va)).toMatchObject({ ok: true });
      const fault = machine.pageTables.translate(kvmSpace(0), va, Access.write);
      expect(fault, name).toEqual({
        ok: false,
        addressSpace: kvmSpace(0),
        va,
        access: Access.write,
        reason: 'not-present',
        level: expect.any(Number),
      });
      expect(machine.pageTables.walk(kvmSpace(0), va, Access.read, true)).toBeLessThan(0);
    }
  });

  it('guest:N maps guest-physical memory onto the VM frames; vmm:N maps it at a user address', () => {
    const machine = smallMachine();
    const guest = machine.region('guest-memory:0');
    expect(machine.pageTables.translate(guestSpace(0), 17 * pageBytes)).toMatchObject({
      ok: true,
      pfn: guest.firstPfn + 17,
    });
    expect(machine.pageTables.translate(guestSpace(0), guest.frames * pageBytes)).toMatchObject({
      ok: false,
    });
    expect(
      machine.pageTables.translate(
        vmmSpace(0),
        vmmGuestMemoryVa + 17 * pageBytes,
        Access.user | Access.write,
      ),
    ).toMatchObject({ ok: true, pfn: guest.firstPfn + 17 });
    expect(addressSpaceName(vmmSpace(0))).toBe('vmm:0');
    expect(formatVa(directMapVa)).toBe('0xffff888000000000');
  });

  it('every frame has the owner of its region, and page-table pages take their address space owner', () => {
    const machine = twoVmMachine();
    for (const region of machine.plan.regions) {
      if (region.kind === 'page-tables' || region.frames === 0) continue;
      expect(machine.frames.ownerOf(region.firstPfn), region.name).toBe(region.owner);
      expect(machine.frames.ownerOf(region.firstPfn + region.frames - 1), region.name).toBe(region.owner);
      expect(machine.frames.regionOf(region.firstPfn).name).toBe(region.name);
    }
    const kvmTable = machine.pageTables.tablePagesOf(kvmSpace(1))[0];
    expect(domainName(machine.frames.ownerOf(kvmTable))).toBe('kvm');
    const eptTable = machine.pageTables.tablePagesOf(guestSpace(1))[0];
    expect(domainName(machine.frames.ownerOf(eptTable))).toBe('vm:1');
  });
});
