import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { AcceleratedThreadAccess } from '../../src/accel/accelerated-access.js';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { AccessKernels, GuestAccessKernel, LineAccessKernel } from '../../src/accel/access-kernel.js';
import { simArenaKernels } from '../../src/accel/sim-arena.js';
import { cacheLineBytes, pageBytes } from '../../src/constants.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { l1dClockI32, l1dStampMax } from '../../src/memory/sub-layouts.js';
import { guestSpace, kernelSpace, kvmSpace } from '../../src/paging/address-space.js';
import { Access, MapFlag } from '../../src/paging/entry-format.js';
import { lineInPageOf } from '../../src/paging/va-layout.js';

/**
 * The access kernel's guest read and handler line (`guestAccess` and `lineAccess` in
 * src/accel/access-kernel.wat: a TLB hit, the frame's owner and the cache access in one call) against the
 * JavaScript they stand for (`Tlb.translatePage` / `Tlb.translate`, `FrameTable.ownerOf`,
 * `CoreCaches.access`): the same commands on a sim machine (in the sim arena, with the kernel) and a
 * machine made for threads (its own buffer, no kernel) must give the same answers and leave the same
 * buffer. The kernel machine follows the protocol of `AcceleratedThreadAccess` (src/accel/accelerated-access.ts)
 * for what the kernel hands back (test/accel/sim-arena.test.ts runs the hyperthread itself both ways). fast-check prints the seed and the shrunk commands of a failure.
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
  | { kind: 'line'; thread: number; space: number; va: number; line: number; access: number }
  | { kind: 'unmap' }
  | { kind: 'map'; writable: boolean }
  | { kind: 'owner'; page: number; domain: number }
  | { kind: 'flush'; core: number }
  | { kind: 'clock'; core: number };

/** What an access came to: 'hit', 'miss', 'unmapped'; a handler's line: the frame and hit or miss, or the fault. */
type Answer = 'hit' | 'miss' | 'unmapped' | string | number;

function reference(machine: Machine, thread: number, page: number, line: number): Answer {
  const pfn = machine.tlbs[thread].translatePage(guestSpace(0), page, 0, Access.read);
  if (pfn < 0) return 'unmapped';
  return machine.caches[machine.coreOf(thread)].access(pfn, line, machine.frames.ownerOf(pfn))
    ? 'hit'
    : 'miss';
}

interface Served {
  /** Guest reads and handler lines the kernel answered whole, and those it translated and handed back. */
  whole: number;
  lines: number;
  handedBack: number;
}

/** The arena's kernels (one per thread: every sim machine's of the thread). */
function arenaKernels(): AccessKernels {
  const kernels = simArenaKernels();
  if (kernels === null) throw new Error('no sim arena');
  return kernels;
}

/** Where a sim machine's descriptor of `thread` is in the kernel's memory (the accelerated path wrote it). */
function descriptorOf(machine: Machine, thread: number): number {
  return (machine.access.thread(thread) as AcceleratedThreadAccess).descriptorI32Index;
}

/** A handler's line as `Tlb.translate` and `CoreCaches.access` make it: frame and hit or miss, or the fault. */
function referenceLine(machine: Machine, thread: number, space: number, va: number, access: number): Answer {
  const pfn = machine.tlbs[thread].translate(space, va, access);
  if (pfn < 0) return pfn;
  return `${pfn}:${cacheAccess(machine, thread, pfn, lineInPageOf(va))}`;
}

function cacheAccess(machine: Machine, thread: number, pfn: number, line: number): Answer {
  return machine.caches[machine.coreOf(thread)].access(pfn, line, machine.frames.ownerOf(pfn))
    ? 'hit'
    : 'miss';
}

/** `AcceleratedThreadAccess.lineAccess`'s use of the `lineAccess` kernel (`lineAccessRest` for what it hands back). */
function lineThroughKernel(
  machine: Machine,
  kernel: LineAccessKernel,
  served: Served,
  thread: number,
  space: number,
  va: number,
  access: number,
): Answer {
  const done = kernel(descriptorOf(machine, thread), space, va, access);
  if (done >= 0) {
    served.lines++;
    return `${done >>> 1}:${(done & 1) === 1 ? 'hit' : 'miss'}`;
  }
  if (done === -1) return referenceLine(machine, thread, space, va, access);
  served.handedBack++;
  return `${-2 - done}:${cacheAccess(machine, thread, -2 - done, lineInPageOf(va))}`;
}

/** `AcceleratedThreadAccess.guestRead`'s use of the kernel. */
function throughKernel(
  machine: Machine,
  kernel: GuestAccessKernel,
  served: Served,
  thread: number,
  page: number,
  line: number,
): Answer {
  const done = kernel(descriptorOf(machine, thread), guestSpace(0), page, line);
  if (done >= 0) {
    served.whole++;
    return done === 1 ? 'hit' : 'miss';
  }
  if (done === -1) return reference(machine, thread, page, line);
  served.handedBack++;
  const pfn = -2 - done;
  return machine.caches[machine.coreOf(thread)].access(pfn, line, machine.frames.ownerOf(pfn))
    ? 'hit'
    : 'miss';
}

