import { assert, assertDebug } from '../assert.js';
import { pageBytes, pageTableEntries, pageTableI32s, vaLimit } from '../constants.js';
import { CapacityError } from '../errors.js';
import type { FrameTable } from '../memory/frames.js';
import { AddressSpaceField, addressSpaceFieldIndex, HeaderField, type Layout } from '../memory/layout.js';
import {
  Access,
  EptBit,
  entryPfn,
  Fault,
  MapFlag,
  pfnHigh,
  pfnLow,
  X86Bit,
  x86NxHigh,
} from './entry-format.js';
import { modPowerOfTwo } from './va-layout.js';

/** The resource a CapacityError names when the page-table pool runs out (createMachine turns it into a ConfigError). */
export const pageTablePoolResource = 'page-table pool';

/**
 * x86-64 4-level page tables (and EPT, the same radix tree with other permission bits) stored in the
 * machine buffer's page-table pool. Levels: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT.
 *
 * Every page-table page has an owner address space (ptPageOwner). Software writes (map, unmap, copy,
 * clear, split) go through `writeEntry`, which asserts the page belongs to the address space being
 * changed: that is INV-6 enforced at the source — building or changing `kvm:N` can never write a
 * `kernel` table page. Hardware A/D updates during a walk are the one exception, as on hardware (a
 * walk through a shared upper level sets its accessed bit).
 *
 * The hot path (`walk`) allocates nothing and returns a number: a PFN (>= 0) or a Fault code (< 0).
 */

/** Bytes covered by one entry at each level (index = level). */
export const levelBytes = [0, pageBytes, pageBytes * 512, pageBytes * 512 * 512, pageBytes * 512 * 512 * 512];
const leafLevelOf = new Map<number, number>([
  [levelBytes[1], 1],
  [levelBytes[2], 2],
  [levelBytes[3], 3],
]);

export interface MappedRange {
  vaStart: number;
  pfnStart: number;
  pages: number;
  /** Size of the leaves that map it: 4096, 2 MiB or 1 GiB. */
  leafBytes: number;
  writable: boolean;
  user: boolean;
  executable: boolean;
  global: boolean;
}

export interface Translation {
  ok: true;
  va: number;
  pfn: number;
  /** Byte address of `va` in physical memory. */
  physicalAddress: number;
  leafBytes: number;
}

/** A page fault, as INV-7 wants it reported: which address space, which address, which access. */
export interface PageFault {
  ok: false;
  addressSpace: number;
  va: number;
  access: number;
  reason: 'not-present' | 'write-protect' | 'user-supervisor' | 'no-execute';
  /** Level at which the walk stopped (4 = PML4 .. 1 = PT). */
  level: number;
}

function tableIndex(va: number, level: number): number {
  return modPowerOfTwo(Math.floor(va / levelBytes[level]), pageTableEntries);
}

export class PageTables {
  private readonly poolBase: number;
  private readonly ownerBase: number;
  private readonly poolPages: number;
  private readonly poolFirstPfn: number;
  /** Level at which the last walk stopped (for fault records), written by `walk`. */
  lastWalkLevel = 0;
  /** Leaf size of the last successful walk. */
  lastLeafBytes = 0;
  /** Effective permissions (MapFlag bits, AND over the levels) of the last successful walk. */
  lastWalkFlags = 0;
  /** Roots and formats never change once an address space exists: cached here for the walk. */
  private readonly rootCache: Int32Array;
  private readonly eptCache: Uint8Array;
  private readonly tlbGenerationBase: number;

  private readonly i32: Int32Array;
  private readonly u32: Uint32Array;
  private readonly layout: Layout;
  private readonly frames: FrameTable;
  private readonly tableDomainOf: (addressSpace: number) => number;

