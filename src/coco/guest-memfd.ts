import { assert } from '../assert.js';
import { pageBytes, pageShift } from '../constants.js';
import { CapacityError } from '../errors.js';
import { domainFree, privateDomain, vmDomain } from '../memory/domains.js';
import { KvmError, toS64, toSafeNumber, toU64, type U64 } from './errno.js';
import type { FrameStore } from './frame-source.js';

/**
 * guest_memfd: a file of guest memory that the host cannot read, write or (unless created mappable)
 * mmap. It is created by a VM (KVM_CREATE_GUEST_MEMFD), bound to that VM's memslots, and owns its
 * pages: they live as long as the file, not as long as the VM (the file pins the VM, so a VM can be
 * destroyed while the file stays usable).
 *
 * Rules and errnos follow the kernel, each with its source:
 *   virt/kvm/guest_memfd.c         create, fallocate, punch hole, mmap, fault, bind, release
 *   include/linux/kvm_host.h       kvm_gmem_get_supported_flags
 *   arch/x86/kvm/x86.c             kvm_arch_supports_gmem_init_shared
 *   fs/open.c                      vfs_fallocate (generic fallocate checks before the file's own)
 *   fs/read_write.c                vfs_read / vfs_write (no read/write file operation -> EINVAL)
 *   tools/testing/selftests/kvm/guest_memfd_test.c   the behaviour the tests re-express
 *
 * Page model: each page of the file is either a hole or backed by one frame. Each page also has a
 * shared/private state: a page is shared from the start when the file was created INIT_SHARED,
 * private otherwise, and the VM facade flips it on conversion. The frame's owner follows the state:
 * `vmDomain(v)` while shared, `privateDomain(v)` while private. The host may touch a page through a
 * mapping only while it is shared (INV-10).
 */

/** include/uapi/linux/kvm.h: GUEST_MEMFD_FLAG_MMAP: the file may be mmap()ed (shared pages only). */
export const guestMemfdFlagMmap = 1n << 0n;
/** include/uapi/linux/kvm.h: GUEST_MEMFD_FLAG_INIT_SHARED: every page starts shared, not private. */
export const guestMemfdFlagInitShared = 1n << 1n;

/** include/uapi/linux/falloc.h */
export const fallocFlKeepSize = 0x01;
export const fallocFlPunchHole = 0x02;
export const fallocFlCollapseRange = 0x08;
export const fallocFlZeroRange = 0x10;
export const fallocFlInsertRange = 0x20;
export const fallocFlUnshareRange = 0x40;
/** fs/open.c: the modes vfs_fallocate knows at all; any other bit is EOPNOTSUPP before the file is asked. */
const fallocKnownModes =
  fallocFlKeepSize |
  fallocFlPunchHole |
  fallocFlCollapseRange |
  fallocFlZeroRange |
  fallocFlInsertRange |
  fallocFlUnshareRange;

/** What guest_memfd needs to know about the VM that creates it (implemented by VmMemory). */
export interface GuestMemfdVm {
  readonly vmId: number;
  readonly frames: FrameStore;
  /** KVM_X86_SW_PROTECTED_VM (and SNP/TDX): the VM has private memory, so INIT_SHARED is refused. */
  readonly hasPrivateMem: boolean;
  readonly isDestroyed: boolean;
}

/**
 * include/linux/kvm_host.h kvm_gmem_get_supported_flags: MMAP always; INIT_SHARED only where
 * arch/x86/kvm/x86.c kvm_arch_supports_gmem_init_shared allows it, i.e. for VMs without private memory
 * (private vs. shared tracking is per VM, so a protected VM's guest_memfd can only start private).
 */
export function supportedGuestMemfdFlags(vm: GuestMemfdVm): bigint {
  return vm.hasPrivateMem ? guestMemfdFlagMmap : guestMemfdFlagMmap | guestMemfdFlagInitShared;
}

/** A file that is open but is not a guest_memfd (the KVM device, a VM fd, a plain memfd). */
export interface OtherFile {
  readonly fileKind: 'kvm-device' | 'vm' | 'memfd' | 'regular';
}

