import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type KvmErrno, KvmError } from '../../src/coco/errno.js';
import { FrameStore, SimpleFrameSource } from '../../src/coco/frame-source.js';
import {
  fallocFlKeepSize,
  fallocFlPunchHole,
  fallocFlZeroRange,
  type GuestMemfd,
  guestMemfdFlagInitShared,
  guestMemfdFlagMmap,
  PageRangeSet,
} from '../../src/coco/guest-memfd.js';
import { kvmMemGuestMemfd } from '../../src/coco/memslots.js';
import { VmMemory, type VmType } from '../../src/coco/vm-memory.js';
import { pageBytes } from '../../src/constants.js';
import { domainFree, privateDomain, vmDomain } from '../../src/memory/domains.js';

/**
 * Re-expresses tools/testing/selftests/kvm/guest_memfd_test.c (and guest_memfd binding rules from
 * set_memory_region_test.c) against the emulated guest_memfd.
 */

const page = pageBytes;
const keepSize = fallocFlKeepSize;
const punchHole = fallocFlKeepSize | fallocFlPunchHole;

function makeVm(
  type: VmType = 'default',
  vmId = 0,
  frameCount = 4096,
): { vm: VmMemory; source: SimpleFrameSource } {
  const source = new SimpleFrameSource(frameCount);
  return { vm: new VmMemory({ vmId, frames: source, type }), source };
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

/** The flag combinations guest_memfd_test runs __test_guest_memfd with, per VM type. */
const flagVariants: Array<{ name: string; type: VmType; flags: bigint }> = [
  { name: 'flags 0 (default VM)', type: 'default', flags: 0n },
  { name: 'MMAP (default VM)', type: 'default', flags: guestMemfdFlagMmap },
  {
    name: 'MMAP|INIT_SHARED (default VM)',
    type: 'default',
    flags: guestMemfdFlagMmap | guestMemfdFlagInitShared,
  },
  { name: 'flags 0 (sw-protected VM)', type: 'sw-protected', flags: 0n },
  { name: 'MMAP (sw-protected VM)', type: 'sw-protected', flags: guestMemfdFlagMmap },
];

describe('guest_memfd_test: test_guest_memfd_flags', () => {
  it('a default VM accepts exactly MMAP and INIT_SHARED; every other bit of the u64 is EINVAL', () => {
    const { vm } = makeVm('default');
    for (let bit = 0n; bit < 64n; bit++) {
      const flag = 1n << bit;
      const valid = flag === guestMemfdFlagMmap || flag === guestMemfdFlagInitShared;
      expect(
        errnoOf(() => vm.createGuestMemfd(page, flag)),
        `flag 0x${flag.toString(16)}`,
      ).toBe(valid ? 'none' : 'EINVAL');
    }
  });

  it('a VM with private memory refuses INIT_SHARED (arch/x86/kvm/x86.c kvm_arch_supports_gmem_init_shared)', () => {
    const { vm } = makeVm('sw-protected');
    expect(errnoOf(() => vm.createGuestMemfd(page, guestMemfdFlagMmap))).toBe('none');
    expect(errnoOf(() => vm.createGuestMemfd(page, guestMemfdFlagInitShared))).toBe('EINVAL');
    expect(errnoOf(() => vm.createGuestMemfd(page, guestMemfdFlagMmap | guestMemfdFlagInitShared))).toBe(
      'EINVAL',
    );
  });
});

describe('guest_memfd_test: test_create_guest_memfd_invalid_sizes', () => {
  for (const variant of flagVariants) {
    it(`every size 1..4095 is EINVAL with ${variant.name}`, () => {
      const { vm } = makeVm(variant.type);
      for (let size = 1; size < page; size++) {
        expect(errnoOf(() => vm.createGuestMemfd(size, variant.flags))).toBe('EINVAL');
      }
    });
  }

  it('size 0, a negative size and page + 1 are EINVAL; the message names the size', () => {
    const { vm } = makeVm();
    expect(errnoOf(() => vm.createGuestMemfd(0))).toBe('EINVAL');
    expect(errnoOf(() => vm.createGuestMemfd(-page))).toBe('EINVAL');
    expect(() => vm.createGuestMemfd(page + 1)).toThrow('guest_memfd size 4097 is not page-aligned (EINVAL)');
    try {
      vm.createGuestMemfd(page + 1);
    } catch (error) {
      expect((error as KvmError).argument).toBe('size');
    }
  });

  it('unsupported flags are reported before a bad size (kvm_gmem_create checks flags first)', () => {
    const { vm } = makeVm();
    expect(() => vm.createGuestMemfd(1, 1n << 40n)).toThrow(/flags/);
  });
});

describe('guest_memfd_test: test_create_guest_memfd_multiple', () => {
  it('two files keep their own sizes and inode numbers', () => {
    const { vm } = makeVm();
    const first = vm.createGuestMemfd(page);
    expect(first.stat().sizeBytes).toBe(page);
    const second = vm.createGuestMemfd(page * 2);
    expect(second.stat().sizeBytes).toBe(page * 2);
    expect(first.stat().sizeBytes).toBe(page);
    expect(first.inodeNumber).not.toBe(second.inodeNumber);
    second.close();
    first.close();
  });

  it('creates many files (1000), all distinct, and closing them frees every frame', () => {
    const { vm, source } = makeVm('default', 0, 2048);
    const files: GuestMemfd[] = [];
    for (let i = 0; i < 1000; i++) {
      const file = vm.createGuestMemfd(page * 2);
      file.fallocate(keepSize, 0, page);
      files.push(file);
    }
    expect(new Set(files.map((file) => file.inodeNumber)).size).toBe(1000);
    expect(source.framesFree).toBe(2048 - 1000);
    for (const file of files) file.close();
    expect(source.framesFree).toBe(2048);
  });
});

describe('guest_memfd_test: test_file_size', () => {
  it('fstat reports the size and a page-sized block', () => {
    const { vm } = makeVm();
    const file = vm.createGuestMemfd(page * 4);
    expect(file.stat()).toEqual({ sizeBytes: page * 4, blockSizeBytes: page });
  });
});

describe('guest_memfd_test: test_file_read_write', () => {
  for (const variant of flagVariants) {
    it(`read, write, pread and pwrite all fail with EINVAL (${variant.name})`, () => {
      const { vm } = makeVm(variant.type);
      const file = vm.createGuestMemfd(page * 4, variant.flags);
      expect(errnoOf(() => file.read(64))).toBe('EINVAL');
      expect(errnoOf(() => file.write(new Uint8Array(64)))).toBe('EINVAL');
      expect(errnoOf(() => file.read(64, 0))).toBe('EINVAL');
      expect(errnoOf(() => file.write(new Uint8Array(64), 0))).toBe('EINVAL');
    });
  }
});

describe('guest_memfd_test: test_mmap_not_supported', () => {
  it('a file created without MMAP cannot be mapped: ENODEV, for one page and for the whole file', () => {
    for (const type of ['default', 'sw-protected'] as const) {
      const { vm } = makeVm(type);
      const file = vm.createGuestMemfd(page * 4);
      expect(errnoOf(() => file.mmap(page, { shared: true }))).toBe('ENODEV');
      expect(errnoOf(() => file.mmap(page * 4, { shared: true }))).toBe('ENODEV');
    }
  });
});

describe('guest_memfd_test: test_mmap_cow', () => {
  it('a MAP_PRIVATE (copy-on-write) mapping is refused with EINVAL', () => {
    const { vm } = makeVm();
    const file = vm.createGuestMemfd(page * 4, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    expect(errnoOf(() => file.mmap(page * 4, { shared: false }))).toBe('EINVAL');
  });
});

describe('guest_memfd_test: test_mmap_supported', () => {
  it('writes through the mapping read back; punching the first page zeroes only it', () => {
    const { vm } = makeVm();
    const total = page * 4;
    const file = vm.createGuestMemfd(total, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    const mapping = file.mmap(total, { shared: true });
    expect(mapping.write(0, new Uint8Array(total).fill(0xaa))).toBeNull();
    const readBack = new Uint8Array(total);
    expect(mapping.read(0, readBack)).toBeNull();
    expect(readBack.every((byte) => byte === 0xaa)).toBe(true);

    file.fallocate(punchHole, 0, page);
    expect(mapping.read(0, readBack)).toBeNull();
    expect(readBack.subarray(0, page).every((byte) => byte === 0)).toBe(true);
    expect(readBack.subarray(page).every((byte) => byte === 0xaa)).toBe(true);

    expect(mapping.write(0, new Uint8Array(page).fill(0xaa))).toBeNull();
    expect(mapping.read(0, readBack)).toBeNull();
    expect(readBack.every((byte) => byte === 0xaa)).toBe(true);
    mapping.munmap();
  });

  it('shared pages of an INIT_SHARED file are owned by the VM, not the private domain', () => {
    const { vm } = makeVm('default', 3);
    const file = vm.createGuestMemfd(page * 2, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    file.fallocate(keepSize, 0, page * 2);
    for (const index of [0, 1]) expect(vm.frames.ownerOf(file.frameOf(index))).toBe(vmDomain(3));
  });
});

describe('guest_memfd_test: test_fault_overflow', () => {
  it('a mapping 4x the file: memset SIGBUSes at the end of the file, bytes before it are written', () => {
    const { vm } = makeVm();
    const total = page * 4;
    const file = vm.createGuestMemfd(total, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    const mapping = file.mmap(total * 4, { shared: true });
    const fault = mapping.write(0, new Uint8Array(total * 4).fill(0xaa));
    expect(fault).toMatchObject({
      kind: 'host-fault',
      signal: 'SIGBUS',
      reason: 'beyond-eof',
      fileOffset: total,
    });
    expect(fault?.invariant).toBeNull();
    expect(mapping.read(total, new Uint8Array(1))).toMatchObject({ signal: 'SIGBUS', reason: 'beyond-eof' });
    const readBack = new Uint8Array(total);
    expect(mapping.read(0, readBack)).toBeNull();
    expect(readBack.every((byte) => byte === 0xaa)).toBe(true);
  });
});

describe('guest_memfd_test: test_fault_private', () => {
  it('MMAP without INIT_SHARED: every page is private, every access SIGBUSes and is reported as INV-10', () => {
    for (const type of ['default', 'sw-protected'] as const) {
      const { vm } = makeVm(type, 2);
      const total = page * 4;
      const file = vm.createGuestMemfd(total, guestMemfdFlagMmap);
      file.fallocate(keepSize, 0, total);
      const mapping = file.mmap(total, { shared: true });
      const fault = mapping.write(0, new Uint8Array(total).fill(0xaa));
      expect(fault).toMatchObject({
        invariant: 'INV-10',
        reason: 'private-page',
        fileOffset: 0,
        write: true,
      });
      expect(fault?.ownerDomain).toBe(privateDomain(2));
      expect(mapping.read(0, new Uint8Array(1))).toMatchObject({ invariant: 'INV-10', write: false });
      // Refused, never fixed up: the page stays private and keeps its private owner.
      expect(file.isPageShared(0)).toBe(false);
      expect(vm.frames.ownerOf(file.frameOf(0))).toBe(privateDomain(2));
    }
  });

  it('a hole in a private file also SIGBUSes (INV-10, no frame behind it)', () => {
    const { vm } = makeVm('sw-protected');
    const file = vm.createGuestMemfd(page, guestMemfdFlagMmap);
    const fault = file.mmap(page, { shared: true }).read(0, new Uint8Array(8));
    expect(fault).toMatchObject({ invariant: 'INV-10', pfn: -1, ownerDomain: domainFree });
    expect(file.framesAllocated).toBe(0);
  });
});

describe('guest_memfd_test: test_fallocate', () => {
  for (const variant of flagVariants) {
    it(`the selftest's sequence of allocations and punches (${variant.name})`, () => {
      const { vm } = makeVm(variant.type);
      const total = page * 4;
      const file = vm.createGuestMemfd(total, variant.flags);
      expect(errnoOf(() => file.fallocate(keepSize, 0, total))).toBe('none');
      expect(file.framesAllocated).toBe(4);
      expect(errnoOf(() => file.fallocate(punchHole, page - 1, page))).toBe('EINVAL');
      expect(errnoOf(() => file.fallocate(keepSize, total, page))).toBe('EINVAL');
      expect(errnoOf(() => file.fallocate(keepSize, total + page, page))).toBe('EINVAL');
      expect(errnoOf(() => file.fallocate(punchHole, total, page))).toBe('none');
      expect(errnoOf(() => file.fallocate(punchHole, total + page, page))).toBe('none');
      expect(errnoOf(() => file.fallocate(punchHole, page, page - 1))).toBe('EINVAL');
      expect(file.framesAllocated).toBe(4);
      expect(errnoOf(() => file.fallocate(punchHole, page, page))).toBe('none');
      expect(file.framesAllocated).toBe(3);
      expect(file.frameOf(1)).toBe(-1);
      expect(errnoOf(() => file.fallocate(keepSize, page, page))).toBe('none');
      expect(file.framesAllocated).toBe(4);
    });
  }

  it('mode rules: KEEP_SIZE is required, only PUNCH_HOLE may join it, offset/len must be sane', () => {
    const { vm } = makeVm();
    const file = vm.createGuestMemfd(page * 4);
    expect(errnoOf(() => file.fallocate(0, 0, page))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => file.fallocate(fallocFlPunchHole, 0, page))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => file.fallocate(keepSize | fallocFlZeroRange, 0, page))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => file.fallocate(keepSize | 0x1000, 0, page))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => file.fallocate(keepSize, -page, page))).toBe('EINVAL');
    expect(errnoOf(() => file.fallocate(keepSize, 0, 0))).toBe('EINVAL');
    expect(errnoOf(() => file.fallocate(keepSize, page, page * 4))).toBe('EINVAL');
  });

  it('a punched hole reads back as zeros through the guest, and its frame goes back to the machine', () => {
    const { vm, source } = makeVm('sw-protected', 1);
    const file = vm.createGuestMemfd(page * 2);
    vm.setUserMemoryRegion2({
      slot: 1,
      flags: kvmMemGuestMemfd,
      guestPhysAddr: 0x100000,
      memorySize: page * 2,
      userspaceAddr: 0,
      guestMemfd: file,
      guestMemfdOffset: 0,
    });
    vm.setMemoryAttributes({ address: 0x100000, size: page * 2, attributes: 1n << 3n });
    expect(vm.guestWrite(0x100000, new Uint8Array(page * 2).fill(0x5a))).toBeNull();
    const freeBefore = source.framesFree;
    file.fallocate(punchHole, 0, page);
    expect(source.framesFree).toBe(freeBefore + 1);
    const readBack = new Uint8Array(page * 2);
    expect(vm.guestRead(0x100000, readBack)).toBeNull();
    expect(readBack.subarray(0, page).every((byte) => byte === 0)).toBe(true);
    expect(readBack.subarray(page).every((byte) => byte === 0x5a)).toBe(true);
  });

  it('running out of frames while allocating is ENOMEM', () => {
    const { vm } = makeVm('default', 0, 2);
    const file = vm.createGuestMemfd(page * 4);
    expect(errnoOf(() => file.fallocate(keepSize, 0, page * 4))).toBe('ENOMEM');
  });
});

describe('guest_memfd_test: test_invalid_punch_hole', () => {
  const cases: Array<[number, number]> = [
    [0, 1],
    [0, page - 1],
    [0, page + 1],
    [1, 1],
    [1, page - 1],
    [1, page],
    [1, page + 1],
    [page, 1],
    [page, page - 1],
    [page, page + 1],
  ];
  for (const variant of flagVariants) {
    it(`PUNCH_HOLE with an offset or length that is not page-sized is EINVAL (${variant.name})`, () => {
      const { vm } = makeVm(variant.type);
      const file = vm.createGuestMemfd(page * 4, variant.flags);
      for (const [offset, len] of cases) {
        expect(
          errnoOf(() => file.fallocate(punchHole, offset, len)),
          `offset ${offset} len ${len}`,
        ).toBe('EINVAL');
      }
    });
  }
});

describe('guest_memfd_test: test_guest_memfd_guest', () => {
  it('the host fills the mappable file with 0xaa, the guest sees it and writes 0xff, the host sees that', () => {
    const { vm } = makeVm('default');
    const gpa = 2 ** 32;
    const file = vm.createGuestMemfd(page, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    vm.setUserMemoryRegion2({
      slot: 1,
      flags: kvmMemGuestMemfd,
      guestPhysAddr: gpa,
      memorySize: page,
      userspaceAddr: 0,
      guestMemfd: file,
      guestMemfdOffset: 0,
    });
    let mapping = file.mmap(page, { shared: true });
    expect(mapping.write(0, new Uint8Array(page).fill(0xaa))).toBeNull();
    mapping.munmap();

    const seen = new Uint8Array(page);
    expect(vm.guestRead(gpa, seen)).toBeNull();
    expect(seen.every((byte) => byte === 0xaa)).toBe(true);
    expect(vm.guestWrite(gpa, new Uint8Array(page).fill(0xff))).toBeNull();

    mapping = file.mmap(page, { shared: true });
    expect(mapping.read(0, seen)).toBeNull();
    expect(seen.every((byte) => byte === 0xff)).toBe(true);
    // The host's GPA view of a gmem-only slot is the same mapping.
    const viaGpa = new Uint8Array(page);
    expect(vm.hostRead(gpa, viaGpa)).toBeNull();
    expect(viaGpa.every((byte) => byte === 0xff)).toBe(true);
  });
});

describe('guest_memfd lifetime (virt/kvm/guest_memfd.c kvm_gmem_release; private_mem_conversions_test end)', () => {
  it('the file outlives its VM: after the VM is destroyed, punch and allocate still work', () => {
    const { vm, source } = makeVm('sw-protected');
    const file = vm.createGuestMemfd(page * 8);
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: kvmMemGuestMemfd,
      guestPhysAddr: 0,
      memorySize: page * 8,
      userspaceAddr: 0,
      guestMemfd: file,
    });
    vm.setMemoryAttributes({ address: 0, size: page * 8, attributes: 1n << 3n });
    expect(vm.guestWrite(0, new Uint8Array(page * 8).fill(1))).toBeNull();
    vm.destroy();
    expect(file.bindingCount).toBe(0);
    expect(file.framesAllocated).toBe(8);
    file.fallocate(punchHole, 0, page * 8);
    expect(file.framesAllocated).toBe(0);
    file.fallocate(keepSize, 0, page * 8);
    expect(file.framesAllocated).toBe(8);
    file.close();
    expect(source.framesFree).toBe(source.frameCount);
  });

  it('a closed fd answers EBADF, and a destroyed VM cannot create guest_memfd', () => {
    const { vm } = makeVm();
    const file = vm.createGuestMemfd(page);
    file.close();
    expect(errnoOf(() => file.fallocate(keepSize, 0, page))).toBe('EBADF');
    expect(errnoOf(() => file.stat())).toBe('EBADF');
    expect(errnoOf(() => file.close())).toBe('EBADF');
    vm.destroy();
    expect(errnoOf(() => vm.createGuestMemfd(page))).toBe('EBADF');
  });

  it('a mapping holds the file: closing the fd keeps the pages until munmap', () => {
    const { vm, source } = makeVm();
    const file = vm.createGuestMemfd(page, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    const mapping = file.mmap(page, { shared: true });
    expect(mapping.write(0, new Uint8Array([7]))).toBeNull();
    file.close();
    expect(file.isReleased).toBe(false);
    const byte = new Uint8Array(1);
    expect(mapping.read(0, byte)).toBeNull();
    expect(byte[0]).toBe(7);
    mapping.munmap();
    expect(file.isReleased).toBe(true);
    expect(source.framesFree).toBe(source.frameCount);
  });
});

describe('PageRangeSet (the page-state bookkeeping behind guest_memfd and attributes)', () => {
  it('agrees with a per-page boolean array after any sequence of assignments (seeded)', () => {
    const pages = 64;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(pages), fc.nat(pages), fc.boolean()), { maxLength: 40 }),
        (operations) => {
          const set = new PageRangeSet();
          const model = new Array<boolean>(pages).fill(false);
          for (const [a, b, value] of operations) {
            const start = Math.min(a, b);
            const end = Math.max(a, b);
            set.assign(start, end, value);
            for (let i = start; i < end; i++) model[i] = value;
            for (let i = 0; i < pages; i++) if (set.has(i) !== model[i]) return false;
            for (let s = 0; s < pages; s += 7) {
              for (let e = s; e <= pages; e += 5) {
                const all = model.slice(s, e).every((v) => v);
                const none = model.slice(s, e).every((v) => !v);
                if (set.covers(s, e, true) !== all || set.covers(s, e, false) !== none) return false;
              }
            }
            const pieces: Array<[number, number, boolean]> = [];
            set.forEachPiece(0, pages, (ps, pe, v) => pieces.push([ps, pe, v]));
            let cursor = 0;
            for (const [ps, pe, v] of pieces) {
              if (ps !== cursor || pe <= ps) return false;
              for (let i = ps; i < pe; i++) if (model[i] !== v) return false;
              cursor = pe;
            }
            if (cursor !== pages) return false;
          }
          return true;
        },
      ),
      { seed: 20241123, numRuns: 300 },
    );
  });

  it('a store shared between two VMs keeps each VM on its own frames', () => {
    const source = new SimpleFrameSource(16);
    const frames = new FrameStore(source);
    const a = new VmMemory({ vmId: 0, frames });
    const b = new VmMemory({ vmId: 1, frames });
    const fa = a.createGuestMemfd(page, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    const fb = b.createGuestMemfd(page, guestMemfdFlagMmap | guestMemfdFlagInitShared);
    fa.fallocate(keepSize, 0, page);
    fb.fallocate(keepSize, 0, page);
    expect(frames.ownerOf(fa.frameOf(0))).toBe(vmDomain(0));
    expect(frames.ownerOf(fb.frameOf(0))).toBe(vmDomain(1));
    expect(fa.frameOf(0)).not.toBe(fb.frameOf(0));
    expect(frames.framesHeld).toBe(2);
  });
});