  constructor(
    i32: Int32Array,
    u32: Uint32Array,
    layout: Layout,
    frames: FrameTable,
    /** Owner domain given to a page-table page of each address space. */
    tableDomainOf: (addressSpace: number) => number,
  ) {
    this.i32 = i32;
    this.u32 = u32;
    this.layout = layout;
    this.frames = frames;
    this.tableDomainOf = tableDomainOf;
    this.poolBase = layout.sections.ptPool.offsetI32;
    this.ownerBase = layout.sections.ptPageOwner.offsetI32;
    this.poolPages = layout.ptPoolPages;
    this.poolFirstPfn = layout.ptPoolFirstPfn;
    assert(
      layout.sections.ptPool.lengthI32 === this.poolPages * pageTableI32s,
      'pool holds whole table pages',
    );
    this.rootCache = new Int32Array(layout.addressSpaceCount);
    this.tlbGenerationBase = addressSpaceFieldIndex(layout, 0, AddressSpaceField.tlbGeneration);
    this.eptCache = new Uint8Array(layout.addressSpaceCount);
  }

  /** Marks every pool page free. Called once, by createMachine. */
  initializePool(): void {
    for (let page = 0; page < this.poolPages; page++) this.i32[this.ownerBase + page] = -1;
  }

  // ---- address-space records -------------------------------------------------------------------

  private field(space: number, field: number): number {
    return addressSpaceFieldIndex(this.layout, space, field);
  }

  /** Creates the root table of an address space and fills its record. */
  createAddressSpace(space: number, kind: number, vmId: number, format: number): number {
    assert(space >= 0 && space < this.layout.addressSpaceCount, `address space ${space} out of range`);
    assert(
      this.i32[this.field(space, AddressSpaceField.rootPfn)] === 0,
      `address space ${space} already exists`,
    );
    this.i32[this.field(space, AddressSpaceField.kind)] = kind;
    this.i32[this.field(space, AddressSpaceField.vmId)] = vmId;
    this.i32[this.field(space, AddressSpaceField.format)] = format;
    const root = this.allocTable(space);
    Atomics.store(this.i32, this.field(space, AddressSpaceField.rootPfn), root);
    return root;
  }

  rootOf(space: number): number {
    const cached = this.rootCache[space];
    if (cached !== 0) return cached;
    const root = Atomics.load(this.i32, this.field(space, AddressSpaceField.rootPfn));
    assert(root > 0, 'the address space has a root table');
    this.rootCache[space] = root;
    this.eptCache[space] = this.i32[this.field(space, AddressSpaceField.format)] === 1 ? 1 : 0;
    return root;
  }

  isEpt(space: number): boolean {
    if (this.rootCache[space] === 0) this.rootOf(space);
    return this.eptCache[space] === 1;
  }

  /** Where space `space`'s TLB generation is in the machine buffer (spaces are AddressSpaceField.count apart). */
  tlbGenerationI32Index(space: number): number {
    return this.tlbGenerationBase + space * AddressSpaceField.count;
  }

  tlbGeneration(space: number): number {
    // A plain load: aligned and tear-free; a TLB that reads a generation one step late drops its
    // entries one step late, as a real shootdown IPI arrives late.
    return this.i32[this.tlbGenerationI32Index(space)];
  }

  entryWrites(space: number): number {
    return Atomics.load(this.i32, this.field(space, AddressSpaceField.entryWrites));
  }

  tablePageCount(space: number): number {
    return Atomics.load(this.i32, this.field(space, AddressSpaceField.tablePages));
  }

  // ---- the pool -----------------------------------------------------------------------------------

  private poolPageOf(tablePfn: number): number {
    const page = tablePfn - this.poolFirstPfn;
    assertDebug(page >= 0 && page < this.poolPages, 'poolPageOf: frame is not a page-table page');
    return page;
  }

  /** Owner address space of a page-table page, or -1 when free. */
  ownerOfTable(tablePfn: number): number {
    return Atomics.load(this.i32, this.ownerBase + this.poolPageOf(tablePfn));
  }

  private entryIndex(tablePfn: number, index: number): number {
    return this.poolBase + this.poolPageOf(tablePfn) * pageTableI32s + index * 2;
  }