/** A file descriptor argument: a guest_memfd, another open file, or `null` for a number not open (-1). */
export type FileRef = GuestMemfd | OtherFile | null;

/**
 * A host access through a guest_memfd mapping that the kernel answers with SIGBUS. When the page is
 * guest-private this is the INV-10 rule at work: the access is refused and reported, and the page is
 * never converted to make the access succeed.
 */
export interface HostAccessFault {
  readonly kind: 'host-fault';
  readonly signal: 'SIGBUS';
  /** 'INV-10' when the refused page is guest-private; null for other SIGBUS causes (past end of file). */
  readonly invariant: 'INV-10' | null;
  readonly reason: 'private-page' | 'beyond-eof';
  readonly write: boolean;
  /** Byte offset of the faulting page in the guest_memfd. */
  readonly fileOffset: number;
  /** Guest-physical address of the faulting page when the access was made by GPA (the VM facade). */
  readonly gpa: number | null;
  /** The frame backing the page, or -1 when the page is a hole. */
  readonly pfn: number;
  /** The owner of that frame, or `domainFree` for a hole. */
  readonly ownerDomain: number;
}

interface Binding {
  readonly startPage: number;
  readonly endPage: number;
  readonly slot: object;
}

/** guest_memfd inodes get distinct numbers (guest_memfd_test: test_create_guest_memfd_multiple). */
let nextInodeNumber = 1;

export class GuestMemfd {
  readonly inodeNumber: number;
  readonly sizeBytes: number;
  readonly pageCount: number;
  readonly flags: bigint;
  /** Page index -> frame; pages not in the map are holes. */
  private readonly frames = new Map<number, number>();
  /** Pages whose shared/private state differs from the state every page started in. */
  private readonly flippedPages = new PageRangeSet();
  private readonly bindings: Binding[] = [];
  private fdOpen = true;
  /** The fd and every live mapping each hold the file; it is released when the last one goes. */
  private fileReferences = 1;
  private released = false;

  private constructor(
    readonly vm: GuestMemfdVm,
    sizeBytes: number,
    flags: bigint,
  ) {
    this.inodeNumber = nextInodeNumber++;
    this.sizeBytes = sizeBytes;
    this.pageCount = sizeBytes / pageBytes;
    this.flags = flags;
    assert(Number.isInteger(this.pageCount) && this.pageCount > 0, 'guest_memfd size checked by create');
  }

  /**
   * KVM_CREATE_GUEST_MEMFD. virt/kvm/guest_memfd.c kvm_gmem_create: unknown flags -> EINVAL, then
   * size <= 0 or not page-aligned -> EINVAL.
   */
  static create(vm: GuestMemfdVm, size: U64, flags: U64 = 0): GuestMemfd {
    if (vm.isDestroyed) throw new KvmError('EBADF', 'vm', `VM ${vm.vmId} is destroyed; its fd is closed`);
    const flagBits = toU64(flags, 'flags');
    const unsupported = flagBits & ~supportedGuestMemfdFlags(vm);
    if (unsupported !== 0n) {
      throw new KvmError(
        'EINVAL',
        'flags',
        `guest_memfd flags 0x${flagBits.toString(16)} include unsupported 0x${unsupported.toString(16)} for VM ${vm.vmId}`,
      );
    }
    const sizeBig = toS64(size, 'size');
    if (sizeBig <= 0n) throw new KvmError('EINVAL', 'size', `guest_memfd size ${sizeBig} must be > 0`);
    if (sizeBig % BigInt(pageBytes) !== 0n) {
      throw new KvmError('EINVAL', 'size', `guest_memfd size ${sizeBig} is not page-aligned`);
    }
    return new GuestMemfd(vm, toSafeNumber(sizeBig, 'size'), flagBits);
  }

  get isMappable(): boolean {
    return (this.flags & guestMemfdFlagMmap) !== 0n;
  }

  get isInitShared(): boolean {
    return (this.flags & guestMemfdFlagInitShared) !== 0n;
  }

