import { describe, expect, it } from 'vitest';
import { type KvmErrno, KvmError } from '../../src/coco/errno.js';
import { SimpleFrameSource } from '../../src/coco/frame-source.js';
import { guestMemfdFlagMmap } from '../../src/coco/guest-memfd.js';
import {
  kvmMemGuestMemfd,
  kvmMemLogDirtyPages,
  kvmMemMaxNrPages,
  kvmMemReadonly,
  kvmUserMemSlots,
  taskSizeMaxBytes,
  type UserMemoryRegion2,
} from '../../src/coco/memslots.js';
import { VmMemory, type VmType } from '../../src/coco/vm-memory.js';
import { pageBytes } from '../../src/constants.js';

/**
 * Re-expresses tools/testing/selftests/kvm/set_memory_region_test.c, plus the checks of
 * virt/kvm/kvm_main.c kvm_set_memory_region that the selftest does not reach.
 */

const page = pageBytes;
/** set_memory_region_test.c: a 2 MiB region at 3 GiB in slot 10. */
const memRegionSize = 0x200000;
const memRegionGpa = 0xc0000000;
const memRegionSlot = 10;

function makeVm(type: VmType = 'default', vmId = 0): VmMemory {
  return new VmMemory({ vmId, frames: new SimpleFrameSource(1024), type });
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

function region(overrides: Partial<UserMemoryRegion2>): UserMemoryRegion2 {
  return {
    slot: memRegionSlot,
    flags: 0,
    guestPhysAddr: memRegionGpa,
    memorySize: memRegionSize,
    userspaceAddr: 0x7f0000000000,
    ...overrides,
  };
}

describe('set_memory_region_test: test_invalid_memory_region_flags', () => {
  it('v1 refuses GUEST_MEMFD; v2 refuses every unsupported bit; LOG_DIRTY|GUEST_MEMFD is EINVAL', () => {
    const vm = makeVm('sw-protected');
    const supported = kvmMemLogDirtyPages | kvmMemReadonly | kvmMemGuestMemfd;
    const v2Only = kvmMemGuestMemfd;
    for (let i = 0; i < 32; i++) {
      const flag = 2 ** i;
      if ((supported & flag) !== 0 && (v2Only & flag) === 0) continue;
      expect(
        errnoOf(() =>
          vm.setUserMemoryRegion({
            slot: 0,
            flags: flag,
            guestPhysAddr: 0,
            memorySize: memRegionSize,
            userspaceAddr: 0,
          }),
        ),
        `v1 flag 0x${flag.toString(16)}`,
      ).toBe('EINVAL');
      if ((supported & flag) !== 0) continue;
      expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 0, flags: flag, guestPhysAddr: 0 })))).toBe(
        'EINVAL',
      );
    }
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({ slot: 0, flags: kvmMemLogDirtyPages | kvmMemGuestMemfd, guestPhysAddr: 0 }),
        ),
      ),
    ).toBe('EINVAL');
    expect(vm.memslots.count).toBe(0);
  });

  it('READONLY with GUEST_MEMFD is EINVAL (check_memory_region_flags: no emulated MMIO for private memory)', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize);
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(region({ flags: kvmMemReadonly | kvmMemGuestMemfd, guestMemfd: file })),
      ),
    ).toBe('EINVAL');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ flags: kvmMemReadonly })))).toBe('none');
  });
});

describe('set_memory_region_test: test_add_max_memory_regions', () => {
  it(`adds KVM_CAP_NR_MEMSLOTS (${kvmUserMemSlots}) slots, then one more is EINVAL`, () => {
    const vm = makeVm();
    const base = 0x7f0000000000;
    for (let slot = 0; slot < kvmUserMemSlots; slot++) {
      vm.setUserMemoryRegion({
        slot,
        flags: 0,
        guestPhysAddr: slot * memRegionSize,
        memorySize: memRegionSize,
        userspaceAddr: base + slot * memRegionSize,
      });
    }
    expect(vm.memslots.count).toBe(kvmUserMemSlots);
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion({
          slot: kvmUserMemSlots,
          flags: 0,
          guestPhysAddr: kvmUserMemSlots * memRegionSize,
          memorySize: memRegionSize,
          userspaceAddr: 0x100000,
        }),
      ),
    ).toBe('EINVAL');
    // Lookups still find the right slot among them all.
    expect(vm.memslots.find((1234 * memRegionSize) / page + 5)?.id).toBe(1234);
  });
});

