import { assert, assertDebug } from '../assert.js';
import { pageBytes } from '../constants.js';
import { HeaderField, type Layout, ThreadField, TlbEntryField, threadFieldIndex } from '../memory/layout.js';
import { Access, MapFlag } from './entry-format.js';
import type { PageTables } from './page-table.js';

/**
 * A hyperthread's TLB: set-associative, entries tagged by address space (PCID for host address
 * spaces, VPID for the EPT). With PCID a CR3 switch keeps other tags' entries; without PCID it drops
 * every non-global entry, as a CR3 write does on hardware (Intel SDM Vol. 3A, 4.10.4.1).
 *
 * Shootdown is lazy, by generation: an unmap bumps its address space's generation (page-table.ts);
 * a TLB compares it with the generation it last saw for that tag before using any entry of the tag,
 * and drops them all when it moved. The owning thread alone writes its TLB, so no lock is needed, and
 * an unmap in one thread can never leave another thread's TLB translating the old frame.
 */
const TlbFlag = {
  write: 1,
  user: 2,
  exec: 4,
  global: 8,
  /** The leaf's dirty bit is already set, so a write hit need not walk again. */
  dirty: 16,
} as const;
const tagMask = 0xffff;
const flagShift = 16;
const vpnSplit = 2 ** 30;

export interface TlbGeometry {
  entries: number;
  ways: number;
  pcid: boolean;
}

export class Tlb {
  private readonly entriesBase: number;
  private readonly generationsBase: number;
  private readonly sets: number;
  private readonly cr3Index: number;
  private readonly hitsIndex: number;
  private readonly missesIndex: number;
  private readonly flushesIndex: number;

  constructor(
    private readonly i32: Int32Array,
    layout: Layout,
    private readonly tables: PageTables,
    readonly thread: number,
    private readonly geometry: TlbGeometry,
  ) {
    assert(geometry.entries % geometry.ways === 0, 'TLB entries are a multiple of its ways');
    assert(thread >= 0 && thread < layout.threadCount, `thread ${thread} out of range`);
    assert(
      layout.sections.header.offsetI32 + HeaderField.count <= layout.sections.config.offsetI32,
      'header fits',
    );
    const record = threadFieldIndex(layout, thread, 0);
    this.entriesBase = record + layout.threadTlbOffsetI32;
    this.generationsBase = record + layout.threadTlbGenerationsOffsetI32;
    this.sets = geometry.entries / geometry.ways;
    this.cr3Index = threadFieldIndex(layout, thread, ThreadField.cr3);
    this.hitsIndex = threadFieldIndex(layout, thread, ThreadField.tlbHits);
    this.missesIndex = threadFieldIndex(layout, thread, ThreadField.tlbMisses);
    this.flushesIndex = threadFieldIndex(layout, thread, ThreadField.tlbFlushes);
  }

  /** The address space in CR3. */
  get cr3(): number {
    return Atomics.load(this.i32, this.cr3Index);
  }

  /** A CR3 write. Returns true when it flushed (no PCID). */
  switchTo(space: number): boolean {
    Atomics.store(this.i32, this.cr3Index, space);
    if (this.geometry.pcid) return false;
    this.dropWhere((tagFlags) => ((tagFlags >>> flagShift) & TlbFlag.global) === 0);
    return true;
  }

  /** Drops every entry (INVPCID all-context, or a full flush). */
  flushAll(): void {
    this.dropWhere(() => true);
  }

  private dropWhere(match: (tagFlags: number) => boolean): void {
    const end = this.entriesBase + this.geometry.entries * TlbEntryField.count;
    for (let at = this.entriesBase; at < end; at += TlbEntryField.count) {
      const tagFlags = this.i32[at + TlbEntryField.tagFlags];
      if (tagFlags !== 0 && match(tagFlags)) this.i32[at + TlbEntryField.tagFlags] = 0;
    }
    this.i32[this.flushesIndex]++;
  }