  /** Whether the fd was closed (the file may still live on through mappings). */
  get isClosed(): boolean {
    return !this.fdOpen;
  }

  /** Whether the file is gone: fd closed and no mapping left. Bound memslots then see no file. */
  get isReleased(): boolean {
    return this.released;
  }

  get framesAllocated(): number {
    return this.frames.size;
  }

  /** fstat(): st_size is the file size, st_blksize a page (guest_memfd_test: test_file_size). */
  stat(): { sizeBytes: number; blockSizeBytes: number } {
    this.checkFdOpen();
    return { sizeBytes: this.sizeBytes, blockSizeBytes: pageBytes };
  }

  /**
   * read()/pread(): guest_memfd has no read operation, so fs/read_write.c vfs_read refuses it with
   * EINVAL (guest_memfd_test: test_file_read_write).
   */
  read(_lengthBytes: number, _offsetBytes?: number): never {
    this.checkFdOpen();
    throw new KvmError('EINVAL', 'fd', `guest_memfd ${this.inodeNumber} cannot be read()`);
  }

  /** write()/pwrite(): no write operation either; fs/read_write.c vfs_write -> EINVAL. */
  write(_data: Uint8Array, _offsetBytes?: number): never {
    this.checkFdOpen();
    throw new KvmError('EINVAL', 'fd', `guest_memfd ${this.inodeNumber} cannot be written with write()`);
  }

  /**
   * fallocate(fd, mode, offset, len). Checks in the kernel's order:
   *   fs/open.c vfs_fallocate: offset < 0 or len <= 0 -> EINVAL; unknown mode bits -> EOPNOTSUPP;
   *     PUNCH_HOLE without KEEP_SIZE -> EOPNOTSUPP.
   *   virt/kvm/guest_memfd.c kvm_gmem_fallocate: no KEEP_SIZE -> EOPNOTSUPP; any mode but KEEP_SIZE
   *     and PUNCH_HOLE -> EOPNOTSUPP; offset or len not page-aligned -> EINVAL.
   *   kvm_gmem_allocate: offset + len past the end of the file -> EINVAL (the file is immutable in
   *     size). kvm_gmem_punch_hole has no such check: punching past the end succeeds and does nothing.
   */
  fallocate(mode: number, offset: U64, len: U64): void {
    this.checkFdOpen();
    assert(Number.isInteger(mode) && mode >= 0, `fallocate mode must be a non-negative integer, got ${mode}`);
    const offsetBig = toS64(offset, 'offset');
    const lenBig = toS64(len, 'len');
    if (offsetBig < 0n || lenBig <= 0n) {
      throw new KvmError(
        'EINVAL',
        offsetBig < 0n ? 'offset' : 'len',
        `fallocate offset ${offsetBig} len ${lenBig}`,
      );
    }
    if ((mode & ~fallocKnownModes) !== 0) {
      throw new KvmError('EOPNOTSUPP', 'mode', `fallocate mode 0x${mode.toString(16)} has unknown bits`);
    }
    if ((mode & fallocFlPunchHole) !== 0 && (mode & fallocFlKeepSize) === 0) {
      throw new KvmError('EOPNOTSUPP', 'mode', 'fallocate PUNCH_HOLE requires KEEP_SIZE');
    }
    if ((mode & fallocFlKeepSize) === 0) {
      throw new KvmError(
        'EOPNOTSUPP',
        'mode',
        'guest_memfd fallocate requires KEEP_SIZE (its size is fixed)',
      );
    }
    if ((mode & ~(fallocFlKeepSize | fallocFlPunchHole)) !== 0) {
      throw new KvmError(
        'EOPNOTSUPP',
        'mode',
        `guest_memfd supports only KEEP_SIZE and PUNCH_HOLE, got 0x${mode.toString(16)}`,
      );
    }
    const page = BigInt(pageBytes);
    if (offsetBig % page !== 0n) {
      throw new KvmError('EINVAL', 'offset', `guest_memfd fallocate offset ${offsetBig} is not page-aligned`);
    }
    if (lenBig % page !== 0n) {
      throw new KvmError('EINVAL', 'len', `guest_memfd fallocate len ${lenBig} is not page-aligned`);
    }
    const startPageBig = offsetBig >> BigInt(pageShift);
    const endPageBig = (offsetBig + lenBig) >> BigInt(pageShift);
    if ((mode & fallocFlPunchHole) !== 0) {
      const pageCount = BigInt(this.pageCount);
      const start = startPageBig < pageCount ? Number(startPageBig) : this.pageCount;
      const end = endPageBig < pageCount ? Number(endPageBig) : this.pageCount;
      this.punchHole(start, end);
      return;
    }
    if (offsetBig + lenBig > BigInt(this.sizeBytes)) {
      throw new KvmError(
        'EINVAL',
        'len',
        `guest_memfd fallocate [${offsetBig}, +${lenBig}) runs past the file size ${this.sizeBytes}`,
      );
    }
    const start = Number(startPageBig);
    const end = Number(endPageBig);
    for (let index = start; index < end; index++) this.faultInPage(index);
  }

