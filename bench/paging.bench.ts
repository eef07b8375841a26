import { createMachine } from '../src/machine.js';
import { kernelSpace, kvmSpace } from '../src/paging/address-space.js';
import { Access } from '../src/paging/entry-format.js';
import { addBatchTask, type BenchFigure, figuresOf, newBench } from './common.js';

/**
 * Page walks per second: full 4-level walks (no TLB) to a 4 KiB leaf in kvm:0 and to a 2 MiB leaf of
 * the kernel direct map, a faulting walk (host memory from kvm:0), and TLB-hit translations.
 */
export async function runPagingBench(): Promise<BenchFigure[]> {
  const machine = createMachine({ cores: 2, smt: 2, memoryMiB: 128, vms: [{ vcpus: 4, guestMemoryMiB: 8 }] });
  const tables = machine.pageTables;
  const vcpu = machine.regionVa(machine.region('vcpu-struct:0/0'));
  const guestVa = machine.regionVa(machine.region('guest-memory:0'));
  const secret = machine.regionVa(machine.region('page-cache'));
  const pages = 64;
  let cursor = 0;
  let sink = 0;
  const bench = newBench();
  addBatchTask(bench, 'walk 4-level to 4 KiB leaf (kvm:0)', 1000, () => {
    sink += tables.walk(kvmSpace(0), vcpu + (cursor++ % 4) * 4096, Access.read, true);
  });
  addBatchTask(bench, 'walk 3-level to 2 MiB leaf (kernel direct map)', 1000, () => {
    sink += tables.walk(kernelSpace, guestVa + (cursor++ % pages) * 4096, Access.read, true);
  });
  addBatchTask(bench, 'walk that faults (host memory from kvm:0)', 1000, () => {
    sink += tables.walk(kvmSpace(0), secret + (cursor++ % pages) * 4096, Access.read, true);
  });
  const tlb = machine.tlbs[0];
  tlb.switchTo(kvmSpace(0));
  addBatchTask(bench, 'TLB-hit translation (kvm:0)', 1000, () => {
    sink += tlb.translate(kvmSpace(0), vcpu + (cursor++ % 4) * 4096, Access.read);
  });
  await bench.run();
  if (sink === Number.MIN_SAFE_INTEGER) console.log(sink); // keep the work observable
  return figuresOf(bench, 'paging');
}