  /**
   * Translates `va` in `space` for `access`: a PFN, or a Fault code (< 0) from the walk. Hits when an
   * entry of this tag (or a global one, for host spaces) allows the access.
   */
  translate(space: number, va: number, access: number): number {
    const generation = this.tables.tlbGeneration(space);
    if (this.i32[this.generationsBase + space] !== generation) {
      const tag = space + 1;
      this.dropWhere((tagFlags) => (tagFlags & tagMask) === tag);
      this.i32[this.generationsBase + space] = generation;
    }
    const vpn = Math.floor(va / pageBytes);
    const vpnLow = vpn % vpnSplit;
    const vpnHigh = (vpn - vpnLow) / vpnSplit;
    const set = vpnLow % this.sets;
    const setBase = this.entriesBase + set * this.geometry.ways * TlbEntryField.count;
    const tag = space + 1;
    const ept = this.tables.isEpt(space);
    for (let way = 0; way < this.geometry.ways; way++) {
      const at = setBase + way * TlbEntryField.count;
      const tagFlags = this.i32[at];
      if (tagFlags === 0) continue;
      const flags = tagFlags >>> flagShift;
      const tagMatches = (tagFlags & tagMask) === tag || (!ept && (flags & TlbFlag.global) !== 0);
      if (
        !tagMatches ||
        this.i32[at + TlbEntryField.vpnLow] !== vpnLow ||
        this.i32[at + TlbEntryField.vpnHigh] !== vpnHigh
      ) {
        continue;
      }
      if (this.permits(flags, access)) {
        this.i32[this.hitsIndex]++;
        return this.i32[at + TlbEntryField.pfn];
      }
      // A permission miss (or the first write to a clean page) walks again, as hardware does.
      this.i32[at] = 0;
      break;
    }
    this.i32[this.missesIndex]++;
    const pfn = this.tables.walk(space, va, access, true);
    if (pfn < 0) return pfn;
    this.fill(setBase, tag, vpnLow, vpnHigh, pfn, this.tables.lastWalkFlags, access);
    return pfn;
  }

  private permits(flags: number, access: number): boolean {
    if (
      access & Access.write &&
      (flags & (TlbFlag.write | TlbFlag.dirty)) !== (TlbFlag.write | TlbFlag.dirty)
    )
      return false;
    if (access & Access.user && (flags & TlbFlag.user) === 0) return false;
    if (access & Access.exec && (flags & TlbFlag.exec) === 0) return false;
    return true;
  }

  private fill(
    setBase: number,
    tag: number,
    vpnLow: number,
    vpnHigh: number,
    pfn: number,
    mapFlags: number,
    access: number,
  ): void {
    assertDebug(pfn >= 0, 'only a successful walk fills the TLB');
    let flags = 0;
    if (mapFlags & MapFlag.write) flags |= TlbFlag.write;
    if (mapFlags & MapFlag.user) flags |= TlbFlag.user;
    if (mapFlags & MapFlag.exec) flags |= TlbFlag.exec;
    if (mapFlags & MapFlag.global) flags |= TlbFlag.global;
    if (access & Access.write) flags |= TlbFlag.dirty;
    let victim = -1;
    for (let way = 0; way < this.geometry.ways; way++) {
      if (this.i32[setBase + way * TlbEntryField.count] === 0) {
        victim = way;
        break;
      }
    }
    if (victim < 0) victim = this.i32[this.missesIndex] % this.geometry.ways;
    const at = setBase + victim * TlbEntryField.count;
    this.i32[at + TlbEntryField.vpnLow] = vpnLow;
    this.i32[at + TlbEntryField.vpnHigh] = vpnHigh;
    this.i32[at + TlbEntryField.pfn] = pfn;
    this.i32[at + TlbEntryField.tagFlags] = tag | (flags << flagShift);
  }

  /** Valid entries (for tests and reports). */
  validEntries(): number {
    let count = 0;
    for (let entry = 0; entry < this.geometry.entries; entry++) {
      if (this.i32[this.entriesBase + entry * TlbEntryField.count] !== 0) count++;
    }
    return count;
  }

  stats(): { hits: number; misses: number; flushes: number } {
    return {
      hits: this.i32[this.hitsIndex],
      misses: this.i32[this.missesIndex],
      flushes: this.i32[this.flushesIndex],
    };
  }
}
