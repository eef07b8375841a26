import { assert } from '../assert.js';
import { pageBytes, pageShift } from '../constants.js';
import { KvmError, toSafeNumber, toU64, type U64 } from './errno.js';
import { type FileRef, GuestMemfd, type GuestMemfdVm } from './guest-memfd.js';

/**
 * A VM's memslots: KVM_SET_USER_MEMORY_REGION(2) with KVM's checks and errnos. A memslot maps a range
 * of guest frames either to the VMM's memory at `userspace_addr` (shared backing) or, with
 * KVM_MEM_GUEST_MEMFD, additionally to a range of a guest_memfd (private backing).
 *
 * Sources:
 *   virt/kvm/kvm_main.c   kvm_vm_ioctl_set_memory_region, kvm_set_memory_region,
 *                         check_memory_region_flags, kvm_check_memslot_overlap, KVM_SET_USER_MEMORY_REGION
 *                         (v1 flags only)
 *   virt/kvm/guest_memfd.c kvm_gmem_bind / kvm_gmem_unbind (via GuestMemfd.bind)
 *   arch/x86/kvm/x86.c    kvm_arch_prepare_memory_region (the slot must end below kvm_mmu_max_gfn())
 *   arch/x86/include/asm/kvm_host.h  KVM_INTERNAL_MEM_SLOTS, kvm_arch_nr_memslot_as_ids
 *   include/linux/kvm_host.h         KVM_MEM_SLOTS_NUM, KVM_USER_MEM_SLOTS, KVM_MEM_MAX_NR_PAGES
 *   tools/testing/selftests/kvm/set_memory_region_test.c   the behaviour the tests re-express
 */

/** include/uapi/linux/kvm.h memslot flags. */
export const kvmMemLogDirtyPages = 1 << 0;
export const kvmMemReadonly = 1 << 1;
export const kvmMemGuestMemfd = 1 << 2;
/** virt/kvm/kvm_main.c KVM_SET_USER_MEMORY_REGION_V1_FLAGS: the flags the v1 ioctl accepts. */
export const kvmSetUserMemoryRegionV1Flags = kvmMemLogDirtyPages | kvmMemReadonly;

/** include/linux/kvm_host.h: KVM_MEM_SLOTS_NUM is SHRT_MAX. */
export const kvmMemSlotsNum = 32767;
/** arch/x86/include/asm/kvm_host.h: x86 keeps 3 slots for itself (TSS, identity map, APIC access). */
export const kvmInternalMemSlots = 3;
/** KVM_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM - KVM_INTERNAL_MEM_SLOTS, also KVM_CAP_NR_MEMSLOTS on x86. */
export const kvmUserMemSlots = kvmMemSlotsNum - kvmInternalMemSlots;
/** include/linux/kvm_host.h KVM_MEM_MAX_NR_PAGES: dirty bitmaps are indexed by an unsigned int. */
export const kvmMemMaxNrPages = 2 ** 31 - 1;
/** arch/x86 TASK_SIZE_MAX with 4-level paging: the top of user space (access_ok bound). */
export const taskSizeMaxBytes = 2 ** 47 - pageBytes;
/** x86 has a second memslot address space for SMM; VMs with private memory have no SMM. */
export const kvmMaxNrAddressSpaces = 2;

assert(kvmUserMemSlots === 32764, 'x86 exposes 32764 user memslots');
assert(kvmMemSlotsNum < 1 << 16, 'slot ids fit the low 16 bits of the slot field');

/** What the memslot table needs to know about its VM (implemented by VmMemory). */
export interface MemslotVm extends GuestMemfdVm {
  /** arch/x86/kvm/mmu.h kvm_mmu_max_gfn(): the last frame the MMU can map (from MAXPHYADDR). */
  readonly maxGfn: number;
  /** Told once a slot is bound to its guest_memfd, so the file's pages can follow the VM's attributes. */
  gmemBound(slot: Memslot): void;
}

/** struct kvm_userspace_memory_region2. */
export interface UserMemoryRegion2 {
  /** (address space id << 16) | slot id */
  slot: number;
  flags: number;
  guestPhysAddr: U64;
  /** 0 deletes the slot */
  memorySize: U64;
  userspaceAddr: U64;
  /** Only read with KVM_MEM_GUEST_MEMFD. */
  guestMemfd?: FileRef;
  guestMemfdOffset?: U64;
}