  private allocTable(space: number): number {
    const hintIndex = this.layout.sections.header.offsetI32 + HeaderField.ptAllocHint;
    const start = Atomics.load(this.i32, hintIndex) % this.poolPages;
    for (let step = 0; step < this.poolPages; step++) {
      const page = (start + step) % this.poolPages;
      if (Atomics.compareExchange(this.i32, this.ownerBase + page, -1, space) === -1) {
        this.i32.fill(0, this.poolBase + page * pageTableI32s, this.poolBase + (page + 1) * pageTableI32s);
        Atomics.store(this.i32, hintIndex, page + 1);
        Atomics.add(this.i32, this.layout.sections.header.offsetI32 + HeaderField.ptPagesUsed, 1);
        Atomics.add(this.i32, this.field(space, AddressSpaceField.tablePages), 1);
        const pfn = this.poolFirstPfn + page;
        this.frames.setOwner(pfn, this.tableDomainOf(space));
        return pfn;
      }
    }
    throw new CapacityError(pageTablePoolResource, this.poolPages, 'raise machine.pageTablePoolPages');
  }

  private freeTable(space: number, tablePfn: number): void {
    const page = this.poolPageOf(tablePfn);
    assert(
      this.ownerOfTable(tablePfn) === space,
      `address space ${space} frees a table page it does not own`,
    );
    Atomics.store(this.i32, this.ownerBase + page, -1);
    Atomics.sub(this.i32, this.layout.sections.header.offsetI32 + HeaderField.ptPagesUsed, 1);
    Atomics.sub(this.i32, this.field(space, AddressSpaceField.tablePages), 1);
  }

  /**
   * The only software write to a table entry. INV-6: the page must belong to `space`. Setting an
   * entry writes the high word first and the present bits (low word) last; clearing does the reverse,
   * so a concurrent walker never sees a present entry with a half-written PFN.
   */
  private writeEntry(space: number, tablePfn: number, index: number, low: number, high: number): void {
    const owner = this.ownerOfTable(tablePfn);
    assert(owner === space, `INV-6: address space ${space} writes table page ${tablePfn} owned by ${owner}`);
    const at = this.entryIndex(tablePfn, index);
    if (low === 0 && high === 0) {
      Atomics.store(this.u32, at, 0);
      Atomics.store(this.u32, at + 1, 0);
    } else {
      Atomics.store(this.u32, at + 1, high >>> 0);
      Atomics.store(this.u32, at, low >>> 0);
    }
    Atomics.add(this.i32, this.field(space, AddressSpaceField.entryWrites), 1);
  }

  private readLow(tablePfn: number, index: number): number {
    return Atomics.load(this.u32, this.entryIndex(tablePfn, index));
  }

  private readHigh(tablePfn: number, index: number): number {
    return Atomics.load(this.u32, this.entryIndex(tablePfn, index) + 1);
  }

  private bumpGeneration(space: number): void {
    Atomics.add(this.i32, this.field(space, AddressSpaceField.tlbGeneration), 1);
  }

  // ---- entry encoding -----------------------------------------------------------------------------

  private present(space: number, low: number): boolean {
    return this.isEpt(space)
      ? (low & (EptBit.read | EptBit.write | EptBit.exec)) !== 0
      : (low & X86Bit.present) !== 0;
  }

  /** A non-leaf entry pointing at `tablePfn`: permissive; the leaf decides (as Linux's _PAGE_TABLE). */
  private tableEntryLow(space: number, tablePfn: number): number {
    const bits = this.isEpt(space)
      ? EptBit.read | EptBit.write | EptBit.exec
      : X86Bit.present | X86Bit.rw | X86Bit.us;
    return (pfnLow(tablePfn) | bits) >>> 0;
  }

  private leafEntry(space: number, pfn: number, flags: number, level: number): [number, number] {
    const large = level > 1 ? X86Bit.ps : 0; // PS is bit 7 in both formats
    if (this.isEpt(space)) {
      let low = EptBit.read | EptBit.memTypeWriteBack | large;
      if (flags & MapFlag.write) low |= EptBit.write;
      if (flags & MapFlag.exec) low |= EptBit.exec;
      return [(pfnLow(pfn) | low) >>> 0, pfnHigh(pfn)];
    }
    let low = X86Bit.present | large;
    if (flags & MapFlag.write) low |= X86Bit.rw;
    if (flags & MapFlag.user) low |= X86Bit.us;
    if (flags & MapFlag.global) low |= X86Bit.global;
    if (flags & MapFlag.uncached) low |= X86Bit.pcd;
    const high = pfnHigh(pfn) | (flags & MapFlag.exec ? 0 : x86NxHigh);
    return [(pfnLow(pfn) | low) >>> 0, high >>> 0];
  }

