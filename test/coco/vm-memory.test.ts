import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type KvmErrno, KvmError } from '../../src/coco/errno.js';
import { FrameStore, SimpleFrameSource } from '../../src/coco/frame-source.js';
import { guestMemfdFlagMmap, type HostAccessFault } from '../../src/coco/guest-memfd.js';
import { kvmMemGuestMemfd } from '../../src/coco/memslots.js';
import {
  convertOnMapGpaRange,
  kvmEinval,
  kvmEnosys,
  kvmEperm,
  kvmExitHypercallValidMask,
  kvmExitMemoryFault,
  kvmExitMmio,
  kvmHcMapGpaRange,
  kvmMapGpaRangeEncrypted,
  kvmMemoryAttributePrivate,
  kvmMemoryExitFlagPrivate,
  type MapGpaRangeExit,
  VmMemory,
  type VmType,
} from '../../src/coco/vm-memory.js';
import { pageBytes } from '../../src/constants.js';
import { CapacityError } from '../../src/errors.js';
import { domainFree, privateDomain, vmDomain } from '../../src/memory/domains.js';

const page = pageBytes;

/**
 * The KVM_EXIT_MEMORY_FAULT a guest access gets (api.rst): KVM_RUN fails with EFAULT, and
 * run->memory_fault carries the page and the KVM_MEMORY_EXIT_FLAG_PRIVATE bit for a private access.
 */
function memoryFaultExit(gpa: number, access: 'private' | 'shared', write: boolean) {
  return {
    kind: 'memory-fault',
    exitReason: kvmExitMemoryFault,
    errno: 'EFAULT',
    ret: -14,
    gpa,
    size: page,
    flags: access === 'private' ? 1n << 3n : 0n,
    access,
    write,
  };
}

function errnoOf(action: () => unknown): KvmErrno | 'none' {
  try {
    action();
  } catch (error) {
    if (error instanceof KvmError) return error.errno;
    throw error;
  }
  return 'none';
}

interface Setup {
  vm: VmMemory;
  source: SimpleFrameSource;
  faults: HostAccessFault[];
}

function makeVm(type: VmType = 'sw-protected', vmId = 0, frameCount = 1024): Setup {
  const source = new SimpleFrameSource(frameCount);
  const faults: HostAccessFault[] = [];
  const vm = new VmMemory({ vmId, frames: source, type, onHostFault: (fault) => faults.push(fault) });
  return { vm, source, faults };
}

/**
 * vm_userspace_mem_region_add(..., KVM_MEM_GUEST_MEMFD) in the selftest library creates a guest_memfd
 * for the region and binds it at offset 0.
 */
function addRegion(vm: VmMemory, slot: number, gpa: number, npages: number, flags: number, gmemFlags = 0n) {
  const gmem = (flags & kvmMemGuestMemfd) !== 0 ? vm.createGuestMemfd(npages * page, gmemFlags) : null;
  vm.setUserMemoryRegion2({
    slot,
    flags,
    guestPhysAddr: gpa,
    memorySize: npages * page,
    userspaceAddr: 0x7f0000000000 + gpa,
    guestMemfd: gmem,
    guestMemfdOffset: 0,
  });
  return gmem;
}

/** private_mem_kvm_exits_test.c */
const exitsTestGpa = 0xc0000000;
const exitsTestSlot = 10;

describe('private_mem_kvm_exits_test: test_private_access_memslot_deleted', () => {
  it('a private read after the memslot is deleted exits with a private memory fault for that page', () => {
    const { vm } = makeVm();
    addRegion(vm, exitsTestSlot, exitsTestGpa, 1, kvmMemGuestMemfd);
    vm.setMemoryAttributes({ address: exitsTestGpa, size: page, attributes: kvmMemoryAttributePrivate });
    expect(vm.guestRead(exitsTestGpa, new Uint8Array(8))).toBeNull();
    vm.setUserMemoryRegion2({
      slot: exitsTestSlot,
      flags: kvmMemGuestMemfd,
      guestPhysAddr: exitsTestGpa,
      memorySize: 0,
      userspaceAddr: 0,
      guestMemfd: null,
    });
    const exit = vm.guestRead(exitsTestGpa, new Uint8Array(8));
    expect(exit).toEqual(memoryFaultExit(exitsTestGpa, 'private', false));
  });
});