interface Kernels {
  guest: (thread: number, page: number, line: number) => Answer;
  line: (thread: number, space: number, va: number, access: number) => Answer;
}

function apply(
  machine: Machine,
  command: Command,
  kernels: Kernels | null,
  vas: number[],
): Answer | number | boolean {
  switch (command.kind) {
    case 'guest':
      return (kernels?.guest ?? ((t, p, l) => reference(machine, t, p, l)))(
        command.thread,
        command.page,
        command.line,
      );
    case 'line': {
      // A handler's line: kernel and host frames, another owner in the cache sets, and faults.
      const va = vas[command.va] + command.line * cacheLineBytes;
      return (kernels?.line ?? ((t, sp, v, a) => referenceLine(machine, t, sp, v, a)))(
        command.thread,
        command.space,
        va,
        command.access,
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

/** Regions a handler reaches (kernel text is read-only, keys are not in kvm:0), and past them an unmapped VA. */
const handlerRegions = ['kernel-text', 'vcpu-struct:0/0', 'percpu-kvm/0', 'keys', 'page-cache'];

function vasOf(machine: Machine): number[] {
  return [...handlerRegions.map((name) => machine.regionVa(machine.region(name))), 0x7000_0000_0000];
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
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant('line' as const),
        thread,
        space: fc.constantFrom(kernelSpace, kvmSpace(0)),
        va: fc.integer({ min: 0, max: handlerRegions.length }),
        line: fc.constantFrom(0, 1, 63, 64),
        access: fc.constantFrom(Access.read, Access.write),
      }),
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
  wrapLine: (kernel: LineAccessKernel) => LineAccessKernel = (kernel) => kernel,
): number {
  const kernelMachine = createMachine(config(replacement), { concurrent: false, access: acceleratedAccess });
  const referenceMachine = createMachine(config(replacement), { concurrent: true });
  try {
    expect(kernelMachine.access.name).toBe('accelerated');
    const { guestAccess, lineAccess } = arenaKernels();
    // The descriptors are in the kernel's memory after the machine (the arena's buffer, whole).
    const memory = new Int32Array(kernelMachine.buffer);
    for (let thread = 0; thread < kernelMachine.threadCount; thread++)
      plant(memory, descriptorOf(kernelMachine, thread));
    const kernels: Kernels = {
      guest: (thread, page, line) => throughKernel(kernelMachine, guestAccess, served, thread, page, line),
      line: (thread, space, va, access) =>
        lineThroughKernel(kernelMachine, wrapLine(lineAccess), served, thread, space, va, access),
    };
    const vas = vasOf(kernelMachine);
    const sections = (machine: Machine) =>
      [machine.layout.sections.cores, machine.layout.sections.threads].map(({ offsetI32, lengthI32 }) =>
        machine.i32.subarray(offsetI32, offsetI32 + lengthI32),
      );
    for (let i = 0; i < commands.length; i++) {
      const kernelAnswer = apply(kernelMachine, commands[i], kernels, vas);
      const referenceAnswer = apply(referenceMachine, commands[i], null, vas);
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

describe('access kernel: a guest read and a handler line in one call', () => {
  test.each(['lru', 'plru'] as const)(
    'answers and leaves the machine as the reference does (%s)',
    (replacement) => {
      const served: Served = { whole: 0, lines: 0, handedBack: 0 };
      fc.assert(
        fc.property(
          fc.array(commandArbitrary(replacement), { minLength: 1, maxLength: 200, size: 'max' }),
          (commands) => firstDifference(commands, replacement, served) === -1,
        ),
        { numRuns: 40 },
      );
      // The kernel answered (a kernel that handed everything back would compare the reference with itself),
      // and under LRU the clock's bound made it hand lines back.
      expect(served.whole).toBeGreaterThan(150);
      expect(served.lines).toBeGreaterThan(30);
      if (replacement === 'lru') expect(served.handedBack).toBeGreaterThan(0);
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
    const served: Served = { whole: 0, lines: 0, handedBack: 0 };
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
    const served: Served = { whole: 0, lines: 0, handedBack: 0 };
    expect(firstDifference(commands, 'plru', served)).toBe(-1);
    const seenAsNow = (words: Int32Array, at: number) => {
      words[at + 4] = words[at + 3];
      words[at + 5] = 1;
    };
    expect(firstDifference(commands, 'plru', served, seenAsNow)).toBe(2);
  });

  test('the comparison catches a planted bug: a handler write asked as a read (no walk to set D)', () => {
    const commands: Command[] = [
      { kind: 'line', thread: 0, space: kvmSpace(0), va: 1, line: 0, access: Access.read },
      { kind: 'line', thread: 0, space: kvmSpace(0), va: 1, line: 1, access: Access.write },
    ];
    const served: Served = { whole: 0, lines: 0, handedBack: 0 };
    expect(firstDifference(commands, 'lru', served)).toBe(-1);
    const writeAsRead =
      (kernel: LineAccessKernel): LineAccessKernel =>
      (descriptor: number, space: number, va: number) =>
        kernel(descriptor, space, va, Access.read);
    expect(firstDifference(commands, 'lru', served, undefined, writeAsRead)).not.toBe(-1);
  });
});