  /**
   * mmap(). virt/kvm/guest_memfd.c kvm_gmem_mmap: a file created without MMAP -> ENODEV; a mapping that
   * is not MAP_SHARED (copy-on-write) -> EINVAL. The mapping may be longer than the file: accesses past
   * the end SIGBUS (guest_memfd_test: test_fault_overflow), as do accesses to private pages
   * (test_fault_private; kvm_gmem_fault_user_mapping).
   */
  mmap(lengthBytes: number, options: { shared: boolean }): GuestMemfdMapping {
    this.checkFdOpen();
    assert(
      Number.isSafeInteger(lengthBytes) && lengthBytes > 0 && lengthBytes % pageBytes === 0,
      `mmap length must be a positive multiple of a page, got ${lengthBytes}`,
    );
    if (!this.isMappable) {
      throw new KvmError(
        'ENODEV',
        'fd',
        `guest_memfd ${this.inodeNumber} was created without GUEST_MEMFD_FLAG_MMAP`,
      );
    }
    if (!options.shared) {
      throw new KvmError('EINVAL', 'flags', 'guest_memfd can only be mapped MAP_SHARED (no copy-on-write)');
    }
    this.fileReferences++;
    return new GuestMemfdMapping(this, lengthBytes);
  }

  /**
   * close(). The file is released when no mapping holds it any more: virt/kvm/guest_memfd.c
   * kvm_gmem_release then detaches every memslot binding (later private faults in those slots see no
   * file), and the pages, which belong to the inode, are freed with it.
   */
  close(): void {
    this.checkFdOpen();
    this.fdOpen = false;
    this.dropReference();
  }

  // ---- for the memslot table and the VM facade (same package) ----

  /**
   * kvm_gmem_bind (virt/kvm/guest_memfd.c): the file must belong to the binding VM, the offset must be
   * page-aligned and the slot must fit inside the file, and no page may already be bound to another
   * slot of this file. All of these are EINVAL.
   */
  bind(vm: GuestMemfdVm, slot: object, offset: bigint, pageCount: number): number {
    assert(!this.released, 'binding a released guest_memfd');
    if (vm !== this.vm) {
      throw new KvmError(
        'EINVAL',
        'guest_memfd',
        `guest_memfd ${this.inodeNumber} belongs to VM ${this.vm.vmId}, not VM ${vm.vmId}`,
      );
    }
    if (offset < 0n || offset % BigInt(pageBytes) !== 0n) {
      throw new KvmError('EINVAL', 'guest_memfd_offset', `guest_memfd_offset ${offset} is not page-aligned`);
    }
    if (offset + BigInt(pageCount) * BigInt(pageBytes) > BigInt(this.sizeBytes)) {
      throw new KvmError(
        'EINVAL',
        'guest_memfd_offset',
        `guest_memfd_offset ${offset} + ${pageCount} pages runs past the file size ${this.sizeBytes}`,
      );
    }
    const startPage = Number(offset >> BigInt(pageShift));
    const endPage = startPage + pageCount;
    for (const binding of this.bindings) {
      if (binding.startPage < endPage && startPage < binding.endPage) {
        throw new KvmError(
          'EINVAL',
          'guest_memfd_offset',
          `guest_memfd pages [${startPage}, ${endPage}) are already bound to another memslot`,
        );
      }
    }
    this.bindings.push({ startPage, endPage, slot });
    return startPage;
  }