describe('private_mem_kvm_exits_test: test_private_access_memslot_not_private', () => {
  it('a private read of a slot without guest_memfd exits with a private memory fault', () => {
    const { vm } = makeVm();
    addRegion(vm, exitsTestSlot, exitsTestGpa, 1, 0);
    vm.setMemoryAttributes({ address: exitsTestGpa, size: page, attributes: kvmMemoryAttributePrivate });
    const exit = vm.guestRead(exitsTestGpa + 24, new Uint8Array(8));
    expect(exit).toEqual(memoryFaultExit(exitsTestGpa, 'private', false));
    // The exit converts nothing: the attribute stays private.
    expect(vm.isPrivate(exitsTestGpa)).toBe(true);
  });
});

describe('memory-fault exits when the access and the attribute disagree (arch/x86/kvm/mmu/mmu.c kvm_mmu_faultin_pfn)', () => {
  it('a private access (C-bit set) to a shared frame exits with flags private, and vice versa', () => {
    const { vm } = makeVm();
    addRegion(vm, 1, 0x100000, 4, kvmMemGuestMemfd);
    vm.setMemoryAttributes({ address: 0x102000, size: 2 * page, attributes: kvmMemoryAttributePrivate });
    expect(vm.guestWrite(0x100010, new Uint8Array(4), { access: 'private' })).toEqual(
      memoryFaultExit(0x100000, 'private', true),
    );
    expect(vm.guestRead(0x103ff0, new Uint8Array(4), { access: 'shared' })).toEqual(
      memoryFaultExit(0x103000, 'shared', false),
    );
    expect(vm.guestRead(0x100000, new Uint8Array(4), { access: 'shared' })).toBeNull();
    expect(vm.guestRead(0x102000, new Uint8Array(4), { access: 'private' })).toBeNull();
    expect(vm.privateRanges()).toEqual([[0x102, 0x104]]);
  });

  it('an access spanning a shared and a private page stops at the page that disagrees', () => {
    const { vm } = makeVm();
    addRegion(vm, 1, 0x100000, 2, kvmMemGuestMemfd);
    vm.setMemoryAttributes({ address: 0x101000, size: page, attributes: kvmMemoryAttributePrivate });
    const exit = vm.guestWrite(0x100ff0, new Uint8Array(32).fill(9), { access: 'shared' });
    expect(exit).toMatchObject({ kind: 'memory-fault', gpa: 0x101000, flags: 0n, access: 'shared' });
    const host = new Uint8Array(16);
    expect(vm.hostRead(0x100ff0, host)).toBeNull();
    expect(host.every((byte) => byte === 9)).toBe(true);
  });

  it('a private access after the guest_memfd is closed exits (kvm_gmem_get_pfn: the file is gone)', () => {
    const { vm } = makeVm();
    const gmem = addRegion(vm, 1, 0x100000, 1, kvmMemGuestMemfd)!;
    vm.setMemoryAttributes({ address: 0x100000, size: page, attributes: kvmMemoryAttributePrivate });
    gmem.close();
    expect(vm.guestRead(0x100000, new Uint8Array(1))).toMatchObject({
      kind: 'memory-fault',
      flags: kvmMemoryExitFlagPrivate,
      errno: 'EFAULT',
    });
  });

  it('a shared access with no memslot is MMIO, not a memory fault', () => {
    const { vm } = makeVm();
    expect(vm.guestRead(0x5000, new Uint8Array(8))).toEqual({
      kind: 'mmio',
      exitReason: kvmExitMmio,
      gpa: 0x5000,
      length: 8,
      write: false,
    });
  });
});