  /** Whether a present entry at `level` (> 1) is a large leaf. */
  private isLargeLeaf(low: number, level: number): boolean {
    return level > 1 && (low & X86Bit.ps) !== 0;
  }

  /** Permission flags (MapFlag) of a leaf entry. */
  flagsOf(space: number, low: number, high: number): number {
    if (this.isEpt(space)) {
      return (low & EptBit.write ? MapFlag.write : 0) | (low & EptBit.exec ? MapFlag.exec : 0);
    }
    return (
      (low & X86Bit.rw ? MapFlag.write : 0) |
      (low & X86Bit.us ? MapFlag.user : 0) |
      (high & x86NxHigh ? 0 : MapFlag.exec) |
      (low & X86Bit.global ? MapFlag.global : 0) |
      (low & X86Bit.pcd ? MapFlag.uncached : 0)
    );
  }

  // ---- map / unmap / split ------------------------------------------------------------------------

  /** Maps `bytes` (4 KiB, 2 MiB or 1 GiB, one leaf) at `va` to frame `pfn`. Replaces what was there. */
  map(space: number, va: number, pfn: number, flags: number, bytes: number = pageBytes): void {
    const level = leafLevelOf.get(bytes);
    assert(level !== undefined, `leaf size ${bytes} is not 4 KiB, 2 MiB or 1 GiB`);
    assert(Number.isInteger(va) && va >= 0 && va + bytes <= vaLimit, `VA ${va} outside 48 bits`);
    assert(va % bytes === 0, `VA ${va} is not aligned to ${bytes}`);
    assert(Number.isInteger(pfn) && pfn >= 0 && pfn < this.frames.frameCount, `pfn ${pfn} out of range`);
    assert((pfn * pageBytes) % bytes === 0, `frame ${pfn} is not aligned to ${bytes}`);
    const [low, high] = this.leafEntry(space, pfn, flags, level);
    this.writeLeaf(space, va, level, low, high);
  }

  /** Writes a leaf entry at `level`, creating (or splitting) intermediate tables on the way down. */
  private writeLeaf(space: number, va: number, leafLevel: number, low: number, high: number): void {
    let table = this.rootOf(space);
    for (let level = 4; level > leafLevel; level--) {
      const index = tableIndex(va, level);
      const entryLow = this.readLow(table, index);
      if (!this.present(space, entryLow)) {
        const child = this.allocTable(space);
        this.writeEntry(space, table, index, this.tableEntryLow(space, child), pfnHigh(child));
        table = child;
      } else if (this.isLargeLeaf(entryLow, level)) {
        table = this.splitEntry(space, table, index, level);
      } else {
        table = entryPfn(entryLow, this.readHigh(table, index));
      }
    }
    const index = tableIndex(va, leafLevel);
    const previous = this.readLow(table, index);
    if (this.present(space, previous)) {
      if (this.isLargeLeaf(previous, leafLevel) === false && leafLevel > 1) {
        // A table was here: replacing it with a leaf drops everything below it.
        this.freeSubtree(space, entryPfn(previous, this.readHigh(table, index)), leafLevel - 1);
      }
      this.bumpGeneration(space);
    }
    this.writeEntry(space, table, index, low, high);
  }