/** struct kvm_userspace_memory_region (v1): no guest_memfd fields. */
export type UserMemoryRegion = Omit<UserMemoryRegion2, 'guestMemfd' | 'guestMemfdOffset'>;

export interface Memslot {
  readonly asId: number;
  readonly id: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly flags: number;
  readonly userspaceAddr: number;
  /** The bound guest_memfd (KVM_MEM_GUEST_MEMFD), or null. */
  readonly gmem: GuestMemfd | null;
  /** First guest_memfd page of the binding. */
  readonly gmemPgoff: number;
  /**
   * KVM_MEMSLOT_GMEM_ONLY: the guest_memfd is mappable, so it backs shared pages too and
   * `userspace_addr` is not used (virt/kvm/guest_memfd.c kvm_gmem_bind).
   */
  readonly gmemOnly: boolean;
}

export type MemslotChange = 'create' | 'delete' | 'move' | 'flags-only' | 'none';

export class MemslotTable {
  /** Per address space, slots sorted by base frame; they never overlap within one address space. */
  private readonly bySpace: Memslot[][] = [];
  /** Per address space, slot id -> slot (id_to_memslot). */
  private readonly byId: Array<Map<number, Memslot>> = [];

  constructor(private readonly vm: MemslotVm) {
    for (let asId = 0; asId < kvmMaxNrAddressSpaces; asId++) {
      this.bySpace.push([]);
      this.byId.push(new Map());
    }
  }

  /** kvm_arch_nr_memslot_as_ids: SMM is unsupported for guests with private memory. */
  get addressSpaceCount(): number {
    return this.vm.hasPrivateMem ? 1 : kvmMaxNrAddressSpaces;
  }

  get count(): number {
    let total = 0;
    for (const slots of this.bySpace) total += slots.length;
    return total;
  }

  slots(asId = 0): readonly Memslot[] {
    return this.bySpace[asId] ?? [];
  }

  /** The slot that maps `gfn` in address space `asId`, or null (gfn_to_memslot). */
  find(gfn: number, asId = 0): Memslot | null {
    const slots = this.bySpace[asId];
    assert(slots !== undefined, `address space ${asId} out of range`);
    const at = lastBelow(slots, gfn + 1);
    if (at < 0) return null;
    const slot = slots[at];
    return gfn < slot.baseGfn + slot.npages ? slot : null;
  }

  /** KVM_SET_USER_MEMORY_REGION: v2-only flags are refused (virt/kvm/kvm_main.c kvm_vm_ioctl). */
  setUserMemoryRegion(region: UserMemoryRegion): MemslotChange {
    if ((region.flags & ~kvmSetUserMemoryRegionV1Flags) !== 0) {
      throw new KvmError(
        'EINVAL',
        'flags',
        `KVM_SET_USER_MEMORY_REGION flags 0x${region.flags.toString(16)} need KVM_SET_USER_MEMORY_REGION2`,
      );
    }
    return this.setUserMemoryRegion2(region);
  }

