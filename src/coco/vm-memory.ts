import { assert } from '../assert.js';
import { pageBytes, pageShift, vmsMax } from '../constants.js';
import { CapacityError } from '../errors.js';
import { domainFree, privateDomain, vmDomain } from '../memory/domains.js';
import { errnoNumbers, isKvmError, KvmError, toU64, type U64 } from './errno.js';
import { type FrameSource, FrameStore } from './frame-source.js';
import {
  accessFilePages,
  fallocFlKeepSize,
  fallocFlPunchHole,
  GuestMemfd,
  type HostAccessFault,
  PageRangeSet,
} from './guest-memfd.js';
import {
  type Memslot,
  type MemslotChange,
  MemslotTable,
  type UserMemoryRegion,
  type UserMemoryRegion2,
} from './memslots.js';

/**
 * The memory of one VM as KVM presents it: memslots, guest_memfd, per-frame memory attributes
 * (private/shared), the MAP_GPA_RANGE hypercall exit, memory-fault exits, and the host's view through
 * the VMM's mappings. Every rule carries the kernel source it follows.
 *
 *   virt/kvm/kvm_main.c          KVM_SET_MEMORY_ATTRIBUTES (kvm_vm_ioctl_set_mem_attributes,
 *                                kvm_vm_set_mem_attributes, kvm_supported_mem_attributes)
 *   arch/x86/kvm/mmu/mmu.c       which backing a guest fault uses, and when it exits with
 *                                KVM_EXIT_MEMORY_FAULT (kvm_mmu_faultin_pfn, kvm_mmu_faultin_pfn_gmem,
 *                                kvm_handle_noslot_fault, kvm_mmu_prepare_memory_fault_exit)
 *   arch/x86/kvm/x86.c           KVM_HC_MAP_GPA_RANGE (__kvm_emulate_hypercall), KVM_CAP_EXIT_HYPERCALL
 *   include/uapi/linux/kvm.h     flags and exit codes; arch/x86/include/uapi/asm/kvm_para.h hypercall
 *   tools/testing/selftests/kvm/x86/private_mem_conversions_test.c, private_mem_kvm_exits_test.c
 *
 * Backings. A guest frame is backed by the VMM's memory at the slot's `userspace_addr` while it is
 * shared, and by the slot's guest_memfd while it is private (or always, for a gmem-only slot whose
 * guest_memfd is mappable). The host reaches guest memory only through the VMM's memory and the
 * guest_memfd mappings, i.e. only shared pages: INV-10. Frames of the VMM's memory are owned by
 * `vmDomain(v)`; guest_memfd frames by `privateDomain(v)` while private and `vmDomain(v)` while shared.
 *
 * A bound guest_memfd page is always in the state of the frame it backs: binding and every conversion
 * keep them in step. Conversions do not preserve contents of guest_memfd pages: a page converted reads
 * zeros (fresh contents). The VMM's memory is the VMM's: KVM never touches it, so shared data survives a private
 * excursion, exactly as the selftest expects ("the host should observe the shared data").
 */

/** include/uapi/linux/kvm.h */
export const kvmMemoryAttributePrivate = 1n << 3n;
export const kvmExitHypercall = 3;
export const kvmExitMmio = 6;
export const kvmExitMemoryFault = 39;
/** KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3), the bit of run->memory_fault.flags for a private access. */
export const kvmMemoryExitFlagPrivate = 1n << 3n;
/** include/uapi/linux/kvm_para.h */
export const kvmHcMapGpaRange = 12;
/** Hypercall return codes the guest sees (include/uapi/linux/kvm_para.h). */
export const kvmEnosys = 1000;
export const kvmEinval = 22;
export const kvmEperm = 1;
/** arch/x86/include/uapi/asm/kvm_para.h KVM_MAP_GPA_RANGE_* attribute bits. */
export const kvmMapGpaRangePageSize2M = 1n << 0n;
export const kvmMapGpaRangePageSize1G = 1n << 1n;
export const kvmMapGpaRangeEncrypted = 1n << 4n;
export const kvmMapGpaRangeDecrypted = 0n;
/** arch/x86/kvm/x86.c KVM_EXIT_HYPERCALL_VALID_MASK: only MAP_GPA_RANGE may exit to userspace. */
export const kvmExitHypercallValidMask = 1n << BigInt(kvmHcMapGpaRange);