  /**
   * Replaces the large leaf at `table[index]` (a `level` entry) by a table of 512 smaller leaves with
   * the same permissions; returns the new table. Used to map or unmap part of a large page, and by
   * confidential-VM code that splits private pages out of the direct map.
   */
  private splitEntry(space: number, table: number, index: number, level: number): number {
    const low = this.readLow(table, index);
    const high = this.readHigh(table, index);
    assert(this.isLargeLeaf(low, level), 'only a large leaf can be split');
    const child = this.allocTable(space);
    const firstPfn = entryPfn(low, high);
    const childLevel = level - 1;
    const pagesPerChild = levelBytes[childLevel] / pageBytes;
    const permissionLow = (low & ~0xfffff000 & ~X86Bit.ps & ~(X86Bit.accessed | X86Bit.dirty)) >>> 0;
    const cleanLow = this.isEpt(space)
      ? (low & ~0xfffff000 & ~EptBit.ps & ~(EptBit.accessed | EptBit.dirty)) >>> 0
      : permissionLow;
    const childPs = childLevel > 1 ? X86Bit.ps : 0;
    const highFlags = (high & ~0x000fffff) >>> 0;
    for (let i = 0; i < pageTableEntries; i++) {
      const pfn = firstPfn + i * pagesPerChild;
      this.writeEntry(
        space,
        child,
        i,
        (pfnLow(pfn) | cleanLow | childPs) >>> 0,
        (pfnHigh(pfn) | highFlags) >>> 0,
      );
    }
    this.writeEntry(space, table, index, this.tableEntryLow(space, child), pfnHigh(child));
    this.bumpGeneration(space);
    return child;
  }

  /** Splits any large page covering `va` in `space` down to 4 KiB pages. Returns true if it split. */
  splitToBasePages(space: number, va: number): boolean {
    let table = this.rootOf(space);
    let split = false;
    for (let level = 4; level > 1; level--) {
      const index = tableIndex(va, level);
      const low = this.readLow(table, index);
      if (!this.present(space, low)) return split;
      if (this.isLargeLeaf(low, level)) {
        table = this.splitEntry(space, table, index, level);
        split = true;
      } else {
        table = entryPfn(low, this.readHigh(table, index));
      }
    }
    return split;
  }

  private freeSubtree(space: number, table: number, level: number): void {
    if (level > 1) {
      for (let i = 0; i < pageTableEntries; i++) {
        const low = this.readLow(table, i);
        if (this.present(space, low) && !this.isLargeLeaf(low, level)) {
          const child = entryPfn(low, this.readHigh(table, i));
          if (this.ownerOfTable(child) === space) this.freeSubtree(space, child, level - 1);
        }
      }
    }
    this.freeTable(space, table);
  }

  /** Unmaps [va, va + bytes). Returns the number of 4 KiB pages that were mapped there. */
  unmap(space: number, va: number, bytes: number = pageBytes): number {
    return this.clearRange(space, va, bytes);
  }

  /**
   * Clears every mapping in [vaStart, vaStart + bytes): whole leaves inside the range are cleared,
   * large leaves that straddle an edge are split first, and tables left empty are returned to the
   * pool. Only tables owned by `space` are written; a shared table (vmm:N's kernel half) is never
   * cleared through another address space (INV-6). Bumps the TLB generation so TLBs drop stale entries.
   */
  clearRange(space: number, vaStart: number, bytes: number): number {
    assert(vaStart % pageBytes === 0 && bytes % pageBytes === 0, 'clearRange works on whole pages');
    assert(vaStart >= 0 && vaStart + bytes <= vaLimit, 'range inside 48 bits');
    if (bytes === 0) return 0;
    const cleared = this.clearIn(space, this.rootOf(space), 4, 0, vaStart, vaStart + bytes);
    if (cleared > 0) this.bumpGeneration(space);
    return cleared;
  }