  /** KVM_SET_USER_MEMORY_REGION2: create, move, change flags of, or (size 0) delete a slot. */
  setUserMemoryRegion2(region: UserMemoryRegion2): MemslotChange {
    if (this.vm.isDestroyed) throw new KvmError('EBADF', 'vm', `VM ${this.vm.vmId} is destroyed`);
    assert(Number.isInteger(region.slot) && region.slot >= 0 && region.slot < 2 ** 32, 'slot is a u32');
    assert(Number.isInteger(region.flags) && region.flags >= 0 && region.flags < 2 ** 32, 'flags is a u32');
    const id = region.slot & 0xffff;
    const asId = region.slot >>> 16;
    // kvm_vm_ioctl_set_memory_region: internal slot ids are not for userspace.
    if (id >= kvmUserMemSlots) {
      throw new KvmError(
        'EINVAL',
        'slot',
        `slot id ${id} is not below KVM_USER_MEM_SLOTS (${kvmUserMemSlots})`,
      );
    }
    checkFlags(region.flags);
    const page = BigInt(pageBytes);
    const size = toU64(region.memorySize, 'memory_size');
    const gpa = toU64(region.guestPhysAddr, 'guest_phys_addr');
    const uaddr = toU64(region.userspaceAddr, 'userspace_addr');
    const isGmem = (region.flags & kvmMemGuestMemfd) !== 0;
    const gmemOffset = isGmem ? toU64(region.guestMemfdOffset ?? 0, 'guest_memfd_offset') : 0n;
    if (size % page !== 0n)
      throw new KvmError('EINVAL', 'memory_size', `memory_size ${size} is not page-aligned`);
    if (gpa % page !== 0n) {
      throw new KvmError(
        'EINVAL',
        'guest_phys_addr',
        `guest_phys_addr 0x${gpa.toString(16)} is not page-aligned`,
      );
    }
    if (uaddr % page !== 0n) {
      throw new KvmError(
        'EINVAL',
        'userspace_addr',
        `userspace_addr 0x${uaddr.toString(16)} is not page-aligned`,
      );
    }
    // access_ok(): the whole range must be user memory (arch/x86/include/asm/uaccess_64.h).
    if (uaddr + size >= BigInt(taskSizeMaxBytes)) {
      throw new KvmError(
        'EINVAL',
        'userspace_addr',
        `userspace range 0x${uaddr.toString(16)} + ${size} leaves user space`,
      );
    }
    if (isGmem && (gmemOffset % page !== 0n || gmemOffset + size >= 1n << 64n)) {
      throw new KvmError(
        'EINVAL',
        'guest_memfd_offset',
        `guest_memfd_offset ${gmemOffset} is unaligned or wraps`,
      );
    }
    if (asId >= this.addressSpaceCount) {
      throw new KvmError('EINVAL', 'slot', `address space ${asId} does not exist for VM ${this.vm.vmId}`);
    }
    if (gpa + size >= 1n << 64n) {
      throw new KvmError(
        'EINVAL',
        'guest_phys_addr',
        `guest_phys_addr 0x${gpa.toString(16)} + ${size} wraps`,
      );
    }
    if (size >> BigInt(pageShift) > BigInt(kvmMemMaxNrPages)) {
      throw new KvmError('EINVAL', 'memory_size', `memory_size ${size} exceeds KVM_MEM_MAX_NR_PAGES pages`);
    }
    const old = this.byId[asId].get(id) ?? null;

    if (size === 0n) {
      if (old === null) throw new KvmError('EINVAL', 'slot', `slot ${id} does not exist, cannot delete it`);
      this.remove(old);
      if (old.gmem !== null) old.gmem.unbind(old);
      return 'delete';
    }

    // gpa < 2^64, so the base frame is below 2^52, and npages is below 2^31: both are safe numbers.
    const baseGfn = toSafeNumber(gpa >> BigInt(pageShift), 'guest_phys_addr');
    const npages = toSafeNumber(size >> BigInt(pageShift), 'memory_size');
    let change: MemslotChange;
    if (old === null) {
      change = 'create';
    } else {
      // Private memslots are immutable: they can only be deleted.
      if (isGmem)
        throw new KvmError('EINVAL', 'flags', `guest_memfd slot ${id} cannot be modified, only deleted`);
      if (uaddr !== BigInt(old.userspaceAddr) || npages !== old.npages) {
        throw new KvmError('EINVAL', 'memory_size', `slot ${id}: only its base or flags may change`);
      }
      if (((region.flags ^ old.flags) & kvmMemReadonly) !== 0) {
        throw new KvmError('EINVAL', 'flags', `slot ${id}: KVM_MEM_READONLY cannot be toggled`);
      }
      if (baseGfn !== old.baseGfn) change = 'move';
      else if (region.flags !== old.flags) change = 'flags-only';
      else return 'none';
    }
    if (change === 'create' || change === 'move') {
      const overlap = this.overlaps(asId, id, baseGfn, npages);
      if (overlap !== null) {
        throw new KvmError(
          'EEXIST',
          'guest_phys_addr',
          `slot ${id} overlaps slot ${overlap.id} in guest-physical space`,
        );
      }
    }

    const next: {
      asId: number;
      id: number;
      baseGfn: number;
      npages: number;
      flags: number;
      userspaceAddr: number;
      gmem: GuestMemfd | null;
      gmemPgoff: number;
      gmemOnly: boolean;
    } = {
      asId,
      id,
      baseGfn,
      npages,
      flags: region.flags,
      userspaceAddr: toSafeNumber(uaddr, 'userspace_addr'),
      gmem: null,
      gmemPgoff: 0,
      gmemOnly: false,
    };
    if (isGmem) {
      const file = this.checkBindable(region.guestMemfd ?? null);
      next.gmemPgoff = file.bind(this.vm, next, gmemOffset, npages);
      next.gmem = file;
      next.gmemOnly = file.isMappable;
    }
    // kvm_arch_prepare_memory_region runs after the binding; a failure there unbinds again.
    if ((change === 'create' || change === 'move') && baseGfn + npages - 1 > this.vm.maxGfn) {
      if (next.gmem !== null) next.gmem.unbind(next);
      throw new KvmError(
        'EINVAL',
        'guest_phys_addr',
        `slot ${id} ends past the last guest frame the MMU can map (0x${this.vm.maxGfn.toString(16)})`,
      );
    }
    const slot: Memslot = next;
    if (old !== null) this.remove(old);
    this.insert(slot);
    if (slot.gmem !== null) this.vm.gmemBound(slot);
    return change;
  }