/** x86 CPUs have at most 52 physical address bits (MAXPHYADDR). */
const physAddrBitsMax = 52;

/**
 * KVM_X86_DEFAULT_VM has no private memory (every frame is shared; guest_memfd may start shared);
 * KVM_X86_SW_PROTECTED_VM has private memory without hardware protection (the type the selftests use).
 */
export type VmType = 'default' | 'sw-protected';

export interface VmMemoryOptions {
  vmId: number;
  /** The machine's frames (or a store over them, to share contents bookkeeping between VMs). */
  frames: FrameSource | FrameStore;
  type?: VmType;
  /** Guest MAXPHYADDR, which bounds the memslots (kvm_mmu_max_gfn). Default 52. */
  physAddrBits?: number;
  /** The VMM's answer to a MAP_GPA_RANGE exit; default: `convertOnMapGpaRange`. */
  onMapGpaRange?: MapGpaRangeHandler;
  /** Told of every host access that was refused (INV-10 reports), after it was refused. */
  onHostFault?: (fault: HostAccessFault) => void;
}

/** struct kvm_memory_attributes */
export interface MemoryAttributes {
  address: U64;
  size: U64;
  attributes: U64;
  flags?: U64;
}

/** Whether a guest access is private (C-bit set / TDX shared bit clear) or shared. */
export type GuestAccessKind = 'private' | 'shared';

/**
 * KVM_EXIT_MEMORY_FAULT: the access's private/shared kind disagrees with the frame's attribute, or the
 * backing it needs is missing. KVM reports the page (gfn << PAGE_SHIFT, PAGE_SIZE) and the kind of the
 * access in `run->memory_fault.flags` (KVM_MEMORY_EXIT_FLAG_PRIVATE set for a private access); the VMM
 * decides whether to convert. Nothing is converted here.
 *
 * Documentation/virt/kvm/api.rst (KVM_EXIT_MEMORY_FAULT): this exit is the only one that "accompanies a
 * return code of '-1', not '0'! errno will always be set to EFAULT": KVM_RUN returns -EFAULT with it,
 * which `errno` and `ret` carry, as a selftest's `TEST_ASSERT_EQ(errno, EFAULT)` checks.
 */
export interface MemoryFaultExit {
  readonly kind: 'memory-fault';
  /** run->exit_reason: KVM_EXIT_MEMORY_FAULT. */
  readonly exitReason: typeof kvmExitMemoryFault;
  /** KVM_RUN's errno with this exit: always EFAULT. */
  readonly errno: 'EFAULT';
  /** KVM_RUN's return in the kernel: -EFAULT (userspace sees -1 and errno EFAULT). */
  readonly ret: number;
  /** run->memory_fault.gpa: the faulting page. */
  readonly gpa: number;
  /** run->memory_fault.size: one page. */
  readonly size: number;
  /** run->memory_fault.flags, a u64 bit mask: `kvmMemoryExitFlagPrivate` when the access was private. */
  readonly flags: bigint;
  /** The same bit for people: 'private' when KVM_MEMORY_EXIT_FLAG_PRIVATE is set, else 'shared'. */
  readonly access: GuestAccessKind;
  /** Whether the faulting access was a write (the model's, not in KVM's struct). */
  readonly write: boolean;
}

/** KVM_EXIT_MMIO: a shared access where no memslot maps the frame. */
export interface MmioExit {
  readonly kind: 'mmio';
  /** run->exit_reason: KVM_EXIT_MMIO (KVM_RUN returns 0). */
  readonly exitReason: typeof kvmExitMmio;
  readonly gpa: number;
  readonly length: number;
  readonly write: boolean;
}

export type GuestAccessExit = MemoryFaultExit | MmioExit;