describe('MAP_GPA_RANGE argument checks (arch/x86/kvm/x86.c __kvm_emulate_hypercall)', () => {
  function withHandler(type: VmType = 'sw-protected') {
    const setup = makeVm(type);
    const exits: MapGpaRangeExit[] = [];
    setup.vm.setMapGpaRangeHandler((vm, exit) => {
      exits.push(exit);
      return convertOnMapGpaRange(vm, exit);
    });
    return { ...setup, exits };
  }

  it('without KVM_CAP_EXIT_HYPERCALL the guest gets -KVM_ENOSYS and the VMM sees nothing', () => {
    const { vm, exits } = withHandler();
    expect(vm.guestMapGpaRange(0, 1, kvmMapGpaRangeEncrypted)).toEqual({ ret: -kvmEnosys, exit: null });
    expect(exits).toHaveLength(0);
  });

  it('npages 0, an unaligned gpa and a range that wraps are -KVM_EINVAL and never reach the VMM', () => {
    const { vm } = makeVm();
    const exits: MapGpaRangeExit[] = [];
    vm.setMapGpaRangeHandler((_vm, exit) => {
      exits.push(exit);
      return 0;
    });
    vm.enableHypercallExit(kvmExitHypercallValidMask);
    expect(vm.guestMapGpaRange(0x1000, 0, 0).ret).toBe(-kvmEinval);
    expect(vm.guestMapGpaRange(0x1001, 1, 0).ret).toBe(-kvmEinval);
    expect(vm.guestMapGpaRange(0x1800, 4, 0).ret).toBe(-kvmEinval);
    const lastGfn = (1n << 52n) - 1n;
    expect(vm.guestMapGpaRange(lastGfn << 12n, (1n << 64n) - lastGfn, 0).ret).toBe(-kvmEinval);
    expect(vm.guestMapGpaRange(lastGfn << 12n, (1n << 64n) - 1n, 0).ret).toBe(-kvmEinval);
    expect(exits).toHaveLength(0);
    // The largest range that does not wrap is passed on to the VMM as it is.
    const { ret, exit } = vm.guestMapGpaRange(lastGfn << 12n, (1n << 64n) - lastGfn - 1n, 0);
    expect(exit).toMatchObject({ gpa: lastGfn << 12n, npages: (1n << 64n) - lastGfn - 1n });
    expect(exits).toHaveLength(1);
    expect(ret).toBe(0);
    // The default VMM policy refuses such a range itself: its byte size does not fit in a u64.
    expect(convertOnMapGpaRange(vm, exit!)).toBe(-kvmEinval);
  });

  it('from CPL 3 the hypercall is -KVM_EPERM', () => {
    const { vm, exits } = withHandler();
    vm.enableHypercallExit(kvmExitHypercallValidMask);
    expect(vm.guestMapGpaRange(0, 1, 0, { cpl: 3 }).ret).toBe(-kvmEperm);
    expect(exits).toHaveLength(0);
  });

  it('a valid request exits with (gpa, npages, attributes); the default VMM converts the range', () => {
    const { vm, exits } = withHandler();
    addRegion(vm, 1, 0x200000, 16, kvmMemGuestMemfd);
    vm.enableHypercallExit(kvmExitHypercallValidMask);
    const result = vm.guestMapGpaRange(0x204000, 4, kvmMapGpaRangeEncrypted);
    expect(result.ret).toBe(0);
    expect(exits).toEqual([
      {
        kind: 'hypercall',
        nr: kvmHcMapGpaRange,
        gpa: 0x204000n,
        npages: 4n,
        attributes: kvmMapGpaRangeEncrypted,
        longMode: true,
      },
    ]);
    expect(vm.privateRanges()).toEqual([[0x204, 0x208]]);
    expect(vm.guestMapGpaRange(0x205000, 1, 0).ret).toBe(0);
    expect(vm.privateRanges()).toEqual([
      [0x204, 0x205],
      [0x206, 0x208],
    ]);
  });

  it('a default VM cannot make memory private: the VMM reports -EINVAL to the guest', () => {
    const { vm } = withHandler('default');
    vm.enableHypercallExit(kvmExitHypercallValidMask);
    expect(vm.guestMapGpaRange(0, 1, kvmMapGpaRangeEncrypted).ret).toBe(-22);
    expect(vm.privateRanges()).toEqual([]);
  });

  it('KVM_CAP_EXIT_HYPERCALL refuses bits other than MAP_GPA_RANGE with EINVAL', () => {
    const { vm } = makeVm();
    expect(errnoOf(() => vm.enableHypercallExit(1 << 5))).toBe('EINVAL');
    expect(errnoOf(() => vm.enableHypercallExit(kvmExitHypercallValidMask))).toBe('none');
  });
});

