import { describe, expect, it } from 'vitest';
import { pageBytes } from '../../src/constants.js';
import { kernelSpace, kvmSpace } from '../../src/paging/address-space.js';
import { Access, Fault } from '../../src/paging/entry-format.js';
import { smallMachine } from '../helpers/machines.js';

describe('TLB', () => {
  it('hits after the first walk and keeps other address spaces entries across a CR3 switch with PCID', () => {
    const machine = smallMachine({ pcid: true });
    const tlb = machine.tlbs[0];
    const va = machine.regionVa(machine.region('vcpu-struct:0/0'));
    tlb.switchTo(kernelSpace);
    tlb.translate(kernelSpace, va, Access.read);
    expect(tlb.stats()).toMatchObject({ hits: 0, misses: 1 });
    tlb.translate(kernelSpace, va, Access.read);
    expect(tlb.stats()).toMatchObject({ hits: 1, misses: 1 });
    expect(tlb.switchTo(kvmSpace(0))).toBe(false);
    tlb.translate(kvmSpace(0), va, Access.read); // another tag: a miss
    tlb.switchTo(kernelSpace);
    tlb.translate(kernelSpace, va, Access.read); // the kernel entry survived
    expect(tlb.stats()).toMatchObject({ hits: 2, misses: 2 });
  });

  it('without PCID a CR3 switch flushes every non-global entry', () => {
    const machine = smallMachine({ pcid: false });
    const tlb = machine.tlbs[1];
    const data = machine.regionVa(machine.region('vcpu-struct:0/1'));
    const text = machine.regionVa(machine.region('kernel-text'));
    tlb.switchTo(kernelSpace);
    tlb.translate(kernelSpace, data, Access.read);
    tlb.translate(kernelSpace, text, Access.exec);
    expect(tlb.validEntries()).toBe(2);
    expect(tlb.switchTo(kvmSpace(0))).toBe(true);
    expect(tlb.validEntries()).toBe(1); // kernel text is global
    tlb.translate(kvmSpace(0), text, Access.exec);
    expect(tlb.stats().hits).toBe(1);
  });

  it('an unmap in one thread invalidates the entry in every other TLB (shootdown by generation)', () => {
    const machine = smallMachine();
    const va = 0x100000000000;
    machine.pageTables.map(kvmSpace(0), va, 42, 1);
    for (const tlb of machine.tlbs) expect(tlb.translate(kvmSpace(0), va, Access.read)).toBe(42);
    machine.pageTables.unmap(kvmSpace(0), va);
    for (const tlb of machine.tlbs)
      expect(tlb.translate(kvmSpace(0), va, Access.read)).toBe(Fault.notPresent);
  });

  it('host direct-map entries are not global, so a kernel TLB entry never serves kvm:N', () => {
    const machine = smallMachine();
    const tlb = machine.tlbs[0];
    const secret = machine.regionVa(machine.region('keys'));
    expect(tlb.translate(kernelSpace, secret, Access.read)).toBeGreaterThanOrEqual(0);
    expect(tlb.translate(kvmSpace(0), secret, Access.read)).toBe(Fault.notPresent);
  });

  it('a write to a clean page walks again to set D; a write to a read-only page faults', () => {
    const machine = smallMachine();
    const tlb = machine.tlbs[2];
    const va = 0x100000000000;
    machine.pageTables.map(kvmSpace(0), va, 9, 1 /* write */);
    machine.pageTables.map(kvmSpace(0), va + pageBytes, 10, 0);
    tlb.translate(kvmSpace(0), va, Access.read);
    expect(machine.pageTables.accessedDirty(kvmSpace(0), va)).toEqual({ accessed: true, dirty: false });
    tlb.translate(kvmSpace(0), va, Access.write);
    expect(machine.pageTables.accessedDirty(kvmSpace(0), va)).toEqual({ accessed: true, dirty: true });
    expect(tlb.translate(kvmSpace(0), va + pageBytes, Access.write)).toBe(Fault.write);
  });
});