  /** kvm_gmem_unbind: forget the slot's binding (a released file has none left). */
  unbind(slot: object): void {
    const at = this.bindings.findIndex((binding) => binding.slot === slot);
    if (this.released) {
      assert(at < 0, 'a released guest_memfd kept a binding');
      return;
    }
    assert(at >= 0, 'unbinding a slot that is not bound');
    this.bindings.splice(at, 1);
  }

  get bindingCount(): number {
    return this.bindings.length;
  }

  isPageShared(index: number): boolean {
    this.checkIndex(index);
    return this.isInitShared !== this.flippedPages.has(index);
  }

  /** Whether every page in [start, end) is in the given state. */
  arePagesShared(startPage: number, endPage: number, shared: boolean): boolean {
    assert(startPage >= 0 && startPage <= endPage && endPage <= this.pageCount, 'page range out of the file');
    return this.flippedPages.covers(startPage, endPage, shared !== this.isInitShared);
  }

  /** The frame backing a page, or -1 for a hole. */
  frameOf(index: number): number {
    this.checkIndex(index);
    return this.frames.get(index) ?? -1;
  }

  /** Returns the page's frame, allocating it (zero-filled) on first use, owned per the page's state. */
  faultInPage(index: number): number {
    assert(!this.released, 'fault-in on a released guest_memfd');
    const existing = this.frameOf(index);
    if (existing >= 0) return existing;
    const owner = this.isPageShared(index) ? vmDomain(this.vm.vmId) : privateDomain(this.vm.vmId);
    let pfn: number;
    try {
      pfn = this.vm.frames.alloc(owner);
    } catch (error) {
      if (error instanceof CapacityError) {
        throw new KvmError(
          'ENOMEM',
          'guest_memfd',
          `no frame left for guest_memfd page ${index}: ${error.message}`,
        );
      }
      throw error;
    }
    this.frames.set(index, pfn);
    return pfn;
  }

  /**
   * Converts pages [start, end) between shared and private. Contents are not preserved: every frame
   * whose state changes is scrubbed (the kernel does not guarantee contents across a conversion, and a
   * frame that leaves the guest's private domain must not carry private data to the host), then its
   * owner follows the new state. Pages already in the target state are left alone.
   */
  convertPages(startPage: number, endPage: number, shared: boolean): void {
    assert(startPage >= 0 && startPage <= endPage && endPage <= this.pageCount, 'page range out of the file');
    const changing = this.allocatedPagesIn(startPage, endPage).filter(
      (index) => this.isPageShared(index) !== shared,
    );
    this.flippedPages.assign(startPage, endPage, shared !== this.isInitShared);
    const owner = shared ? vmDomain(this.vm.vmId) : privateDomain(this.vm.vmId);
    for (const index of changing) {
      const pfn = this.frames.get(index)!;
      this.vm.frames.scrub(pfn);
      this.vm.frames.setOwner(pfn, owner);
    }
    assert(this.arePagesShared(startPage, endPage, shared), 'conversion left pages in the old state');
  }

  /** Builds the SIGBUS record for a host access to a page (used by mappings and the facade). */
  hostFault(index: number, write: boolean, gpa: number | null): HostAccessFault {
    const beyondEof = index >= this.pageCount;
    const pfn = beyondEof ? -1 : this.frameOf(index);
    return {
      kind: 'host-fault',
      signal: 'SIGBUS',
      invariant: beyondEof ? null : 'INV-10',
      reason: beyondEof ? 'beyond-eof' : 'private-page',
      write,
      fileOffset: index * pageBytes,
      gpa,
      pfn,
      ownerDomain: pfn < 0 ? domainFree : this.vm.frames.ownerOf(pfn),
    };
  }

  /** Called by a mapping on munmap. */
  releaseMapping(): void {
    this.dropReference();
  }

