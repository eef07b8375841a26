import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { GuestAccessKernel } from '../../src/cache/access-kernel.js';
import { l1dClockI32, l1dStampMax } from '../../src/cache/l1d.js';
import { pageBytes } from '../../src/constants.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { guestSpace, kvmSpace } from '../../src/paging/address-space.js';
import { Access, MapFlag } from '../../src/paging/entry-format.js';

/**
 * The access kernel's guest read (`guestAccess` in src/cache/access-kernel.wat: a TLB hit, the frame's
 * owner and the cache access in one call) against the JavaScript it stands for (`Tlb.translatePage`,
 * `FrameTable.ownerOf`, `CoreCaches.access`): the same commands on a sim machine (in the sim arena, with
 * the kernel) and a machine made for threads (its own buffer, no kernel) must give the same answers and
 * leave the same buffer. The kernel machine follows the protocol of `Hyperthread.touchGuestLine` for
 * what the kernel hands back. fast-check prints the seed and the shrunk commands of a failure.
 */

const config = (replacement: 'lru' | 'plru') => ({
  cores: 2,
  smt: 2,
  memoryMiB: 64,
  vms: [{ vcpus: 4, guestMemoryMiB: 4 }],
  tlbEntries: 16,
  l1d: { sets: 64, ways: 4, replacement },
});
/** Guest pages: a few (so lines hit), one the commands unmap and map again, and past guest memory. */
const pages = [0, 1, 2, 3, 700, 1023, 1024, 5000];
const remappedPage = 3;
const lines = [0, 1, 2, 63];

type Command =
  | { kind: 'guest'; thread: number; page: number; line: number }
  | { kind: 'host'; thread: number; line: number }
  | { kind: 'unmap' }
  | { kind: 'map'; writable: boolean }
  | { kind: 'owner'; page: number; domain: number }
  | { kind: 'flush'; core: number }
  | { kind: 'clock'; core: number };

/** What an access came to: 'hit', 'miss', or 'unmapped'. */
type Answer = 'hit' | 'miss' | 'unmapped' | 'done';

function reference(machine: Machine, thread: number, page: number, line: number): Answer {
  const pfn = machine.tlbs[thread].translatePage(guestSpace(0), page, 0, Access.read);
  if (pfn < 0) return 'unmapped';
  return machine.caches[machine.coreOf(thread)].access(pfn, line, machine.frames.ownerOf(pfn))
    ? 'hit'
    : 'miss';
}

interface Served {
  /** Accesses the kernel answered whole, and those it translated and handed the line back. */
  whole: number;
  lineHandedBack: number;
}

/** `Hyperthread.touchGuestMemory`'s use of the kernel. */
function throughKernel(
  machine: Machine,
  kernel: GuestAccessKernel,
  served: Served,
  thread: number,
  page: number,
  line: number,
): Answer {
  const done = kernel(machine.guestAccessDescriptorI32Index(thread), guestSpace(0), page, line);
  if (done >= 0) {
    served.whole++;
    return done === 1 ? 'hit' : 'miss';
  }
  if (done === -1) return reference(machine, thread, page, line);
  served.lineHandedBack++;
  const pfn = -2 - done;
  return machine.caches[machine.coreOf(thread)].access(pfn, line, machine.frames.ownerOf(pfn))
    ? 'hit'
    : 'miss';
}

function apply(
  machine: Machine,
  command: Command,
  guestAccess: ((thread: number, page: number, line: number) => Answer) | null,
): Answer | number | boolean {
  switch (command.kind) {
    case 'guest':
      return (guestAccess ?? ((t, p, l) => reference(machine, t, p, l)))(
        command.thread,
        command.page,
        command.line,
      );
    case 'host': {
      // A host line in the core's caches (a handler's access): another owner in the sets.
      const va = machine.regionVa(machine.region('kernel-text'));
      const pfn = machine.tlbs[command.thread].translate(kvmSpace(0), va, Access.read);
      return machine.caches[machine.coreOf(command.thread)].access(
        pfn,
        command.line,
        machine.frames.ownerOf(pfn),
      );
    }
    case 'unmap':
      return machine.pageTables.unmap(guestSpace(0), remappedPage * pageBytes);
    case 'map':
      machine.pageTables.map(
        guestSpace(0),
        remappedPage * pageBytes,
        4242,
        command.writable ? MapFlag.write : 0,
      );
      return true;
    case 'owner': {
      // The frame changes owner under the lines it has in the caches (they are retagged at a hit).
      const pfn = machine.pageTables.walk(guestSpace(0), command.page * pageBytes, 0, false);
      if (pfn >= 0) machine.frames.setOwner(pfn, command.domain);
      return pfn;
    }
    case 'flush':
      return machine.caches[command.core].l1d.flush() + machine.caches[command.core].fillBuffers.flush();
    case 'clock': {
      // The LRU clock near its bound: the kernel hands the line back, the reference renumbers the stamps.
      const l1d = machine.caches[command.core].l1d;
      machine.i32[l1d.baseI32Index + l1dClockI32] = l1dStampMax - 2;
      return true;
    }
  }
}