describe('KVM_SET_MEMORY_ATTRIBUTES checks (virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes)', () => {
  it('flags != 0, unknown attributes, size 0, wrapping and unaligned ranges are EINVAL', () => {
    const { vm } = makeVm();
    const privateAttr = kvmMemoryAttributePrivate;
    expect(
      errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page, attributes: privateAttr, flags: 1 })),
    ).toBe('EINVAL');
    expect(errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page, attributes: 1n }))).toBe('EINVAL');
    expect(
      errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page, attributes: privateAttr | (1n << 4n) })),
    ).toBe('EINVAL');
    expect(errnoOf(() => vm.setMemoryAttributes({ address: 0, size: 0, attributes: privateAttr }))).toBe(
      'EINVAL',
    );
    expect(
      errnoOf(() =>
        vm.setMemoryAttributes({ address: (1n << 64n) - BigInt(page), size: 2 * page, attributes: 0 }),
      ),
    ).toBe('EINVAL');
    expect(errnoOf(() => vm.setMemoryAttributes({ address: 8, size: page, attributes: privateAttr }))).toBe(
      'EINVAL',
    );
    expect(
      errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page + 8, attributes: privateAttr })),
    ).toBe('EINVAL');
    expect(vm.privateRanges()).toEqual([]);
  });

  it('the PRIVATE attribute exists only for VMs with private memory (kvm_supported_mem_attributes)', () => {
    const { vm } = makeVm('default');
    expect(
      errnoOf(() =>
        vm.setMemoryAttributes({ address: 0, size: page, attributes: kvmMemoryAttributePrivate }),
      ),
    ).toBe('EINVAL');
    expect(errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page, attributes: 0 }))).toBe('none');
  });

  it('attributes are per VM frame, not per slot: they hold without any memslot and survive slot changes', () => {
    const { vm } = makeVm();
    vm.setMemoryAttributes({ address: 0x300000, size: 2 * page, attributes: kvmMemoryAttributePrivate });
    expect(vm.isPrivate(0x300000)).toBe(true);
    addRegion(vm, 1, 0x300000, 2, kvmMemGuestMemfd);
    expect(vm.isPrivate(0x301000)).toBe(true);
    expect(vm.isPrivate(0x302000)).toBe(false);
  });

  it('setting attributes a range already has changes nothing (no scrub of private data)', () => {
    const { vm } = makeVm();
    addRegion(vm, 1, 0, 2, kvmMemGuestMemfd);
    vm.setMemoryAttributes({ address: 0, size: 2 * page, attributes: kvmMemoryAttributePrivate });
    vm.guestWrite(0, new Uint8Array(2 * page).fill(7));
    vm.setMemoryAttributes({ address: 0, size: page, attributes: kvmMemoryAttributePrivate });
    const seen = new Uint8Array(2 * page);
    expect(vm.guestRead(0, seen)).toBeNull();
    expect(seen.every((byte) => byte === 7)).toBe(true);
  });

  it('a destroyed VM answers EBADF and has given its VMM frames back', () => {
    const { vm, source } = makeVm();
    addRegion(vm, 1, 0, 4, 0);
    vm.guestWrite(0, new Uint8Array(4 * page).fill(1));
    expect(vm.userFramesHeld).toBe(4);
    vm.destroy();
    expect(source.framesFree).toBe(source.frameCount);
    expect(errnoOf(() => vm.setMemoryAttributes({ address: 0, size: page, attributes: 0 }))).toBe('EBADF');
    expect(errnoOf(() => vm.destroy())).toBe('EBADF');
  });
});