  /** Deletes every slot (VM destruction), unbinding guest_memfds. */
  deleteAll(): void {
    for (let asId = 0; asId < kvmMaxNrAddressSpaces; asId++) {
      for (const slot of this.bySpace[asId]) if (slot.gmem !== null) slot.gmem.unbind(slot);
      this.bySpace[asId].length = 0;
      this.byId[asId].clear();
    }
  }

  private insert(slot: Memslot): void {
    const slots = this.bySpace[slot.asId];
    const at = lastBelow(slots, slot.baseGfn) + 1;
    slots.splice(at, 0, slot);
    this.byId[slot.asId].set(slot.id, slot);
    // Pair the overlap check made before: the neighbours must still leave room for the new slot.
    assert(
      at === 0 || slots[at - 1].baseGfn + slots[at - 1].npages <= slot.baseGfn,
      'memslot overlaps its predecessor',
    );
    assert(
      at + 1 === slots.length || slot.baseGfn + slot.npages <= slots[at + 1].baseGfn,
      'memslot overlaps its successor',
    );
  }

  private remove(slot: Memslot): void {
    const slots = this.bySpace[slot.asId];
    const at = lastBelow(slots, slot.baseGfn + 1);
    assert(at >= 0 && slots[at] === slot, `memslot ${slot.id} is not where its base says`);
    slots.splice(at, 1);
    this.byId[slot.asId].delete(slot.id);
  }

  /** kvm_gmem_bind's file checks: an fd that is not open is EBADF, a file that is not guest_memfd EINVAL. */
  private checkBindable(file: FileRef): GuestMemfd {
    if (file === null)
      throw new KvmError('EBADF', 'guest_memfd', 'guest_memfd is not an open file descriptor');
    if (!(file instanceof GuestMemfd)) {
      throw new KvmError(
        'EINVAL',
        'guest_memfd',
        `guest_memfd refers to a ${file.fileKind} file, not a guest_memfd`,
      );
    }
    if (file.isClosed)
      throw new KvmError('EBADF', 'guest_memfd', `guest_memfd ${file.inodeNumber} is closed`);
    return file;
  }

  /** kvm_check_memslot_overlap: another slot (not `id`) intersecting [base, base + npages). */
  private overlaps(asId: number, id: number, baseGfn: number, npages: number): Memslot | null {
    const slots = this.bySpace[asId];
    // Slots are sorted and disjoint, so only the last one starting below the end of the range (or,
    // when that is the slot being moved, the one before it) can reach into the range.
    let at = lastBelow(slots, baseGfn + npages);
    if (at >= 0 && slots[at].id === id) at--;
    if (at < 0) return null;
    const candidate = slots[at];
    return candidate.baseGfn + candidate.npages > baseGfn ? candidate : null;
  }
}

/** check_memory_region_flags (virt/kvm/kvm_main.c). */
function checkFlags(flags: number): void {
  let valid = kvmMemLogDirtyPages | kvmMemGuestMemfd;
  // Dirty logging of private memory is not supported.
  if ((flags & kvmMemGuestMemfd) !== 0) valid &= ~kvmMemLogDirtyPages;
  // guest_memfd is incompatible with read-only slots: their writes are emulated MMIO, which private
  // memory cannot be.
  if ((flags & kvmMemGuestMemfd) === 0) valid |= kvmMemReadonly;
  if ((flags & ~valid) !== 0) {
    throw new KvmError('EINVAL', 'flags', `memslot flags 0x${flags.toString(16)} are not supported together`);
  }
}

/** Index of the last slot with baseGfn < limit, or -1. */
function lastBelow(slots: readonly Memslot[], limit: number): number {
  let low = 0;
  let high = slots.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (slots[middle].baseGfn < limit) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}
