import { assert, assertDebug } from '../assert.js';
import { pageBytes } from '../constants.js';
import { HeaderField, type Layout, ThreadField, TlbEntryField, threadFieldIndex } from '../memory/layout.js';
import { loadWord, storeWord } from '../memory/words.js';
import { Access, MapFlag } from './entry-format.js';
import type { PageTables } from './page-table.js';
import { modPowerOfTwo } from './va-layout.js';

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
export const TlbFlag = {
  write: 1,
  user: 2,
  exec: 4,
  global: 8,
  /** The leaf's dirty bit is already set, so a write hit need not walk again. */
  dirty: 16,
} as const;
/** An entry's tag word: address space + 1 in bits 0..15, the TlbFlag bits from bit 16 (tlbFlagShift). */
export const tlbTagMask = 0xffff;
const tagMask = tlbTagMask;
// The entry layout as `translate` reads it.
const tagFlagsWord = TlbEntryField.tagFlags;
const vpnLowWord = TlbEntryField.vpnLow;
const vpnHighWord = TlbEntryField.vpnHigh;
const pfnWord = TlbEntryField.pfn;
const entryWords = TlbEntryField.count;
const accessWrite = Access.write;
const accessUser = Access.user;
const accessExec = Access.exec;
export const tlbFlagShift = 16;
const flagShift = tlbFlagShift;
const vpnSplit = 2 ** 30;
/** A CR3 write without PCID keeps global entries only (a module function: no closure per switch). */
function isNonGlobal(tagFlags: number): boolean {
  return ((tagFlags >>> flagShift) & TlbFlag.global) === 0;
}

export interface TlbGeometry {
  entries: number;
  ways: number;
  pcid: boolean;
}

export class Tlb {
  private readonly entriesBase: number;
  private readonly generationsBase: number;
  /** sets - 1: entries and ways are powers of two (machine config), so sets is one too. */
  private readonly setMask: number;
  private readonly cr3Index: number;
  private readonly hitsIndex: number;
  private readonly missesIndex: number;
  private readonly flushesIndex: number;
  /** Words of one set. */
  private readonly setI32s: number;

  private readonly i32: Int32Array;
  private readonly tables: PageTables;
  readonly thread: number;
  private readonly geometry: TlbGeometry;
  private readonly atomic: boolean;

  constructor(
    i32: Int32Array,
    layout: Layout,
    tables: PageTables,
    thread: number,
    geometry: TlbGeometry,
    /** Machine.concurrent: CR3 is read by monitors in other threads (memory/words.ts). */
    atomic = true,
  ) {
    this.i32 = i32;
    this.tables = tables;
    this.thread = thread;
    this.geometry = geometry;
    this.atomic = atomic;
    assert(geometry.entries % geometry.ways === 0, 'TLB entries are a multiple of its ways');
    assert(thread >= 0 && thread < layout.threadCount, `thread ${thread} out of range`);
    assert(
      layout.sections.header.offsetI32 + HeaderField.count <= layout.sections.config.offsetI32,
      'header fits',
    );
    const record = threadFieldIndex(layout, thread, 0);
    this.entriesBase = record + layout.threadTlbOffsetI32;
    this.generationsBase = record + layout.threadTlbGenerationsOffsetI32;
    const sets = geometry.entries / geometry.ways;
    assert(sets > 0 && (sets & (sets - 1)) === 0, 'TLB sets are a power of two');
    this.setMask = sets - 1;
    this.setI32s = geometry.ways * entryWords;
    this.cr3Index = threadFieldIndex(layout, thread, ThreadField.cr3);
    this.hitsIndex = threadFieldIndex(layout, thread, ThreadField.tlbHits);
    this.missesIndex = threadFieldIndex(layout, thread, ThreadField.tlbMisses);
    this.flushesIndex = threadFieldIndex(layout, thread, ThreadField.tlbFlushes);
  }