describe('INV-10: a host access to a private frame is refused and reported, never fixed up', () => {
  it('the VMM reading a private page of a gmem-only slot gets SIGBUS tagged INV-10; the page stays private', () => {
    const { vm, faults } = makeVm('sw-protected', 5);
    const gmem = addRegion(vm, 1, 0x400000, 2, kvmMemGuestMemfd, guestMemfdFlagMmap)!;
    vm.setMemoryAttributes({ address: 0x400000, size: page, attributes: kvmMemoryAttributePrivate });
    vm.setMemoryAttributes({ address: 0x401000, size: page, attributes: 0 });
    expect(vm.guestWrite(0x400000, new Uint8Array(page).fill(0xee))).toBeNull();
    const pfn = gmem.frameOf(0);
    expect(vm.frames.ownerOf(pfn)).toBe(privateDomain(5));

    const target = new Uint8Array(16);
    const fault = vm.hostRead(0x400100, target);
    expect(fault).toMatchObject({
      kind: 'host-fault',
      signal: 'SIGBUS',
      invariant: 'INV-10',
      reason: 'private-page',
      gpa: 0x400000,
      pfn,
      ownerDomain: privateDomain(5),
      write: false,
    });
    expect(target.every((byte) => byte === 0)).toBe(true);
    expect(faults).toEqual([fault]);
    expect(vm.hostFaults).toBe(1);
    // Not fixed up: attribute, page state, owner and contents are all as they were.
    expect(vm.isPrivate(0x400000)).toBe(true);
    expect(gmem.isPageShared(0)).toBe(false);
    expect(vm.frames.ownerOf(pfn)).toBe(privateDomain(5));
    const guestView = new Uint8Array(page);
    expect(vm.guestRead(0x400000, guestView)).toBeNull();
    expect(guestView.every((byte) => byte === 0xee)).toBe(true);

    // A host write is refused the same way and does not land.
    expect(vm.hostWrite(0x400000, new Uint8Array(4).fill(1))).toMatchObject({
      invariant: 'INV-10',
      write: true,
    });
    expect(vm.guestRead(0x400000, guestView)).toBeNull();
    expect(guestView[0]).toBe(0xee);
    expect(vm.hostFaults).toBe(2);
  });

  it('the shared page of the same gmem-only slot is reachable by the host, as vmDomain memory', () => {
    const { vm } = makeVm('sw-protected', 5);
    const gmem = addRegion(vm, 1, 0x400000, 2, kvmMemGuestMemfd, guestMemfdFlagMmap)!;
    expect(vm.guestWrite(0x401000, new Uint8Array(8).fill(0x42))).toBeNull();
    const host = new Uint8Array(8);
    expect(vm.hostRead(0x401000, host)).toBeNull();
    expect(host.every((byte) => byte === 0x42)).toBe(true);
    expect(vm.frames.ownerOf(gmem.frameOf(1))).toBe(vmDomain(5));
  });

  it('an ordinary slot never exposes private contents: the host reads the shared backing', () => {
    const { vm, faults } = makeVm();
    addRegion(vm, 1, 0, 1, kvmMemGuestMemfd);
    vm.guestWrite(0, new Uint8Array(page).fill(0x11));
    vm.setMemoryAttributes({ address: 0, size: page, attributes: kvmMemoryAttributePrivate });
    vm.guestWrite(0, new Uint8Array(page).fill(0x99));
    const host = new Uint8Array(page);
    expect(vm.hostRead(0, host)).toBeNull();
    expect(host.every((byte) => byte === 0x11)).toBe(true);
    expect(faults).toHaveLength(0);
  });

  it('a GPA with no memslot has no host address: EFAULT', () => {
    const { vm } = makeVm();
    expect(errnoOf(() => vm.hostRead(0x9000, new Uint8Array(1)))).toBe('EFAULT');
  });

  it('no frame the host can reach is ever in the private domain (seeded random conversions)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: fc.constantFrom('convert', 'guest-write', 'host-read'),
            first: fc.nat(7),
            count: fc.integer({ min: 1, max: 4 }),
            toPrivate: fc.boolean(),
            byte: fc.integer({ min: 1, max: 255 }),
          }),
          { maxLength: 30 },
        ),
        (steps) => {
          const { vm } = makeVm('sw-protected', 2, 256);
          const gmemOnly = addRegion(vm, 1, 0, 8, kvmMemGuestMemfd, guestMemfdFlagMmap)!;
          addRegion(vm, 2, 0x100000, 8, kvmMemGuestMemfd);
          // Reference model, per page of each slot: private or not, and the bytes behind each backing.
          // Slot 0 is gmem-only: one backing, which loses its contents on every conversion. Slot 1 has
          // the VMM's memory (shared, never touched by KVM) and guest_memfd (private, scrubbed on
          // every conversion).
          const isPrivate = new Array<boolean>(16).fill(false);
          const sharedBytes = new Array<number>(16).fill(0);
          const privateBytes = new Array<number>(16).fill(0);
          const guestView = (at: number) => (isPrivate[at] || at < 8 ? privateBytes[at] : sharedBytes[at]);
          for (const step of steps) {
            const start = step.first;
            const end = Math.min(8, start + step.count);
            for (const [slotIndex, base] of [
              [0, 0],
              [1, 0x100000],
            ] as const) {
              const gpa = base + start * page;
              const length = (end - start) * page;
              if (step.op === 'convert') {
                vm.setMemoryAttributes({
                  address: gpa,
                  size: length,
                  attributes: step.toPrivate ? kvmMemoryAttributePrivate : 0,
                });
                for (let i = start; i < end; i++) {
                  const at = slotIndex * 8 + i;
                  if (isPrivate[at] !== step.toPrivate) privateBytes[at] = 0;
                  isPrivate[at] = step.toPrivate;
                }
              } else if (step.op === 'guest-write') {
                if (vm.guestWrite(gpa, new Uint8Array(length).fill(step.byte)) !== null) return false;
                for (let i = start; i < end; i++) {
                  const at = slotIndex * 8 + i;
                  if (isPrivate[at] || slotIndex === 0) privateBytes[at] = step.byte;
                  else sharedBytes[at] = step.byte;
                }
              } else {
                const seen = new Uint8Array(length);
                const fault = vm.hostRead(gpa, seen);
                const anyPrivate = isPrivate.slice(slotIndex * 8 + start, slotIndex * 8 + end).some((p) => p);
                if (slotIndex === 0 && anyPrivate !== (fault !== null)) return false;
                if (slotIndex === 1) {
                  if (fault !== null) return false;
                  // The host sees only the shared backing, never what the guest wrote privately.
                  for (let i = start; i < end; i++) {
                    if (seen[(i - start) * page] !== sharedBytes[8 + i]) return false;
                  }
                }
              }
            }
            // The guest sees what the model says, page by page.
            for (let at = 0; at < 16; at++) {
              const gpa = (at < 8 ? 0 : 0x100000) + (at % 8) * page;
              const seen = new Uint8Array(1);
              if (vm.guestRead(gpa, seen) !== null || seen[0] !== guestView(at)) return false;
            }
            // Frames in gmem follow the attribute; nothing shared is in the private domain.
            for (let i = 0; i < 8; i++) {
              const pfn = gmemOnly.frameOf(i);
              if (pfn < 0) continue;
              const owner = vm.frames.ownerOf(pfn);
              if (owner !== (isPrivate[i] ? privateDomain(2) : vmDomain(2))) return false;
            }
          }
          return true;
        },
      ),
      { seed: 7_301_955, numRuns: 200 },
    );
  });
});