describe('set_memory_region_test: test_add_private_memory_region', () => {
  it('the KVM fd, a VM fd and a plain memfd are not guest_memfd: EINVAL', () => {
    const vm = makeVm('sw-protected');
    for (const fileKind of ['kvm-device', 'vm', 'memfd'] as const) {
      expect(
        errnoOf(() =>
          vm.setUserMemoryRegion2(
            region({ flags: kvmMemGuestMemfd, userspaceAddr: 0, guestMemfd: { fileKind } }),
          ),
        ),
        fileKind,
      ).toBe('EINVAL');
    }
  });

  it("another VM's guest_memfd is EINVAL; that VM itself can bind it", () => {
    const vm = makeVm('sw-protected', 0);
    const vm2 = makeVm('sw-protected', 1);
    const file = vm2.createGuestMemfd(memRegionSize);
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file }))),
    ).toBe('EINVAL');
    expect(
      errnoOf(() => vm2.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file }))),
    ).toBe('none');
    file.close();
    vm2.destroy();
  });

  it('every unaligned offset 1..4095 is EINVAL, offset 0 binds', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize);
    for (let offset = 1; offset < page; offset++) {
      expect(
        errnoOf(() =>
          vm.setUserMemoryRegion2(
            region({ flags: kvmMemGuestMemfd, guestMemfd: file, guestMemfdOffset: offset }),
          ),
        ),
      ).toBe('EINVAL');
    }
    expect(
      vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file, guestMemfdOffset: 0 })),
    ).toBe('create');
    expect(file.bindingCount).toBe(1);
  });

  it('an fd that is not open is EBADF (fget fails), a closed guest_memfd too', () => {
    const vm = makeVm('sw-protected');
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: null }))),
    ).toBe('EBADF');
    const file = vm.createGuestMemfd(memRegionSize);
    file.close();
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file }))),
    ).toBe('EBADF');
  });

  it('the binding must fit in the file (kvm_gmem_bind: offset + size > i_size is EINVAL)', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize);
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({ flags: kvmMemGuestMemfd, guestMemfd: file, guestMemfdOffset: page }),
        ),
      ),
    ).toBe('EINVAL');
    expect(file.bindingCount).toBe(0);
  });
});

describe('set_memory_region_test: test_add_overlapping_private_memory_regions', () => {
  it('recreating a slot over the front or back half of another slot is EEXIST', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize * 4);
    vm.setUserMemoryRegion2(
      region({ flags: kvmMemGuestMemfd, memorySize: memRegionSize * 2, userspaceAddr: 0, guestMemfd: file }),
    );
    vm.setUserMemoryRegion2(
      region({
        slot: memRegionSlot + 1,
        flags: kvmMemGuestMemfd,
        guestPhysAddr: memRegionGpa * 2,
        memorySize: memRegionSize * 2,
        userspaceAddr: 0,
        guestMemfd: file,
        guestMemfdOffset: memRegionSize * 2,
      }),
    );
    // Delete the first slot (size 0, fd -1).
    expect(
      vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, memorySize: 0, guestMemfd: null })),
    ).toBe('delete');
    expect(file.bindingCount).toBe(1);
    for (const gpa of [memRegionGpa * 2 - memRegionSize, memRegionGpa * 2 + memRegionSize]) {
      expect(
        errnoOf(() =>
          vm.setUserMemoryRegion2(
            region({
              flags: kvmMemGuestMemfd,
              guestPhysAddr: gpa,
              memorySize: memRegionSize * 2,
              userspaceAddr: 0,
              guestMemfd: file,
              guestMemfdOffset: 0,
            }),
          ),
        ),
      ).toBe('EEXIST');
    }
  });

  it('overlapping only inside the guest_memfd (not in GPA) is EINVAL from kvm_gmem_bind', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize * 4);
    vm.setUserMemoryRegion2(
      region({ flags: kvmMemGuestMemfd, memorySize: memRegionSize * 2, guestMemfd: file }),
    );
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({
            slot: memRegionSlot + 1,
            flags: kvmMemGuestMemfd,
            guestPhysAddr: memRegionGpa * 2,
            memorySize: memRegionSize * 2,
            guestMemfd: file,
            guestMemfdOffset: memRegionSize,
          }),
        ),
      ),
    ).toBe('EINVAL');
  });
});

