import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  type AccessKernels,
  type DescriptorView,
  descriptorI32s,
  type TranslateKernel,
} from '../../src/cache/access-kernel.js';
import { pageBytes } from '../../src/constants.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { allocateSimRegion, releaseSimRegion } from '../../src/memory/sim-arena.js';
import { guestSpace, kernelSpace, kvmSpace, vmmSpace } from '../../src/paging/address-space.js';
import { Access, MapFlag } from '../../src/paging/entry-format.js';
import { Tlb } from '../../src/paging/tlb.js';

/**
 * The access kernel's TLB hit (`translate` in src/cache/access-kernel.wat) against `Tlb.translatePage`
 * in JavaScript: the same commands on two machines of one config, a sim machine (in the sim arena, with
 * the kernel) and a machine made for threads (a buffer of its own, the reference path), must give the
 * same answers and leave the same TLBs, page tables and counters (fast-check prints the seed and the
 * shrunk commands of a failure).
 */

const config = { cores: 2, smt: 2, memoryMiB: 64, vms: [{ vcpus: 4, guestMemoryMiB: 4 }], tlbEntries: 16 };
const spaces = [kernelSpace, kvmSpace(0), guestSpace(0), vmmSpace(0)];
/** A page mapped read-only in kvm:0 at setup, unmapped and mapped again by the commands. */
const remappedVa = 0x1000_0000_0000;
const accesses = [Access.read, Access.write, Access.exec, Access.user, Access.write | Access.user];

type Command =
  | { kind: 'translate'; thread: number; space: number; va: number; access: number }
  | { kind: 'switch'; thread: number; space: number }
  | { kind: 'unmap' }
  | { kind: 'map'; writable: boolean };

function vasOf(machine: Machine): number[] {
  const regionVas = ['kernel-text', 'vcpu-struct:0/0', 'percpu-kvm/0', 'keys', 'page-cache'].map((name) =>
    machine.regionVa(machine.region(name)),
  );
  // Guest-physical pages (the guest space), a second page of a region, an unmapped address, the remap.
  return [
    ...regionVas,
    0,
    5 * pageBytes,
    300 * pageBytes,
    regionVas[1] + pageBytes,
    0x7000_0000_0000,
    remappedVa,
  ];
}

function apply(machine: Machine, tlbs: Tlb[], command: Command, vas: number[]): number | boolean {
  switch (command.kind) {
    case 'translate':
      return tlbs[command.thread].translate(command.space, vas[command.va], command.access);
    case 'switch':
      return tlbs[command.thread].switchTo(command.space);
    case 'unmap':
      return machine.pageTables.unmap(kvmSpace(0), remappedVa);
    case 'map':
      machine.pageTables.map(kvmSpace(0), remappedVa, 42, command.writable ? MapFlag.write : 0);
      return true;
  }
}

function threadsSection(machine: Machine): Int32Array {
  const { offsetI32, lengthI32 } = machine.layout.sections.threads;
  return machine.i32.subarray(offsetI32, offsetI32 + lengthI32);
}

function commandArbitrary(vaCount: number): fc.Arbitrary<Command> {
  const thread = fc.integer({ min: 0, max: 3 });
  const space = fc.constantFrom(...spaces);
  return fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant('translate' as const),
        thread,
        space,
        va: fc.integer({ min: 0, max: vaCount - 1 }),
        access: fc.constantFrom(...accesses),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('switch' as const), thread, space }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'unmap' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('map' as const), writable: fc.boolean() }) },
  );
}

/** The arena's kernels (one per thread: a region's are every sim machine's). */
function arenaKernels(): AccessKernels {
  const region = allocateSimRegion(1);
  if (region === null) throw new Error('no sim arena');
  releaseSimRegion(region);
  return region.kernels;
}

/** A sim machine's descriptor of `thread` (its TLB's words are rewritten by the Tlb made around it). */
function threadDescriptorOf(machine: Machine, thread: number): DescriptorView {
  const i32Index = machine.kernelDescriptorI32Index(thread);
  return { words: new Int32Array(machine.i32.buffer, i32Index * 4, descriptorI32s), i32Index };
}

/**
 * Runs `commands` on a sim machine and a threads machine; true when every answer, the thread records
 * after every command and the whole buffers at the end agree. `plant` wraps the sim machine's kernel
 * (its TLBs are then made anew around the wrapped kernel); `served` counts the kernel's hits.
 */
function sameAsReference(
  commands: Command[],
  pcid: boolean,
  plant: (kernel: TranslateKernel) => TranslateKernel = (kernel) => kernel,
  served = { hits: 0 },
): boolean {
  const kernelMachine = createMachine({ ...config, pcid }, { concurrent: false });
  const referenceMachine = createMachine({ ...config, pcid }, { concurrent: true });
  const counted: TranslateKernel = (...args) => {
    const pfn = plant(arenaKernels().translate)(...args);
    if (pfn >= 0) served.hits++;
    return pfn;
  };
  const kernelTlbs = kernelMachine.tlbs.map(
    (_, thread) =>
      new Tlb(
        kernelMachine.i32,
        kernelMachine.layout,
        kernelMachine.pageTables,
        thread,
        { entries: kernelMachine.config.tlbEntries, ways: kernelMachine.config.tlbWays, pcid },
        false,
        counted,
        kernelMachine.byteOffset / 4,
        threadDescriptorOf(kernelMachine, thread),
      ),
  );
  const vas = vasOf(kernelMachine);
  for (const machine of [kernelMachine, referenceMachine])
    machine.pageTables.map(kvmSpace(0), remappedVa, 42, 0);
  let same = true;
  for (const command of commands) {
    same =
      apply(kernelMachine, kernelTlbs, command, vas) ===
      apply(referenceMachine, referenceMachine.tlbs, command, vas);
    if (!same) break;
    same = threadsSection(kernelMachine).every((word, i) => word === threadsSection(referenceMachine)[i]);
    if (!same) break;
  }
  // The whole buffers at the end: page tables (accessed and dirty bits), generations, counters.
  same &&= kernelMachine.i32.every((word, i) => word === referenceMachine.i32[i]);
  kernelMachine.dispose();
  return same;
}

describe('access kernel: TLB hits', () => {
  const pcidCases = [true, false];
  test.each(pcidCases)('answer and leave the TLBs as the reference does (pcid %s)', (pcid) => {
    const vaCount = vasOf(createMachine(config)).length;
    const served = { hits: 0 };
    fc.assert(
      fc.property(
        fc.array(commandArbitrary(vaCount), { minLength: 1, maxLength: 300, size: 'max' }),
        (commands) => sameAsReference(commands, pcid, undefined, served),
      ),
      { numRuns: 60 },
    );
    // The kernel served hits (a kernel that handed everything back would compare the reference with itself).
    expect(served.hits).toBeGreaterThan(20);
  });

  test('the comparison catches a planted kernel bug: a write hit on a clean page (no second walk for D)', () => {
    const commands: Command[] = [
      { kind: 'translate', thread: 0, space: kernelSpace, va: 1, access: Access.read },
      { kind: 'translate', thread: 0, space: kernelSpace, va: 1, access: Access.write },
    ];
    expect(sameAsReference(commands, true)).toBe(true);
    // Asking the kernel for a read instead of the access skips its write-permission check.
    const writeAsRead =
      (kernel: TranslateKernel): TranslateKernel =>
      (...args) => {
        args[4] = Access.read;
        return kernel(...args);
      };
    expect(sameAsReference(commands, true, writeAsRead)).toBe(false);
  });
});