  private clearIn(
    space: number,
    table: number,
    level: number,
    tableVa: number,
    start: number,
    end: number,
  ): number {
    const span = levelBytes[level];
    const first = Math.max(0, Math.floor((start - tableVa) / span));
    const last = Math.min(pageTableEntries - 1, Math.floor((end - 1 - tableVa) / span));
    let cleared = 0;
    for (let index = first; index <= last; index++) {
      const low = this.readLow(table, index);
      if (!this.present(space, low)) continue;
      const entryVa = tableVa + index * span;
      const inside = entryVa >= start && entryVa + span <= end;
      if (level === 1 || this.isLargeLeaf(low, level)) {
        if (inside) {
          this.writeEntry(space, table, index, 0, 0);
          cleared += span / pageBytes;
          continue;
        }
        const child = this.splitEntry(space, table, index, level);
        cleared += this.clearIn(space, child, level - 1, entryVa, start, end);
        this.releaseIfEmpty(space, table, index, child);
        continue;
      }
      const child = entryPfn(low, this.readHigh(table, index));
      assert(this.ownerOfTable(child) === space, `INV-6: clearing ${space} would write a table it shares`);
      cleared += this.clearIn(space, child, level - 1, entryVa, start, end);
      this.releaseIfEmpty(space, table, index, child);
    }
    return cleared;
  }

  private releaseIfEmpty(space: number, table: number, index: number, child: number): void {
    const base = this.entryIndex(child, 0);
    for (let i = 0; i < pageTableI32s; i++) if (this.i32[base + i] !== 0) return;
    this.writeEntry(space, table, index, 0, 0);
    this.freeTable(space, child);
  }

  // ---- walks --------------------------------------------------------------------------------------

  /**
   * Walks `space` for `va` with `access` (Access bits). Returns the PFN of the 4 KiB frame holding
   * `va`, or a Fault code (< 0). With `setAccessedDirty` it sets A on every level and D on the leaf
   * for a write, as the hardware walker does; without it the walk is a functional, non-mutating read.
   */
  walk(space: number, va: number, access: number, setAccessedDirty: boolean): number {
    assertDebug(va >= 0 && va < vaLimit, 'walk: VA outside 48 bits');
    let table = this.rootOf(space);
    const ept = this.eptCache[space] === 1;
    const u32 = this.u32;
    // Plain loads: aligned 32-bit reads of a SharedArrayBuffer are tear-free; entries are written with
    // the present bits last (writeEntry), so a racing walk sees either the old or the new entry.
    let allowWrite = true;
    let allowUser = true;
    let allowExec = true;
    for (let level = 4; level >= 1; level--) {
      const at = this.poolBase + (table - this.poolFirstPfn) * pageTableI32s + tableIndex(va, level) * 2;
      const low = u32[at];
      const high = u32[at + 1];
      this.lastWalkLevel = level;
      if (ept) {
        if ((low & (EptBit.read | EptBit.write | EptBit.exec)) === 0) return Fault.notPresent;
        if ((low & EptBit.write) === 0) allowWrite = false;
        if ((low & EptBit.exec) === 0) allowExec = false;
      } else {
        if ((low & X86Bit.present) === 0) return Fault.notPresent;
        if ((low & X86Bit.rw) === 0) allowWrite = false;
        if ((low & X86Bit.us) === 0) allowUser = false;
        if ((high & x86NxHigh) !== 0) allowExec = false;
      }
      const leaf = level === 1 || (low & X86Bit.ps) !== 0;
      if (leaf) {
        if (access & Access.write && !allowWrite) return Fault.write;
        if (access & Access.user && !allowUser) return Fault.user;
        if (access & Access.exec && !allowExec) return Fault.exec;
        if (setAccessedDirty) {
          const accessed = ept ? EptBit.accessed : X86Bit.accessed;
          const dirty = ept ? EptBit.dirty : X86Bit.dirty;
          const wanted = access & Access.write ? accessed | dirty : accessed;
          if ((low & wanted) !== wanted) Atomics.or(this.u32, at, wanted);
        }
        const bytes = levelBytes[level];
        this.lastLeafBytes = bytes;
        this.lastWalkFlags =
          (allowWrite ? MapFlag.write : 0) |
          (allowUser && !ept ? MapFlag.user : 0) |
          (allowExec ? MapFlag.exec : 0) |
          (!ept && (low & X86Bit.global) !== 0 ? MapFlag.global : 0);
        return entryPfn(low, high) + Math.floor(modPowerOfTwo(va, bytes) / pageBytes);
      }
      if (setAccessedDirty) {
        const accessed = ept ? EptBit.accessed : X86Bit.accessed;
        if ((low & accessed) === 0) Atomics.or(this.u32, at, accessed);
      }
      table = entryPfn(low, high);
    }
    assert(false, 'a 4-level walk ends at level 1');
  }