  private punchHole(startPage: number, endPage: number): void {
    if (startPage >= endPage) return;
    for (const index of this.allocatedPagesIn(startPage, endPage)) {
      const pfn = this.frames.get(index)!;
      this.frames.delete(index);
      this.vm.frames.free(pfn);
    }
  }

  /** Allocated page indices in [start, end), cheapest way round: walk the range or walk the map. */
  private allocatedPagesIn(startPage: number, endPage: number): number[] {
    const found: number[] = [];
    if (endPage - startPage <= this.frames.size) {
      for (let index = startPage; index < endPage; index++) if (this.frames.has(index)) found.push(index);
    } else {
      for (const index of this.frames.keys()) if (index >= startPage && index < endPage) found.push(index);
    }
    return found;
  }

  private dropReference(): void {
    assert(this.fileReferences > 0, 'guest_memfd reference count underflow');
    this.fileReferences--;
    if (this.fileReferences > 0) return;
    this.released = true;
    this.bindings.length = 0;
    this.punchHole(0, this.pageCount);
    assert(this.frames.size === 0, 'released guest_memfd still holds frames');
  }

  private checkFdOpen(): void {
    if (!this.fdOpen) throw new KvmError('EBADF', 'fd', `guest_memfd ${this.inodeNumber} is closed`);
  }

  private checkIndex(index: number): void {
    assert(
      Number.isInteger(index) && index >= 0 && index < this.pageCount,
      `guest_memfd page ${index} out of range`,
    );
  }
}

/**
 * A MAP_SHARED mapping of a mappable guest_memfd in the VMM (offsets are relative to the mapping, which
 * starts at file offset 0). Accesses go page by page, like a memset or a read loop would: bytes before
 * a faulting page are done, and the fault is returned for the first page the kernel refuses
 * (virt/kvm/guest_memfd.c kvm_gmem_fault_user_mapping: past the end of the file, or a page that is not
 * shared -> SIGBUS). A fault never converts the page.
 */
export class GuestMemfdMapping {
  private mapped = true;

  constructor(
    readonly file: GuestMemfd,
    readonly lengthBytes: number,
  ) {}

  read(offsetBytes: number, target: Uint8Array): HostAccessFault | null {
    return this.access(offsetBytes, target, false);
  }

  write(offsetBytes: number, source: Uint8Array): HostAccessFault | null {
    return this.access(offsetBytes, source, true);
  }

  munmap(): void {
    assert(this.mapped, 'munmap of a mapping already unmapped');
    this.mapped = false;
    this.file.releaseMapping();
  }

  private access(offsetBytes: number, buffer: Uint8Array, write: boolean): HostAccessFault | null {
    assert(this.mapped, 'access through an unmapped guest_memfd mapping');
    assert(
      Number.isSafeInteger(offsetBytes) &&
        offsetBytes >= 0 &&
        offsetBytes + buffer.length <= this.lengthBytes,
      `access [${offsetBytes}, +${buffer.length}) leaves the ${this.lengthBytes}-byte mapping (SIGSEGV)`,
    );
    return accessFilePages(this.file, offsetBytes, buffer, write, null);
  }
}

/**
 * Host access to guest_memfd pages by file offset, page by page; shared by mappings and by the facade's
 * host access to gmem-only memslots. `gpaOfOffset0` is the GPA of file offset `offsetBytes` when the
 * access came by GPA (for the fault record), else null.
 */
export function accessFilePages(
  file: GuestMemfd,
  offsetBytes: number,
  buffer: Uint8Array,
  write: boolean,
  gpaOfOffset0: number | null,
): HostAccessFault | null {
  let done = 0;
  while (done < buffer.length) {
    const offset = offsetBytes + done;
    const index = Math.floor(offset / pageBytes);
    const inPage = offset % pageBytes;
    const chunk = Math.min(pageBytes - inPage, buffer.length - done);
    if (index >= file.pageCount || !file.isPageShared(index)) {
      const gpa = gpaOfOffset0 === null ? null : gpaOfOffset0 + done - inPage;
      return file.hostFault(index, write, gpa);
    }
    const pfn = file.faultInPage(index);
    assert(
      file.vm.frames.ownerOf(pfn) === vmDomain(file.vm.vmId),
      `shared page ${index} is not owned by the VM`,
    );
    const part = buffer.subarray(done, done + chunk);
    if (write) file.vm.frames.write(pfn, inPage, part);
    else file.vm.frames.read(pfn, inPage, part);
    done += chunk;
  }
  return null;
}