describe('kvm_set_memory_region general checks (virt/kvm/kvm_main.c)', () => {
  it('size, GPA and userspace address must be page-aligned', () => {
    const vm = makeVm();
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ memorySize: memRegionSize + 1 })))).toBe('EINVAL');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ guestPhysAddr: memRegionGpa + 8 })))).toBe(
      'EINVAL',
    );
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ userspaceAddr: 0x7f0000000010 })))).toBe('EINVAL');
    expect(vm.memslots.count).toBe(0);
  });

  it('the error names the refused argument', () => {
    const vm = makeVm();
    try {
      vm.setUserMemoryRegion2(region({ guestPhysAddr: memRegionGpa + 8 }));
      expect.unreachable('unaligned GPA must be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(KvmError);
      expect((error as KvmError).argument).toBe('guest_phys_addr');
      expect((error as KvmError).message).toMatch(/0xc0000008 is not page-aligned \(EINVAL\)/);
    }
  });

  it('the userspace range must be user memory (access_ok)', () => {
    const vm = makeVm();
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ userspaceAddr: taskSizeMaxBytes })))).toBe(
      'EINVAL',
    );
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ userspaceAddr: taskSizeMaxBytes - memRegionSize * 2 }))),
    ).toBe('none');
  });

  it('slot ids at or above KVM_USER_MEM_SLOTS, and a missing address space, are EINVAL', () => {
    const vm = makeVm('default');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: kvmUserMemSlots })))).toBe('EINVAL');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 0xffff })))).toBe('EINVAL');
    // A default VM has the SMM address space (as_id 1); slots there do not collide with as_id 0.
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: (1 << 16) | 3 })))).toBe('none');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 3 })))).toBe('none');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ slot: (2 << 16) | 3 })))).toBe('EINVAL');
    // A VM with private memory has no SMM (kvm_arch_nr_memslot_as_ids).
    const protectedVm = makeVm('sw-protected');
    expect(errnoOf(() => protectedVm.setUserMemoryRegion2(region({ slot: (1 << 16) | 3 })))).toBe('EINVAL');
  });

  it('a range that wraps the u64 GPA space, or is too big, or ends past MAXPHYADDR is EINVAL', () => {
    const vm = makeVm();
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ guestPhysAddr: (1n << 64n) - BigInt(page) }))),
    ).toBe('EINVAL');
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({ guestPhysAddr: 0, memorySize: (kvmMemMaxNrPages + 1) * page, userspaceAddr: 0 }),
        ),
      ),
    ).toBe('EINVAL');
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ guestPhysAddr: 2 ** 52 - page, memorySize: 2 * page }))),
    ).toBe('EINVAL');
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ guestPhysAddr: 2 ** 52 - page, memorySize: page }))),
    ).toBe('none');
  });

  it('MAXPHYADDR failures come after binding and unbind again (kvm_arch_prepare_memory_region)', () => {
    const vm = new VmMemory({
      vmId: 0,
      frames: new SimpleFrameSource(8),
      type: 'sw-protected',
      physAddrBits: 36,
    });
    const file = vm.createGuestMemfd(memRegionSize);
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({ flags: kvmMemGuestMemfd, guestPhysAddr: 2 ** 36, guestMemfd: file }),
        ),
      ),
    ).toBe('EINVAL');
    expect(file.bindingCount).toBe(0);
  });

  it('overlap with another slot in GPA space is EEXIST, touching is fine', () => {
    const vm = makeVm();
    vm.setUserMemoryRegion2(region({}));
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 11, guestPhysAddr: memRegionGpa + page }))),
    ).toBe('EEXIST');
    expect(
      errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 11, guestPhysAddr: memRegionGpa - page * 2 }))),
    ).toBe('EEXIST');
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(region({ slot: 11, guestPhysAddr: memRegionGpa + memRegionSize })),
      ),
    ).toBe('none');
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(region({ slot: 12, guestPhysAddr: memRegionGpa - memRegionSize })),
      ),
    ).toBe('none');
  });

  it('deleting a slot that does not exist is EINVAL; deleting frees the GPA range', () => {
    const vm = makeVm();
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ memorySize: 0 })))).toBe('EINVAL');
    vm.setUserMemoryRegion2(region({}));
    expect(vm.setUserMemoryRegion2(region({ memorySize: 0 }))).toBe('delete');
    expect(vm.memslots.find(memRegionGpa / page)).toBeNull();
    expect(vm.setUserMemoryRegion2(region({ slot: 11 }))).toBe('create');
  });

  it('an existing slot may move or change flags; size, address and READONLY may not change', () => {
    const vm = makeVm();
    vm.setUserMemoryRegion2(region({}));
    expect(vm.setUserMemoryRegion2(region({}))).toBe('none');
    expect(vm.setUserMemoryRegion2(region({ flags: kvmMemLogDirtyPages }))).toBe('flags-only');
    expect(
      vm.setUserMemoryRegion2(region({ flags: kvmMemLogDirtyPages, guestPhysAddr: memRegionGpa - page })),
    ).toBe('move');
    expect(vm.memslots.find(memRegionGpa / page - 1)?.id).toBe(memRegionSlot);
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ memorySize: memRegionSize * 2 })))).toBe('EINVAL');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ userspaceAddr: 0x7f0000200000 })))).toBe('EINVAL');
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(region({ flags: kvmMemReadonly, guestPhysAddr: memRegionGpa - page })),
      ),
    ).toBe('EINVAL');
  });

  it('a move may overlap only its own old range', () => {
    const vm = makeVm();
    vm.setUserMemoryRegion2(region({}));
    vm.setUserMemoryRegion2(
      region({ slot: 11, guestPhysAddr: memRegionGpa + memRegionSize, userspaceAddr: 0 }),
    );
    expect(vm.setUserMemoryRegion2(region({ guestPhysAddr: memRegionGpa - page }))).toBe('move');
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({ guestPhysAddr: memRegionGpa + page })))).toBe(
      'EEXIST',
    );
  });

  it('a guest_memfd slot is immutable: it can only be deleted, and deleting unbinds it', () => {
    const vm = makeVm('sw-protected');
    const file = vm.createGuestMemfd(memRegionSize);
    vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file }));
    expect(
      errnoOf(() =>
        vm.setUserMemoryRegion2(
          region({ flags: kvmMemGuestMemfd, guestMemfd: file, guestPhysAddr: memRegionGpa - page }),
        ),
      ),
    ).toBe('EINVAL');
    expect(vm.setUserMemoryRegion2(region({ memorySize: 0 }))).toBe('delete');
    expect(file.bindingCount).toBe(0);
    expect(vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: file }))).toBe('create');
  });

  it('a mappable guest_memfd makes the slot gmem-only (kvm_gmem_bind sets KVM_MEMSLOT_GMEM_ONLY)', () => {
    const vm = makeVm('default');
    const plain = vm.createGuestMemfd(memRegionSize);
    const mappable = vm.createGuestMemfd(memRegionSize, guestMemfdFlagMmap);
    vm.setUserMemoryRegion2(region({ flags: kvmMemGuestMemfd, guestMemfd: plain }));
    vm.setUserMemoryRegion2(
      region({ slot: 11, flags: kvmMemGuestMemfd, guestPhysAddr: 0, guestMemfd: mappable }),
    );
    expect(vm.memslots.find(memRegionGpa / page)?.gmemOnly).toBe(false);
    expect(vm.memslots.find(0)?.gmemOnly).toBe(true);
  });

  it('a destroyed VM answers EBADF', () => {
    const vm = makeVm();
    vm.destroy();
    expect(errnoOf(() => vm.setUserMemoryRegion2(region({})))).toBe('EBADF');
  });
});