/** KVM_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE: args[0..2] as the guest passed them. */
export interface MapGpaRangeExit {
  readonly kind: 'hypercall';
  readonly nr: typeof kvmHcMapGpaRange;
  readonly gpa: bigint;
  readonly npages: bigint;
  readonly attributes: bigint;
  readonly longMode: true;
}

/** The VMM's handling of a MAP_GPA_RANGE exit; returns `run->hypercall.ret` (0 = success). */
export type MapGpaRangeHandler = (vm: VmMemory, exit: MapGpaRangeExit) => number;

/** What the guest sees from the hypercall: RAX (signed), and the exit if the VMM was asked. */
export interface HypercallResult {
  readonly ret: number;
  readonly exit: MapGpaRangeExit | null;
}

/** Which frame backs a GPA for an access of the attribute's kind (a functional, non-allocating look). */
export interface BackingInfo {
  readonly backing: 'userspace' | 'guest-memfd' | 'none';
  /** -1 when nothing is allocated yet (or no slot). */
  readonly pfn: number;
  /** The frame's owner, or `domainFree` when there is no frame. */
  readonly ownerDomain: number;
  readonly private: boolean;
}

/**
 * The default VMM policy for MAP_GPA_RANGE, as QEMU does it: the ENCRYPTED bit selects private, and
 * the range is converted with KVM_SET_MEMORY_ATTRIBUTES. A refused conversion is reported to the guest
 * as -errno.
 */
export function convertOnMapGpaRange(vm: VmMemory, exit: MapGpaRangeExit): number {
  const toPrivate = (exit.attributes & kvmMapGpaRangeEncrypted) !== 0n;
  const size = exit.npages * BigInt(pageBytes);
  // KVM checked the frame range; its byte range may still pass 2^64, which no ioctl can carry.
  if (exit.gpa + size >= 1n << 64n) return -errnoNumbers.EINVAL;
  try {
    vm.setMemoryAttributes({
      address: exit.gpa,
      size,
      attributes: toPrivate ? kvmMemoryAttributePrivate : 0n,
    });
  } catch (error) {
    if (isKvmError(error)) return -errnoNumbers[error.errno];
    throw error;
  }
  return 0;
}

export class VmMemory {
  readonly vmId: number;
  readonly frames: FrameStore;
  readonly type: VmType;
  readonly hasPrivateMem: boolean;
  readonly maxGfn: number;
  readonly memslots: MemslotTable;
  /** kvm->mem_attr_array: the frames whose attribute is PRIVATE. */
  private readonly privateGfns = new PageRangeSet();
  /** The VMM's anonymous memory: user page number -> frame (owned by vmDomain). */
  private readonly userPages = new Map<number, number>();
  private hypercallExitMask = 0n;
  private mapGpaRangeHandler: MapGpaRangeHandler;
  private readonly onHostFault: ((fault: HostAccessFault) => void) | undefined;
  private destroyed = false;
  private hostFaultCount = 0;