/**
 * A set of page (or frame) numbers kept as sorted, disjoint, non-adjacent [start, end) ranges: cheap
 * for the few large ranges that conversions produce. Lookups are O(log n); updates rebuild the list,
 * O(n) in the number of ranges.
 */
export class PageRangeSet {
  private starts: number[] = [];
  private ends: number[] = [];

  get rangeCount(): number {
    return this.starts.length;
  }

  has(page: number): boolean {
    const at = this.lastStartingAtOrBefore(page);
    return at >= 0 && page < this.ends[at];
  }

  /** Whether all of [start, end) is in the set (`inSet`), or none of it is (`!inSet`). */
  covers(start: number, end: number, inSet: boolean): boolean {
    if (start >= end) return true;
    const at = this.lastStartingAtOrBefore(start);
    if (inSet) return at >= 0 && this.ends[at] >= end;
    if (at >= 0 && this.ends[at] > start) return false;
    const next = at + 1;
    return next >= this.starts.length || this.starts[next] >= end;
  }

  /** Adds [start, end) to the set (`inSet`) or removes it. */
  assign(start: number, end: number, inSet: boolean): void {
    assert(
      Number.isSafeInteger(start) && Number.isSafeInteger(end) && start <= end,
      `bad range [${start}, ${end})`,
    );
    if (start === end) return;
    const starts: number[] = [];
    const ends: number[] = [];
    let newStart = start;
    let newEnd = end;
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i];
      const e = this.ends[i];
      if (e < start || s > end || (!inSet && (e === start || s === end))) {
        starts.push(s);
        ends.push(e);
        continue;
      }
      if (inSet) {
        // Touching or overlapping: merge into the new range.
        newStart = Math.min(newStart, s);
        newEnd = Math.max(newEnd, e);
      } else {
        if (s < start) {
          starts.push(s);
          ends.push(start);
        }
        if (e > end) {
          starts.push(end);
          ends.push(e);
        }
      }
    }
    if (inSet) {
      let at = 0;
      while (at < starts.length && starts[at] < newStart) at++;
      starts.splice(at, 0, newStart);
      ends.splice(at, 0, newEnd);
    }
    this.starts = starts;
    this.ends = ends;
    this.checkShape();
  }

  /** Calls `visit` for each maximal piece of [start, end) with whether it is in the set. */
  forEachPiece(
    start: number,
    end: number,
    visit: (pieceStart: number, pieceEnd: number, inSet: boolean) => void,
  ): void {
    let cursor = start;
    let at = this.lastStartingAtOrBefore(start);
    if (at < 0 || this.ends[at] <= start) at++;
    while (cursor < end) {
      if (at >= this.starts.length || this.starts[at] >= end) {
        visit(cursor, end, false);
        return;
      }
      const s = Math.max(this.starts[at], cursor);
      if (s > cursor) visit(cursor, s, false);
      const e = Math.min(this.ends[at], end);
      visit(s, e, true);
      cursor = e;
      at++;
    }
  }

  ranges(): Array<readonly [number, number]> {
    return this.starts.map((start, i) => [start, this.ends[i]] as const);
  }

  clear(): void {
    this.starts = [];
    this.ends = [];
  }

  private lastStartingAtOrBefore(page: number): number {
    let low = 0;
    let high = this.starts.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.starts[middle] <= page) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  private checkShape(): void {
    for (let i = 0; i < this.starts.length; i++) {
      assert(this.starts[i] < this.ends[i], 'empty range kept');
      assert(i === 0 || this.ends[i - 1] < this.starts[i], 'ranges overlap or touch');
    }
  }
}
