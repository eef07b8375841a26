import { assert } from '../assert.js';
import {
  AddressSpaceField,
  addressSpaceFieldIndex,
  type Layout,
  ThreadField,
  threadFieldIndex,
} from '../memory/layout.js';
import {
  CacheDescriptorWord,
  descriptorI32s,
  fillBufferLayout,
  KernelDescriptorWord,
  type L1dGeometry,
  l1dLayout,
  l1dLineI32s,
  l1dPageMask,
} from '../memory/sub-layouts.js';

/**
 * The access kernel's descriptors (memory/sub-layouts.ts declares their words): a core's cache
 * descriptor and a thread's, written once when a machine is bound to the accelerated path. Every word is
 * derived from the machine's layout and config, never from a model class: the classes hold no kernel.
 *
 * Indices are Int32 indices of the machine's `i32` view; `memoryI32Offset` is where index 0 of that view
 * is in the kernel's memory. The kernel takes byte addresses of the cache parts, Int32 indices of the rest.
 */

function byteAddress(memoryI32Offset: number, i32Index: number): number {
  return (memoryI32Offset + i32Index) * Int32Array.BYTES_PER_ELEMENT;
}

/** The cache descriptor of a core whose L1D begins at `l1dI32Index` and fill buffers at `fillBuffersI32Index`. */
export function writeCacheDescriptor(
  words: Int32Array,
  memoryI32Offset: number,
  l1dI32Index: number,
  geometry: L1dGeometry,
  fillBuffersI32Index: number,
  fillBufferEntries: number,
): void {
  assert(words.length >= descriptorI32s, 'a descriptor is whole');
  const l1d = l1dLayout(geometry);
  const word = CacheDescriptorWord;
  words[word.l1d] = byteAddress(memoryI32Offset, l1dI32Index);
  words[word.setMask] = geometry.sets - 1;
  words[word.pageMask] = l1dPageMask(geometry.sets);
  words[word.setBytes] = geometry.ways * l1dLineI32s * Int32Array.BYTES_PER_ELEMENT;
  words[word.lines] = byteAddress(memoryI32Offset, l1dI32Index + l1d.linesI32Offset);
  words[word.hints] = byteAddress(memoryI32Offset, l1dI32Index + l1d.hintsI32Offset);
  words[word.setState] = byteAddress(memoryI32Offset, l1dI32Index + l1d.setStateI32Offset);
  words[word.ways] = geometry.ways;
  words[word.plru] = geometry.replacement === 'plru' ? 1 : 0;
  // With 0 entries the section has no words: the kernel's `access` then skips the buffers, and the
  // path's flush returns before the kernel.
  const fill = fillBufferLayout(fillBufferEntries, geometry.domainCount);
  words[word.fillBuffers] = byteAddress(memoryI32Offset, fillBuffersI32Index);
  words[word.fillBufferEntries] = fillBufferEntries;
  words[word.fillBufferFirst] = byteAddress(memoryI32Offset, fillBuffersI32Index + fill.entriesI32Offset);
  words[word.fillBufferFilter] = byteAddress(memoryI32Offset, fillBuffersI32Index + fill.filterI32Offset);
}

/** The geometry of a thread's TLB (machine config `tlbEntries`, `tlbWays`). */
export interface TlbShape {
  entries: number;
  ways: number;
}

/**
 * The descriptor of hyperthread `thread`: its TLB (the entries and generations after its record,
 * layout.ts), the page tables' generations (one per address-space record), its hit counter, the frame
 * owners, and its core's cache descriptor (`cacheDescriptorI32Index`, already in the kernel's memory).
 */
export function writeThreadDescriptor(
  words: Int32Array,
  memoryI32Offset: number,
  layout: Layout,
  thread: number,
  tlb: TlbShape,
  cacheDescriptorI32Index: number,
): void {
  assert(words.length >= descriptorI32s, 'a descriptor is whole');
  const sets = tlb.entries / tlb.ways;
  assert(Number.isInteger(sets) && sets > 0 && (sets & (sets - 1)) === 0, 'TLB sets are a power of two');
  const record = threadFieldIndex(layout, thread, 0);
  const generation0 = addressSpaceFieldIndex(layout, 0, AddressSpaceField.tlbGeneration);
  const word = KernelDescriptorWord;
  words[word.tlbEntries] = memoryI32Offset + record + layout.threadTlbOffsetI32;
  words[word.tlbSetMask] = sets - 1;
  words[word.tlbWays] = tlb.ways;
  words[word.seenGenerations] = memoryI32Offset + record + layout.threadTlbGenerationsOffsetI32;
  words[word.generation0] = memoryI32Offset + generation0;
  words[word.generationStride] = AddressSpaceField.count;
  words[word.tlbHits] = memoryI32Offset + threadFieldIndex(layout, thread, ThreadField.tlbHits);
  words[word.frameOwners] = memoryI32Offset + layout.sections.frameOwner.offsetI32;
  words[word.cacheDescriptor] = cacheDescriptorI32Index;
}