  constructor(options: VmMemoryOptions) {
    assert(
      Number.isInteger(options.vmId) && options.vmId >= 0 && options.vmId < vmsMax,
      `vmId ${options.vmId}`,
    );
    const physAddrBits = options.physAddrBits ?? physAddrBitsMax;
    assert(
      Number.isInteger(physAddrBits) && physAddrBits > pageShift && physAddrBits <= physAddrBitsMax,
      `physAddrBits must be in ${pageShift + 1}..${physAddrBitsMax}, got ${physAddrBits}`,
    );
    this.vmId = options.vmId;
    this.frames = options.frames instanceof FrameStore ? options.frames : new FrameStore(options.frames);
    this.type = options.type ?? 'default';
    this.hasPrivateMem = this.type === 'sw-protected';
    this.maxGfn = 2 ** (physAddrBits - pageShift) - 1;
    this.memslots = new MemslotTable(this);
    this.mapGpaRangeHandler = options.onMapGpaRange ?? convertOnMapGpaRange;
    this.onHostFault = options.onHostFault;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Host accesses refused so far (each one also went to `onHostFault`). */
  get hostFaults(): number {
    return this.hostFaultCount;
  }

  /** Frames of the VMM's memory that this VM's slots have touched. */
  get userFramesHeld(): number {
    return this.userPages.size;
  }

  // ---- VM ioctls ----

  /** KVM_CREATE_GUEST_MEMFD */
  createGuestMemfd(size: U64, flags: U64 = 0): GuestMemfd {
    return GuestMemfd.create(this, size, flags);
  }

  /** KVM_SET_USER_MEMORY_REGION */
  setUserMemoryRegion(region: UserMemoryRegion): MemslotChange {
    return this.memslots.setUserMemoryRegion(region);
  }

  /** KVM_SET_USER_MEMORY_REGION2 */
  setUserMemoryRegion2(region: UserMemoryRegion2): MemslotChange {
    return this.memslots.setUserMemoryRegion2(region);
  }

  /**
   * KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL): which hypercalls exit to the VMM. arch/x86/kvm/x86.c
   * kvm_vm_ioctl_enable_cap: bits outside KVM_EXIT_HYPERCALL_VALID_MASK -> EINVAL.
   */
  enableHypercallExit(mask: U64): void {
    this.checkAlive();
    const bits = toU64(mask, 'args[0]');
    if ((bits & ~kvmExitHypercallValidMask) !== 0n) {
      throw new KvmError(
        'EINVAL',
        'args[0]',
        `KVM_CAP_EXIT_HYPERCALL mask 0x${bits.toString(16)} has unknown bits`,
      );
    }
    this.hypercallExitMask = bits;
  }

  setMapGpaRangeHandler(handler: MapGpaRangeHandler): void {
    this.mapGpaRangeHandler = handler;
  }

  /**
   * KVM_SET_MEMORY_ATTRIBUTES. virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes, in its order:
   * flags != 0 -> EINVAL; attributes not supported by this VM -> EINVAL (PRIVATE exists only for VMs
   * with private memory: kvm_supported_mem_attributes); size 0 or address + size wrapping -> EINVAL;
   * address or size not page-aligned -> EINVAL. Attributes are per VM and per frame, independent of
   * memslots. If the whole range already has them nothing happens (kvm_vm_set_mem_attributes).
   */
  setMemoryAttributes(request: MemoryAttributes): void {
    this.checkAlive();
    const flags = toU64(request.flags ?? 0, 'flags');
    if (flags !== 0n)
      throw new KvmError('EINVAL', 'flags', `memory attributes flags 0x${flags.toString(16)} must be 0`);
    const attributes = toU64(request.attributes, 'attributes');
    const supported = this.hasPrivateMem ? kvmMemoryAttributePrivate : 0n;
    if ((attributes & ~supported) !== 0n) {
      throw new KvmError(
        'EINVAL',
        'attributes',
        `memory attributes 0x${attributes.toString(16)} are not supported by ${this.type} VM ${this.vmId}`,
      );
    }
    const address = toU64(request.address, 'address');
    const size = toU64(request.size, 'size');
    if (size === 0n) throw new KvmError('EINVAL', 'size', 'memory attributes size must not be 0');
    if (address + size >= 1n << 64n) {
      throw new KvmError(
        'EINVAL',
        'size',
        `memory attributes range 0x${address.toString(16)} + ${size} wraps`,
      );
    }
    const page = BigInt(pageBytes);
    if (address % page !== 0n) {
      throw new KvmError(
        'EINVAL',
        'address',
        `memory attributes address 0x${address.toString(16)} is not page-aligned`,
      );
    }
    if (size % page !== 0n)
      throw new KvmError('EINVAL', 'size', `memory attributes size ${size} is not page-aligned`);
    // Frames above 2^53 can never be mapped (the memslot rule bounds them by MAXPHYADDR), but the
    // attribute array takes any u64 frame; clamp what we store to the frames a slot can reach.
    const limit = BigInt(this.maxGfn) + 1n;
    const startBig = address >> BigInt(pageShift);
    const endBig = (address + size) >> BigInt(pageShift);
    if (startBig >= limit) return;
    const start = Number(startBig);
    const end = Number(endBig < limit ? endBig : limit);
    const toPrivate = attributes !== 0n;
    if (this.privateGfns.covers(start, end, toPrivate)) return;
    const changing: Array<readonly [number, number]> = [];
    this.privateGfns.forEachPiece(start, end, (pieceStart, pieceEnd, isPrivate) => {
      if (isPrivate !== toPrivate) changing.push([pieceStart, pieceEnd]);
    });
    this.privateGfns.assign(start, end, toPrivate);
    // kvm_handle_gfn_range over every address space: guest_memfd pages bound to the frames follow.
    for (const [pieceStart, pieceEnd] of changing) this.convertBoundGmem(pieceStart, pieceEnd, !toPrivate);
    assert(this.privateGfns.covers(start, end, toPrivate), 'attributes not applied');
  }

  /** kvm_mem_is_private */
  isPrivate(gpa: number): boolean {
    return this.privateGfns.has(gfnOf(gpa));
  }

  /** The private frame ranges [startGfn, endGfn), sorted (the per-page truth, for tracking checks). */
  privateRanges(): Array<readonly [number, number]> {
    return this.privateGfns.ranges();
  }

  // ---- the guest ----

  /**
   * A guest read. `access` is the kind the guest's page tables give the access (SNP C-bit, TDX shared
   * bit); left out, it follows the frame's attribute, as KVM does for KVM_X86_SW_PROTECTED_VM. Returns
   * null when done, or the exit that stopped it (bytes of earlier pages are already read).
   */
  guestRead(gpa: number, target: Uint8Array, options?: { access?: GuestAccessKind }): GuestAccessExit | null {
    return this.guestAccess(gpa, target, false, options?.access);
  }

  guestWrite(
    gpa: number,
    source: Uint8Array,
    options?: { access?: GuestAccessKind },
  ): GuestAccessExit | null {
    return this.guestAccess(gpa, source, true, options?.access);
  }

  /**
   * KVM_HC_MAP_GPA_RANGE, made by the guest (arch/x86/kvm/x86.c __kvm_emulate_hypercall): from CPL > 0
   * -> -KVM_EPERM; exit not enabled by KVM_CAP_EXIT_HYPERCALL -> -KVM_ENOSYS; gpa not page-aligned,
   * npages 0, or gfn + npages wrapping -> -KVM_EINVAL. None of these reach the VMM. Otherwise the
   * VMM's handler gets the exit and its return value is what the guest sees.
   */
  guestMapGpaRange(gpa: U64, npages: U64, attributes: U64, options?: { cpl?: number }): HypercallResult {
    this.checkAlive();
    const cpl = options?.cpl ?? 0;
    assert(Number.isInteger(cpl) && cpl >= 0 && cpl <= 3, `cpl must be 0..3, got ${cpl}`);
    if (cpl !== 0) return { ret: -kvmEperm, exit: null };
    if ((this.hypercallExitMask & kvmExitHypercallValidMask) === 0n) return { ret: -kvmEnosys, exit: null };
    const gpaBig = toU64(gpa, 'a0');
    const npagesBig = toU64(npages, 'a1');
    const attributesBig = toU64(attributes, 'a2');
    const gfn = gpaBig >> BigInt(pageShift);
    // In u64 arithmetic `gfn + npages <= gfn` holds exactly when npages is 0 or the sum wraps.
    if (gpaBig % BigInt(pageBytes) !== 0n || npagesBig === 0n || gfn + npagesBig >= 1n << 64n) {
      return { ret: -kvmEinval, exit: null };
    }
    const exit: MapGpaRangeExit = {
      kind: 'hypercall',
      nr: kvmHcMapGpaRange,
      gpa: gpaBig,
      npages: npagesBig,
      attributes: attributesBig,
      longMode: true,
    };
    const ret = this.mapGpaRangeHandler(this, exit);
    assert(Number.isSafeInteger(ret), `MAP_GPA_RANGE handler must return an integer, got ${ret}`);
    return { ret, exit };
  }

  // ---- the host (VMM) ----

  /**
   * The VMM reads guest memory by GPA through its own mapping (addr_gpa2hva). For an ordinary slot that
   * is the VMM's memory at userspace_addr: shared data, whatever the attribute says (the host never sees
   * private contents there). For a gmem-only slot it is the guest_memfd mapping: a private page SIGBUSes
   * and is reported as INV-10, never converted. A GPA without a slot has no host address: EFAULT.
   */
  hostRead(gpa: number, target: Uint8Array): HostAccessFault | null {
    return this.hostAccess(gpa, target, false);
  }

  hostWrite(gpa: number, source: Uint8Array): HostAccessFault | null {
    return this.hostAccess(gpa, source, true);
  }

  /**
   * fallocate() on the guest_memfd ranges behind [gpa, gpa + size), slot by slot, as the selftests'
   * vm_guest_mem_fallocate (tools/testing/selftests/kvm/lib/kvm_util.c) does: PUNCH_HOLE to free,
   * plain KEEP_SIZE to allocate. Every frame of the range must be in a guest_memfd slot.
   */
  guestMemFallocate(gpa: number, size: number, punchHole: boolean): void {
    this.checkAlive();
    assert(
      gpa % pageBytes === 0 && size % pageBytes === 0 && size > 0,
      'fallocate range must be page-aligned',
    );
    const mode = punchHole ? fallocFlKeepSize | fallocFlPunchHole : fallocFlKeepSize;
    const end = gpa + size;
    let cursor = gpa;
    while (cursor < end) {
      const slot = this.memslots.find(gfnOf(cursor));
      assert(slot !== null && slot.gmem !== null, `no guest_memfd memslot for GPA 0x${cursor.toString(16)}`);
      const offsetInSlot = cursor - slot.baseGfn * pageBytes;
      const length = Math.min(end - cursor, slot.npages * pageBytes - offsetInSlot);
      slot.gmem.fallocate(mode, slot.gmemPgoff * pageBytes + offsetInSlot, length);
      cursor += length;
    }
  }

  /** Which frame an access of the attribute's kind would use; allocates nothing. */
  inspectBacking(gpa: number): BackingInfo {
    const gfn = gfnOf(gpa);
    const isPrivate = this.privateGfns.has(gfn);
    const slot = this.memslots.find(gfn);
    if (slot === null) return { backing: 'none', pfn: -1, ownerDomain: domainFree, private: isPrivate };
    if (isPrivate || slot.gmemOnly) {
      if (slot.gmem === null || slot.gmem.isReleased) {
        return { backing: 'none', pfn: -1, ownerDomain: domainFree, private: isPrivate };
      }
      const pfn = slot.gmem.frameOf(slot.gmemPgoff + gfn - slot.baseGfn);
      return {
        backing: 'guest-memfd',
        pfn,
        ownerDomain: pfn < 0 ? domainFree : this.frames.ownerOf(pfn),
        private: isPrivate,
      };
    }
    const pfn = this.userPages.get(userPageOf(slot, gfn)) ?? -1;
    return {
      backing: 'userspace',
      pfn,
      ownerDomain: pfn < 0 ? domainFree : this.frames.ownerOf(pfn),
      private: isPrivate,
    };
  }

  /**
   * Destroys the VM: its memslots go (unbinding guest_memfds), the VMM's memory is freed, attributes are
   * dropped, and the VM's ioctls answer EBADF. guest_memfd files stay usable: they own their pages.
   */
  destroy(): void {
    this.checkAlive();
    this.memslots.deleteAll();
    for (const pfn of this.userPages.values()) this.frames.free(pfn);
    this.userPages.clear();
    this.privateGfns.clear();
    this.destroyed = true;
  }

  // ---- internals ----

  private checkAlive(): void {
    if (this.destroyed) throw new KvmError('EBADF', 'vm', `VM ${this.vmId} is destroyed; its fd is closed`);
  }

  /**
   * One guest access, page by page (arch/x86/kvm/mmu/mmu.c):
   *  - a private/shared mismatch between the access and the attribute -> memory fault (kvm_mmu_faultin_pfn);
   *  - no memslot: private -> memory fault (kvm_handle_noslot_fault), shared -> MMIO;
   *  - private, or any access to a gmem-only slot: the guest_memfd page; no guest_memfd on the slot or
   *    its file already released -> memory fault (kvm_mmu_faultin_pfn_gmem, kvm_gmem_get_pfn: EFAULT);
   *  - shared otherwise: the VMM's memory at userspace_addr.
   */
  private guestAccess(
    gpa: number,
    buffer: Uint8Array,
    write: boolean,
    access: GuestAccessKind | undefined,
  ): GuestAccessExit | null {
    this.checkAlive();
    assert(Number.isSafeInteger(gpa) && gpa >= 0, `gpa must be a non-negative safe integer, got ${gpa}`);
    let done = 0;
    while (done < buffer.length) {
      const address = gpa + done;
      const gfn = gfnOf(address);
      const inPage = address - gfn * pageBytes;
      const chunk = Math.min(pageBytes - inPage, buffer.length - done);
      const attributePrivate = this.privateGfns.has(gfn);
      const isPrivate = access === undefined ? attributePrivate : access === 'private';
      if (isPrivate !== attributePrivate) return memoryFault(gfn, isPrivate, write);
      const slot = this.memslots.find(gfn);
      if (slot === null) {
        if (isPrivate) return memoryFault(gfn, true, write);
        return { kind: 'mmio', exitReason: kvmExitMmio, gpa: address, length: buffer.length - done, write };
      }
      const part = buffer.subarray(done, done + chunk);
      let pfn: number;
      if (isPrivate || slot.gmemOnly) {
        if (slot.gmem === null || slot.gmem.isReleased) return memoryFault(gfn, isPrivate, write);
        const index = slot.gmemPgoff + gfn - slot.baseGfn;
        assert(
          slot.gmem.isPageShared(index) !== isPrivate,
          `guest_memfd page ${index} disagrees with gfn ${gfn}`,
        );
        pfn = slot.gmem.faultInPage(index);
        const owner = isPrivate ? privateDomain(this.vmId) : vmDomain(this.vmId);
        assert(
          this.frames.ownerOf(pfn) === owner,
          `guest_memfd frame ${pfn} has the wrong owner for gfn ${gfn}`,
        );
      } else {
        pfn = this.userFrame(userPageOf(slot, gfn), true);
      }
      if (write) this.frames.write(pfn, inPage, part);
      else this.frames.read(pfn, inPage, part);
      done += chunk;
    }
    return null;
  }

  private hostAccess(gpa: number, buffer: Uint8Array, write: boolean): HostAccessFault | null {
    this.checkAlive();
    assert(Number.isSafeInteger(gpa) && gpa >= 0, `gpa must be a non-negative safe integer, got ${gpa}`);
    let done = 0;
    while (done < buffer.length) {
      const address = gpa + done;
      const gfn = gfnOf(address);
      const inPage = address - gfn * pageBytes;
      const slot = this.memslots.find(gfn);
      if (slot === null) {
        throw new KvmError(
          'EFAULT',
          'gpa',
          `GPA 0x${address.toString(16)} is in no memslot: no host address`,
        );
      }
      const chunk = Math.min((slot.baseGfn + slot.npages) * pageBytes - address, buffer.length - done);
      const part = buffer.subarray(done, done + chunk);
      if (slot.gmemOnly) {
        const file = slot.gmem!;
        if (file.isReleased) {
          throw new KvmError('EFAULT', 'gpa', `GPA 0x${address.toString(16)}: its guest_memfd is released`);
        }
        const fileOffset = (slot.gmemPgoff + gfn - slot.baseGfn) * pageBytes + inPage;
        const fault = accessFilePages(file, fileOffset, part, write, address);
        if (fault !== null) return this.reportHostFault(fault);
      } else {
        this.userAccess(slot, address, part, write);
      }
      done += chunk;
    }
    return null;
  }

  /** Reads or writes the VMM's memory behind a slot; untouched pages read as zeros and stay untouched. */
  private userAccess(slot: Memslot, address: number, buffer: Uint8Array, write: boolean): void {
    let done = 0;
    while (done < buffer.length) {
      const gfn = gfnOf(address + done);
      const inPage = address + done - gfn * pageBytes;
      const chunk = Math.min(pageBytes - inPage, buffer.length - done);
      const part = buffer.subarray(done, done + chunk);
      const pfn = this.userFrame(userPageOf(slot, gfn), write);
      if (pfn < 0) part.fill(0);
      else if (write) this.frames.write(pfn, inPage, part);
      else this.frames.read(pfn, inPage, part);
      done += chunk;
    }
  }

  private userFrame(userPage: number, allocate: boolean): number {
    const existing = this.userPages.get(userPage);
    if (existing !== undefined) {
      assert(this.frames.ownerOf(existing) === vmDomain(this.vmId), `VMM frame ${existing} changed owner`);
      return existing;
    }
    if (!allocate) return -1;
    let pfn: number;
    try {
      pfn = this.frames.alloc(vmDomain(this.vmId));
    } catch (error) {
      if (error instanceof CapacityError) {
        throw new KvmError('ENOMEM', 'userspace_addr', `no frame left for VMM memory: ${error.message}`);
      }
      throw error;
    }
    this.userPages.set(userPage, pfn);
    return pfn;
  }

  private reportHostFault(fault: HostAccessFault): HostAccessFault {
    this.hostFaultCount++;
    this.onHostFault?.(fault);
    return fault;
  }

  /**
   * MemslotVm: a newly bound guest_memfd's pages take the attributes of the frames they back (a page
   * created private but bound where the VM's frames are shared becomes shared, and the reverse), so
   * that for every bound page the file's state and the VM's attribute agree.
   */
  gmemBound(slot: Memslot): void {
    assert(slot.gmem !== null && !slot.gmem.isReleased, 'gmemBound without a live guest_memfd');
    const file = slot.gmem;
    const first = slot.baseGfn;
    this.privateGfns.forEachPiece(first, first + slot.npages, (pieceStart, pieceEnd, isPrivate) => {
      file.convertPages(slot.gmemPgoff + pieceStart - first, slot.gmemPgoff + pieceEnd - first, !isPrivate);
    });
  }

  /** Conversions reach the guest_memfd pages bound to the frames, in every address space. */
  private convertBoundGmem(startGfn: number, endGfn: number, shared: boolean): void {
    for (let asId = 0; asId < this.memslots.addressSpaceCount; asId++) {
      for (const slot of this.memslots.slots(asId)) {
        if (slot.gmem === null || slot.gmem.isReleased) continue;
        const from = Math.max(startGfn, slot.baseGfn);
        const to = Math.min(endGfn, slot.baseGfn + slot.npages);
        if (from >= to) continue;
        slot.gmem.convertPages(
          slot.gmemPgoff + from - slot.baseGfn,
          slot.gmemPgoff + to - slot.baseGfn,
          shared,
        );
      }
    }
  }
}

function gfnOf(gpa: number): number {
  return Math.floor(gpa / pageBytes);
}

function userPageOf(slot: Memslot, gfn: number): number {
  return slot.userspaceAddr / pageBytes + (gfn - slot.baseGfn);
}

/** kvm_mmu_prepare_memory_fault_exit: the page, and the kind of the access that faulted. */
function memoryFault(gfn: number, isPrivate: boolean, write: boolean): MemoryFaultExit {
  return {
    kind: 'memory-fault',
    exitReason: kvmExitMemoryFault,
    errno: 'EFAULT',
    ret: -errnoNumbers.EFAULT,
    gpa: gfn * pageBytes,
    size: pageBytes,
    flags: isPrivate ? kvmMemoryExitFlagPrivate : 0n,
    access: isPrivate ? 'private' : 'shared',
    write,
  };
}
