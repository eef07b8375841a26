import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { AcceleratedThreadAccess } from '../../src/accel/accelerated-access.js';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { AccessKernels, TranslateKernel } from '../../src/accel/access-kernel.js';
import { simArenaKernels } from '../../src/accel/sim-arena.js';
import { pageBytes } from '../../src/constants.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { guestSpace, kernelSpace, kvmSpace, vmmSpace } from '../../src/paging/address-space.js';
import { Access, MapFlag } from '../../src/paging/entry-format.js';

/**
 * The access kernel's TLB hit (`translate` in src/accel/access-kernel.wat) against `Tlb.translatePage`
 * in JavaScript: the same commands on two machines of one config, a sim machine (in the sim arena, with
 * the kernel first and the Tlb for what it hands back, as the accelerated path does) and a machine made
 * for threads (a buffer of its own, the reference path), must give the
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

/** A translation of `va` on a thread: `Tlb.translate`, or the kernel's hit first (kernelTranslate). */
type Translate = (thread: number, space: number, va: number, access: number) => number;

function apply(machine: Machine, translate: Translate, command: Command, vas: number[]): number | boolean {
  switch (command.kind) {
    case 'translate':
      return translate(command.thread, command.space, vas[command.va], command.access);
    case 'switch':
      return machine.tlbs[command.thread].switchTo(command.space);
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

/** The arena's kernels (one per thread: every sim machine's of the thread). */
function arenaKernels(): AccessKernels {
  const kernels = simArenaKernels();
  if (kernels === null) throw new Error('no sim arena');
  return kernels;
}

/** A sim machine's descriptor of `thread` in the kernel's memory (written when the machine was bound). */
function threadDescriptorOf(machine: Machine, thread: number): number {
  expect(machine.access.name).toBe('accelerated');
  return (machine.access.thread(thread) as AcceleratedThreadAccess).descriptorI32Index;
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
  const kernelMachine = createMachine({ ...config, pcid }, { concurrent: false, access: acceleratedAccess });
  const referenceMachine = createMachine({ ...config, pcid }, { concurrent: true });
  const counted: TranslateKernel = (...args: Parameters<TranslateKernel>) => {
    const pfn = plant(arenaKernels().translate)(...args);
    if (pfn >= 0) served.hits++;
    return pfn;
  };
  const descriptors = kernelMachine.tlbs.map((_, thread) => threadDescriptorOf(kernelMachine, thread));
  // The kernel's hit, else the Tlb does it all (what the accelerated path does around `translate`).
  const kernelTranslate: Translate = (thread, space, va, access) => {
    const vpn = Math.floor(va / pageBytes);
    const pfn = counted(descriptors[thread], space, vpn % 2 ** 30, Math.floor(vpn / 2 ** 30), access);
    return pfn >= 0 ? pfn : kernelMachine.tlbs[thread].translate(space, va, access);
  };
  const referenceTranslate: Translate = (thread, space, va, access) =>
    referenceMachine.tlbs[thread].translate(space, va, access);
  const vas = vasOf(kernelMachine);
  for (const machine of [kernelMachine, referenceMachine])
    machine.pageTables.map(kvmSpace(0), remappedVa, 42, 0);
  let same = true;
  for (const command of commands) {
    same =
      apply(kernelMachine, kernelTranslate, command, vas) ===
      apply(referenceMachine, referenceTranslate, command, vas);
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
      (...args: Parameters<TranslateKernel>) => {
        args[4] = Access.read;
        return kernel(...args);
      };
    expect(sameAsReference(commands, true, writeAsRead)).toBe(false);
  });
});