  /** The walk as a record (for tests, reports and INV-7 fault records). Non-mutating. */
  translate(space: number, va: number, access: number = Access.read): Translation | PageFault {
    const result = this.walk(space, va, access, false);
    if (result < 0) {
      return {
        ok: false,
        addressSpace: space,
        va,
        access,
        reason:
          result === Fault.notPresent
            ? 'not-present'
            : result === Fault.write
              ? 'write-protect'
              : result === Fault.user
                ? 'user-supervisor'
                : 'no-execute',
        level: this.lastWalkLevel,
      };
    }
    return {
      ok: true,
      va,
      pfn: result,
      physicalAddress: result * pageBytes + (va % pageBytes),
      leafBytes: this.lastLeafBytes,
    };
  }

  /** Accessed and dirty bits of the leaf that maps `va` (functional read, for tests). */
  accessedDirty(space: number, va: number): { accessed: boolean; dirty: boolean } | null {
    const ept = this.isEpt(space);
    let table = this.rootOf(space);
    for (let level = 4; level >= 1; level--) {
      const index = tableIndex(va, level);
      const low = this.readLow(table, index);
      if (!this.present(space, low)) return null;
      if (level === 1 || this.isLargeLeaf(low, level)) {
        return {
          accessed: (low & (ept ? EptBit.accessed : X86Bit.accessed)) !== 0,
          dirty: (low & (ept ? EptBit.dirty : X86Bit.dirty)) !== 0,
        };
      }
      table = entryPfn(low, this.readHigh(table, index));
    }
    return null;
  }

  // ---- range operations ---------------------------------------------------------------------------

  /**
   * Calls `visit` for every leaf of `space` overlapping [start, end), in VA order. Non-mutating.
   */
  forEachLeaf(
    space: number,
    start: number,
    end: number,
    visit: (va: number, level: number, low: number, high: number) => void,
  ): void {
    this.leavesIn(space, this.rootOf(space), 4, 0, start, end, visit);
  }

  private leavesIn(
    space: number,
    table: number,
    level: number,
    tableVa: number,
    start: number,
    end: number,
    visit: (va: number, level: number, low: number, high: number) => void,
  ): void {
    const span = levelBytes[level];
    const first = Math.max(0, Math.floor((start - tableVa) / span));
    const last = Math.min(pageTableEntries - 1, Math.floor((end - 1 - tableVa) / span));
    for (let index = first; index <= last; index++) {
      const low = this.readLow(table, index);
      if (!this.present(space, low)) continue;
      const high = this.readHigh(table, index);
      const entryVa = tableVa + index * span;
      if (level === 1 || this.isLargeLeaf(low, level)) visit(entryVa, level, low, high);
      else this.leavesIn(space, entryPfn(low, high), level - 1, entryVa, start, end, visit);
    }
  }

  /**
   * Copies the mappings of [vaStart, vaStart + bytes) from `source` into `target`'s own tables, the
   * way the RFC builds the KVM page table (patches 09-18). A source leaf wholly inside the range is
   * copied at its size; a large leaf that straddles an edge is copied as 4 KiB pages of the part
   * inside, so the target never maps a byte outside the range (INV-5 depends on it). Only `target`'s
   * tables are written (INV-6). Returns the number of 4 KiB pages now mapped by the copy.
   */
  copyRange(target: number, source: number, vaStart: number, bytes: number): number {
    assert(target !== source, 'copyRange needs two address spaces');
    assert(this.isEpt(target) === this.isEpt(source), 'copyRange copies between tables of one format');
    assert(vaStart % pageBytes === 0 && bytes % pageBytes === 0, 'copyRange works on whole pages');
    const end = vaStart + bytes;
    let pages = 0;
    const leaves: [number, number, number, number][] = [];
    this.forEachLeaf(source, vaStart, end, (va, level, low, high) => leaves.push([va, level, low, high]));
    for (const [va, level, low, high] of leaves) {
      const span = levelBytes[level];
      const clean = this.isEpt(source)
        ? ~(EptBit.accessed | EptBit.dirty)
        : ~(X86Bit.accessed | X86Bit.dirty);
      if (va >= vaStart && va + span <= end) {
        this.writeLeaf(target, va, level, (low & clean) >>> 0, high);
        pages += span / pageBytes;
        continue;
      }
      const firstPfn = entryPfn(low, high);
      const from = Math.max(va, vaStart);
      const to = Math.min(va + span, end);
      const flags = this.flagsOf(source, low, high);
      for (let page = from; page < to; page += pageBytes) {
        this.map(target, page, firstPfn + (page - va) / pageBytes, flags);
        pages++;
      }
    }
    return pages;
  }

