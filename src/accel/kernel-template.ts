import { assert } from '../assert.js';
import { linesPerPage } from '../constants.js';
import { TlbEntryField } from '../memory/layout.js';
import {
  CacheDescriptorWord,
  fillBufferEntryI32s,
  fillBufferEntryLineInPageI32,
  fillBufferEntryOwnerI32,
  fillBufferFilterBuckets,
  fillBufferHeaderI32s,
  fillBufferNextSlotI32,
  fillBufferValidLinesI32,
  frameHashMultiplier,
  KernelDescriptorWord,
  l1dClockI32,
  l1dHeaderI32s,
  l1dHintSlots,
  l1dLineI32s,
  l1dLineInPageI32,
  l1dLineOwnerI32,
  l1dLinePfnI32,
  l1dLineStampI32,
  l1dStampMax,
  l1dValidLinesI32,
  l1dWayBits,
  l1dWaysMax,
  StretchResultWord,
  sfc32AreaDraws,
  sfc32StateI32s,
} from '../memory/sub-layouts.js';
import { TlbFlag, tlbFlagShift, tlbTagMask } from '../paging/tlb.js';
import { simArenaPagesMax } from './sim-arena.js';

/**
 * access-kernel.wat is a template: its offsets and layout constants are `{{name}}` placeholders, filled
 * at build time (`npm run build:wasm`; test/accel/access-kernel-build.test.ts renders it and checks the
 * compiled bytes in access-kernel-wasm.ts) from the one declaration of the layouts (memory/layout.ts,
 * memory/sub-layouts.ts) and the TLB entry format (paging/tlb.ts). A word moved there moves in the
 * kernel at the next build; nothing is kept in step by an assert at load.
 */

const wordBytes = Int32Array.BYTES_PER_ELEMENT;
const v128Bytes = 16;

/** Byte offsets of an object's words (`{ name: word }`), under `prefix.name`. */
function wordOffsets(prefix: string, words: Record<string, number>): [string, number][] {
  return Object.entries(words).map(([name, word]) => [`${prefix}.${name}`, word * wordBytes]);
}

/**
 * The kernel's code assumes what the layouts cannot vary without a rewrite of its loops: a line of the
 * L1D is one v128 (its SIMD scan transposes four ways), a TLB entry is four words, a way fits an LRU key.
 * Checked when the template is rendered, at build time.
 */
function checkShapes(): void {
  assert(l1dLineI32s * wordBytes === v128Bytes, 'kernel: an L1D line is one v128 (the SIMD scan)');
  assert(
    l1dLinePfnI32 === 0 && TlbEntryField.tagFlags === 0 && TlbEntryField.count === 4,
    'kernel: a line starts with its frame, a TLB entry with its tag, 4 words',
  );
  assert(l1dWaysMax <= 32 && l1dWayBits === 5, 'kernel: a way fits the 5 bits of an LRU key and a PLRU word');
  assert(
    l1dValidLinesI32 === fillBufferValidLinesI32,
    'kernel: both buffers keep the valid-line total in the same word',
  );
  assert(sfc32StateI32s === 4, 'kernel: sfc32 has four state words');
  assert(linesPerPage === 2 ** Math.log2(linesPerPage), 'kernel: lines per page is a power of two');
}

/** Every placeholder of access-kernel.wat and its value. */
export function accessKernelTemplateValues(): Map<string, number> {
  checkShapes();
  return new Map<string, number>([
    ['memoryPagesMax', simArenaPagesMax],
    ...wordOffsets('cache', CacheDescriptorWord),
    ...wordOffsets('thread', KernelDescriptorWord),
    ...wordOffsets('stretchResult', StretchResultWord),
    // The counts follow the header; the kernel indexes them by owner = domain + 1.
    ['l1d.validLines', l1dValidLinesI32 * wordBytes],
    ['l1d.clock', l1dClockI32 * wordBytes],
    ['l1d.countsLessOne', (l1dHeaderI32s - 1) * wordBytes],
    ['l1d.hintSlotsLog2', Math.log2(l1dHintSlots)],
    ['l1d.hintShift', 32 - Math.log2(l1dHintSlots)],
    ['l1dLine.lineInPage', l1dLineInPageI32 * wordBytes],
    ['l1dLine.owner', l1dLineOwnerI32 * wordBytes],
    ['l1dLine.stamp', l1dLineStampI32 * wordBytes],
    ['l1dLine.next1', 1 * l1dLineI32s * wordBytes],
    ['l1dLine.next2', 2 * l1dLineI32s * wordBytes],
    ['l1dLine.next3', 3 * l1dLineI32s * wordBytes],
    ['l1dStampMax', l1dStampMax],
    ['linesPerPageLog2', Math.log2(linesPerPage)],
    ['linesPerPage', linesPerPage],
    ['frameHashMultiplier', frameHashMultiplier],
    ['fillBuffers.validLines', fillBufferValidLinesI32 * wordBytes],
    ['fillBuffers.nextSlot', fillBufferNextSlotI32 * wordBytes],
    ['fillBuffers.countsLessOne', (fillBufferHeaderI32s - 1) * wordBytes],
    ['fillBuffers.filterBytes', fillBufferFilterBuckets * wordBytes],
    ['fillBuffers.filterMask', fillBufferFilterBuckets - 1],
    ['fillBuffers.filterShift', 32 - Math.log2(fillBufferFilterBuckets)],
    ['fillEntry.lineInPage', fillBufferEntryLineInPageI32 * wordBytes],
    ['fillEntry.owner', fillBufferEntryOwnerI32 * wordBytes],
    ['fillEntry.bytes', fillBufferEntryI32s * wordBytes],
    ['tlbEntry.vpnLow', TlbEntryField.vpnLow * wordBytes],
    ['tlbEntry.vpnHigh', TlbEntryField.vpnHigh * wordBytes],
    ['tlbEntry.pfn', TlbEntryField.pfn * wordBytes],
    ['tlb.flagShift', tlbFlagShift],
    ['tlb.tagMask', tlbTagMask],
    ['tlb.global', TlbFlag.global],
    ['sfc32AreaDraws', sfc32AreaDraws],
    ['sfc32State.b', 1 * wordBytes],
    ['sfc32State.c', 2 * wordBytes],
    ['sfc32State.d', 3 * wordBytes],
    // Unrolled loops' steps: the 2nd to 4th v128 of a 64-byte group, and the four doubles of a turn.
    ['vector.1', v128Bytes],
    ['vector.2', 2 * v128Bytes],
    ['vector.3', 3 * v128Bytes],
    ['draw.0', 0],
    ['draw.1', Float64Array.BYTES_PER_ELEMENT],
    ['draw.2', 2 * Float64Array.BYTES_PER_ELEMENT],
    ['draw.3', 3 * Float64Array.BYTES_PER_ELEMENT],
  ]);
}

/** The template with every placeholder filled (hexadecimal above 0xffff, as masks and hashes read). */
export function renderAccessKernelWat(template: string): string {
  const values = accessKernelTemplateValues();
  const used = new Set<string>();
  const text = template.replace(/\{\{([\w.]+)\}\}/g, (_, name: string) => {
    const value = values.get(name);
    assert(value !== undefined && Number.isSafeInteger(value), `access-kernel.wat: no value for {{${name}}}`);
    used.add(name);
    return value > 0xffff ? `0x${value.toString(16)}` : String(value);
  });
  const unused = [...values.keys()].filter((name) => !used.has(name));
  assert(unused.length === 0, `access-kernel.wat: values it does not use: ${unused.join(', ')}`);
  return text;
}