describe('frame sources (src/coco/frame-source.ts)', () => {
  it('SimpleFrameSource hands out frames until it is empty, then throws CapacityError', () => {
    const source = new SimpleFrameSource(2);
    const a = source.allocFrame(vmDomain(0));
    const b = source.allocFrame(privateDomain(0));
    expect([a, b]).toEqual([0, 1]);
    expect(() => source.allocFrame(vmDomain(0))).toThrow(CapacityError);
    source.freeFrame(a);
    expect(source.ownerOf(a)).toBe(domainFree);
    expect(source.allocFrame(vmDomain(1))).toBe(a);
  });

  it('a VM out of frames reports ENOMEM for the guest access that needed one', () => {
    const { vm } = makeVm('sw-protected', 0, 1);
    addRegion(vm, 1, 0, 2, 0);
    expect(vm.guestWrite(0, new Uint8Array(1))).toBeNull();
    expect(errnoOf(() => vm.guestWrite(page, new Uint8Array(1)))).toBe('ENOMEM');
  });

  it('FrameStore: untouched frames read as zeros, freed frames forget their contents', () => {
    const store = new FrameStore(new SimpleFrameSource(1));
    const pfn = store.alloc(vmDomain(0));
    const bytes = new Uint8Array(4);
    store.read(pfn, 100, bytes);
    expect(bytes).toEqual(new Uint8Array(4));
    store.write(pfn, 100, new Uint8Array([1, 2, 3, 4]));
    store.read(pfn, 100, bytes);
    expect(bytes).toEqual(new Uint8Array([1, 2, 3, 4]));
    store.free(pfn);
    const again = store.alloc(vmDomain(0));
    expect(again).toBe(pfn);
    store.read(again, 100, bytes);
    expect(bytes).toEqual(new Uint8Array(4));
  });
});