function commandArbitrary(replacement: 'lru' | 'plru'): fc.Arbitrary<Command> {
  const thread = fc.integer({ min: 0, max: 3 });
  const core = fc.integer({ min: 0, max: 1 });
  return fc.oneof(
    {
      weight: 30,
      arbitrary: fc.record({
        kind: fc.constant('guest' as const),
        thread,
        page: fc.constantFrom(...pages),
        line: fc.constantFrom(...lines),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('host' as const), thread, line: fc.constantFrom(...lines) }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'unmap' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('map' as const), writable: fc.boolean() }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('owner' as const),
        page: fc.constantFrom(0, 1, 2),
        domain: fc.integer({ min: 0, max: 2 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const), core }) },
    // PLRU has no clock to renumber.
    {
      weight: replacement === 'lru' ? 1 : 0,
      arbitrary: fc.record({ kind: fc.constant('clock' as const), core }),
    },
  );
}

/**
 * Runs `commands` on both machines; the index of the first command whose answer or resulting cores and
 * threads sections differ, -2 when only the whole buffers differ at the end, -1 when all agree. `plant`
 * rewrites each thread's descriptor of the kernel machine (`words[at]` is its word 0).
 */
function firstDifference(
  commands: Command[],
  replacement: 'lru' | 'plru',
  served: Served,
  plant: (words: Int32Array, at: number) => void = () => {},
): number {
  const kernelMachine = createMachine(config(replacement), { concurrent: false });
  const referenceMachine = createMachine(config(replacement), { concurrent: true });
  try {
    const kernel = kernelMachine.guestAccess;
    if (kernel === null) throw new Error('a sim machine in the arena has the guest-access kernel');
    // The descriptors are in the kernel's memory after the machine (the arena's buffer, whole).
    const memory = new Int32Array(kernelMachine.buffer);
    for (let thread = 0; thread < kernelMachine.threadCount; thread++)
      plant(memory, kernelMachine.guestAccessDescriptorI32Index(thread));
    const guestAccess = (thread: number, page: number, line: number) =>
      throughKernel(kernelMachine, kernel, served, thread, page, line);
    const sections = (machine: Machine) =>
      [machine.layout.sections.cores, machine.layout.sections.threads].map(({ offsetI32, lengthI32 }) =>
        machine.i32.subarray(offsetI32, offsetI32 + lengthI32),
      );
    for (let i = 0; i < commands.length; i++) {
      const kernelAnswer = apply(kernelMachine, commands[i], guestAccess);
      const referenceAnswer = apply(referenceMachine, commands[i], null);
      if (kernelAnswer !== referenceAnswer) return i;
      const [kernelSections, referenceSections] = [sections(kernelMachine), sections(referenceMachine)];
      for (let s = 0; s < kernelSections.length; s++) {
        if (!kernelSections[s].every((word, at) => word === referenceSections[s][at])) return i;
      }
    }
    // The whole buffers at the end: page tables (accessed bits), generations, owners, counters.
    return kernelMachine.i32.every((word, at) => word === referenceMachine.i32[at]) ? -1 : -2;
  } finally {
    kernelMachine.dispose();
  }
}

describe('access kernel: a guest read in one call', () => {
  test.each(['lru', 'plru'] as const)(
    'answers and leaves the machine as the reference does (%s)',
    (replacement) => {
      const served: Served = { whole: 0, lineHandedBack: 0 };
      fc.assert(
        fc.property(
          fc.array(commandArbitrary(replacement), { minLength: 1, maxLength: 200, size: 'max' }),
          (commands) => firstDifference(commands, replacement, served) === -1,
        ),
        { numRuns: 40 },
      );
      // The kernel answered (a kernel that handed everything back would compare the reference with itself),
      // and under LRU the clock's bound made it hand lines back.
      expect(served.whole).toBeGreaterThan(500);
      if (replacement === 'lru') expect(served.lineHandedBack).toBeGreaterThan(0);
    },
  );

  // Descriptor words (access-kernel.wat): 3 the TLB's seen generations, 4 the page tables' generation of
  // space 0, 5 the stride between spaces, 7 the frame table's owners.
  test('the comparison catches a planted bug: the owner read from the neighbouring frame', () => {
    const commands: Command[] = [
      { kind: 'owner', page: 1, domain: 0 },
      { kind: 'guest', thread: 0, page: 1, line: 2 },
      { kind: 'guest', thread: 0, page: 1, line: 2 },
    ];
    const served: Served = { whole: 0, lineHandedBack: 0 };
    expect(firstDifference(commands, 'lru', served)).toBe(-1);
    expect(served.whole).toBe(1); // the first read misses in the TLB: the reference path walks
    const ownerOffByOne = (words: Int32Array, at: number) => {
      words[at + 7] += 1;
    };
    expect(firstDifference(commands, 'lru', served, ownerOffByOne)).toBe(2);
  });

  test('the comparison catches a planted bug: an unmap not seen (the generation compared with itself)', () => {
    const commands: Command[] = [
      { kind: 'guest', thread: 0, page: remappedPage, line: 0 },
      { kind: 'unmap' },
      { kind: 'guest', thread: 0, page: remappedPage, line: 0 },
    ];
    const served: Served = { whole: 0, lineHandedBack: 0 };
    expect(firstDifference(commands, 'plru', served)).toBe(-1);
    const seenAsNow = (words: Int32Array, at: number) => {
      words[at + 4] = words[at + 3];
      words[at + 5] = 1;
    };
    expect(firstDifference(commands, 'plru', served, seenAsNow)).toBe(2);
  });
});