  /**
   * Points top-level entries [firstIndex, lastIndex] of `target` at the tables `source` uses there:
   * how every Linux process shares the kernel half. Only `target`'s root page is written.
   */
  shareTopLevel(target: number, source: number, firstIndex: number, lastIndex: number): number {
    assert(
      firstIndex >= 0 && lastIndex < pageTableEntries && firstIndex <= lastIndex,
      'top-level index range',
    );
    const sourceRoot = this.rootOf(source);
    const targetRoot = this.rootOf(target);
    let shared = 0;
    for (let index = firstIndex; index <= lastIndex; index++) {
      const low = this.readLow(sourceRoot, index);
      if (!this.present(source, low)) continue;
      this.writeEntry(target, targetRoot, index, low, this.readHigh(sourceRoot, index));
      shared++;
    }
    return shared;
  }

  /** Every mapping of `space`, coalesced into runs of contiguous VA and PFN with equal permissions. */
  listMapped(space: number, start = 0, end = vaLimit): MappedRange[] {
    const ranges: MappedRange[] = [];
    this.forEachLeaf(space, start, end, (va, level, low, high) => {
      const bytes = levelBytes[level];
      const flags = this.flagsOf(space, low, high);
      const pfn = entryPfn(low, high);
      const previous = ranges[ranges.length - 1];
      if (
        previous &&
        previous.leafBytes === bytes &&
        previous.vaStart + previous.pages * pageBytes === va &&
        previous.pfnStart + previous.pages === pfn &&
        flagsOfRange(previous) === (flags & ~MapFlag.uncached)
      ) {
        previous.pages += bytes / pageBytes;
        return;
      }
      ranges.push({
        vaStart: va,
        pfnStart: pfn,
        pages: bytes / pageBytes,
        leafBytes: bytes,
        writable: (flags & MapFlag.write) !== 0,
        user: (flags & MapFlag.user) !== 0,
        executable: (flags & MapFlag.exec) !== 0,
        global: (flags & MapFlag.global) !== 0,
      });
    });
    return ranges;
  }

  /** PFNs of the table pages owned by `space` (for INV-6 checksums). */
  tablePagesOf(space: number): number[] {
    const pages: number[] = [];
    for (let page = 0; page < this.poolPages; page++) {
      if (Atomics.load(this.i32, this.ownerBase + page) === space) pages.push(this.poolFirstPfn + page);
    }
    return pages;
  }

  /** FNV-1a over the words of every table page owned by `space`, page by page in pool order. */
  checksumTables(space: number): number {
    let hash = 0x811c9dc5;
    for (const pfn of this.tablePagesOf(space)) {
      const base = this.entryIndex(pfn, 0);
      hash = Math.imul(hash ^ pfn, 0x01000193);
      for (let i = 0; i < pageTableI32s; i++) hash = Math.imul(hash ^ this.i32[base + i], 0x01000193);
    }
    return hash >>> 0;
  }
}

function flagsOfRange(range: MappedRange): number {
  return (
    (range.writable ? MapFlag.write : 0) |
    (range.user ? MapFlag.user : 0) |
    (range.executable ? MapFlag.exec : 0) |
    (range.global ? MapFlag.global : 0)
  );
}