  /** The address space in CR3. */
  get cr3(): number {
    return loadWord(this.i32, this.cr3Index, this.atomic);
  }

  /** A CR3 write. Returns true when it flushed (no PCID). */
  switchTo(space: number): boolean {
    storeWord(this.i32, this.cr3Index, space, this.atomic);
    if (this.geometry.pcid) return false;
    this.dropWhere(isNonGlobal);
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
    // Divisions by powers of two are exact on doubles (va < 2^48); `%` on a double VPN would be a call
    // to fmod, the slowest part of a hit.
    const vpn = Math.floor(va / pageBytes);
    return this.translatePage(space, modPowerOfTwo(vpn, vpnSplit), Math.floor(vpn / vpnSplit), access);
  }

  /**
   * `translate` of the page vpnHigh x 2^30 + vpnLow (both below 2^30): for callers that hold page
   * numbers (a guest's physical pages), which then skip the divisions. The reference the accelerated
   * path's TLB hit transcribes (accel/access-kernel.wat `translate`).
   */
  translatePage(space: number, vpnLow: number, vpnHigh: number, access: number): number {
    const generation = this.tables.tlbGeneration(space);
    if (this.i32[this.generationsBase + space] !== generation) this.shootDown(space, generation);
    const set = vpnLow & this.setMask;
    const setBase = this.entriesBase + set * this.setI32s;
    const setEnd = setBase + this.setI32s;
    const tag = space + 1;
    const i32 = this.i32;
    // The page first, both words in one test: the ways of one address space differ only in their page,
    // so a tag test first passes often and its branch mispredicts (measured in profiles of sim runs).
    const vpnLowBits = vpnLow | 0;
    const vpnHighBits = vpnHigh | 0;
    for (let at = setBase; at < setEnd; at += entryWords) {
      if (((i32[at + vpnLowWord] ^ vpnLowBits) | (i32[at + vpnHighWord] ^ vpnHighBits)) !== 0) continue;
      const tagFlags = i32[at + tagFlagsWord];
      if (tagFlags === 0) continue;
      const flags = tagFlags >>> flagShift;
      // Another space's entry serves only if global, and never for an EPT (asked only then: a hit on
      // the space's own entry, the common case, skips the question).
      if ((tagFlags & tagMask) !== tag && ((flags & TlbFlag.global) === 0 || this.tables.isEpt(space)))
        continue;
      if (this.permits(flags, access)) {
        i32[this.hitsIndex]++;
        return i32[at + pfnWord];
      }
      // A permission miss (or the first write to a clean page) walks again, as hardware does.
      i32[at + tagFlagsWord] = 0;
      break;
    }
    return this.miss(space, (vpnHigh * vpnSplit + vpnLow) * pageBytes, access, setBase, vpnLow, vpnHigh);
  }

  // The rare paths of `translate`, which runs at every guest memory access.

  /** The space's generation moved since this TLB last looked (an unmap): drop the space's entries. */
  private shootDown(space: number, generation: number): void {
    const tag = space + 1;
    this.dropWhere((tagFlags) => (tagFlags & tagMask) === tag);
    this.i32[this.generationsBase + space] = generation;
  }

  private miss(
    space: number,
    va: number,
    access: number,
    setBase: number,
    vpnLow: number,
    vpnHigh: number,
  ): number {
    this.i32[this.missesIndex]++;
    const pfn = this.tables.walk(space, va, access, true);
    if (pfn < 0) return pfn;
    this.fill(setBase, space + 1, vpnLow, vpnHigh, pfn, this.tables.lastWalkFlags, access);
    return pfn;
  }

  private permits(flags: number, access: number): boolean {
    if (access & accessWrite && (flags & (TlbFlag.write | TlbFlag.dirty)) !== (TlbFlag.write | TlbFlag.dirty))
      return false;
    if (access & accessUser && (flags & TlbFlag.user) === 0) return false;
    if (access & accessExec && (flags & TlbFlag.exec) === 0) return false;
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
