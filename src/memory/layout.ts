import { assert } from '../assert.js';
import type { MachineConfig } from '../config/machine-config.js';
import { configBytesMax, machineBufferBytesMax, pageTableI32s, sectionAlignI32s } from '../constants.js';
import { ConfigError } from '../errors.js';
import { domainCount } from './domains.js';
import type { RegionPlan } from './regions.js';
import { fillBufferI32s, l1dI32s, predictorStrideI32s, rmpI32s } from './sub-layouts.js';

/**
 * The one module that owns the machine buffer's layout (STYLE.md habit 1), with sub-layouts.ts (the
 * layouts inside a core's record, the RMP's entries and the accelerated path's region). Every section is declared
 * here, starts where the previous one ended (rounded up to 64 bytes so cores do not false-share), and
 * is addressed through the named constants below. No other module computes an offset into the buffer
 * except relative to a section or record base it got from here.
 *
 * All sections are in 32-bit words: one Int32Array (and a Uint32Array alias for page-table entries)
 * views the whole buffer, so Atomics work everywhere.
 */

/** Bumped whenever a field moves: attachMachine refuses a buffer of another layout version. */
export const layoutVersion = 3;
/** 'ASIE' little-endian: marks a buffer made by createMachine. */
export const layoutMagic = 0x45495341;

/** Header words. */
export const HeaderField = {
  magic: 0,
  version: 1,
  totalI32s: 2,
  configBytes: 3,
  frameCount: 4,
  ptPoolPages: 5,
  ptPoolFirstPfn: 6,
  addressSpaceCount: 7,
  coreCount: 8,
  threadCount: 9,
  /** Next pool page to try when allocating a page-table page (a hint, not a lock). */
  ptAllocHint: 10,
  ptPagesUsed: 11,
  /** Run control for the workers backend: 0 run, 1 pause, 2 stop (RunState). */
  runState: 12,
  /** Workload exits taken by all hyperthreads so far (workers backend's exit budget). */
  workloadExits: 13,
  /** Hyperthread that hit an error, + 1 (0: none). */
  failedThread: 14,
  count: 16,
} as const;

export const RunState = { run: 0, pause: 1, stop: 2 } as const;

/** One record per address space. */
export const AddressSpaceField = {
  /** PFN of the top-level table (what CR3 / the EPT pointer holds). */
  rootPfn: 0,
  kind: 1,
  vmId: 2,
  /** Entry format: 0 = x86-64 paging, 1 = EPT. */
  format: 3,
  /** Bumped on every unmap: TLBs compare it with the generation they last saw (lazy shootdown). */
  tlbGeneration: 4,
  /** Page-table entries written by software (map/unmap/copy), for INV-6 accounting. */
  entryWrites: 5,
  tablePages: 6,
  count: 8,
} as const;

/** Per-core record: the core-state word and counters; the L1D and fill buffers follow it. */
export const CoreField = {
  /** Modes of all siblings, 4 bits each (DESIGN.md: a sibling's mode is read atomically). */
  state: 0,
  /** asi-stun: the core is stunned, no sibling may enter the guest. */
  stun: 1,
  /** Bumped on every L1D flush of this core. */
  flushCount: 2,
  count: 16,
} as const;

/** Per-hyperthread record; the TLB and its per-address-space generations follow it. */
export const ThreadField = {
  /** Address space currently loaded in CR3 (an address-space id). */
  cr3: 0,
  tlbHits: 1,
  tlbMisses: 2,
  tlbFlushes: 3,
  /** IPI mailbox: pending-vector bits (see kick/ipi.ts). */
  mailbox: 4,
  /** Bumped on every kick consumed in the guest (the acknowledgement some planted policies wait for). */
  kickAcks: 5,
  /** VM and vCPU running here (-1: none), set at machine start. */
  vmId: 6,
  vcpu: 7,
  count: 32,
} as const;

/**
 * Per-hyperthread statistics and clocks, as Float64 (cycle counts pass 2^31 quickly). Each is written
 * only by its own hyperthread, except `kickSentAtCycles`, which the kicker writes before setting the
 * mailbox bit. Read by the monitor, the backends and reports.
 */
export const ThreadStat = {
  clockCycles: 0,
  /** Cycles per mode, indexed from here by mode code (offline .. vmm). */
  modeCyclesBase: 1,
  exits: 8,
  /** Workload exits whose handler finished without leaving isolation. */
  exitsIsolatedOnly: 9,
  switchesToFull: 10,
  kicksSent: 11,
  kicksReceived: 12,
  l1dFlushes: 13,
  bufferClears: 14,
  faults: 15,
  guestSteps: 16,
  steps: 17,
  kickSentAtCycles: 18,
  interruptsHandled: 19,
  kickRetries: 20,
  entries: 21,
  vmmExits: 22,
  halts: 23,
  /** Guest cycles of useful work: the guest quanta, without the stalls of its cache misses. */
  guestUsefulCycles: 24,
  /** Workload exits whose handler finished after leaving isolation (full or vmm). */
  exitsLeftIsolation: 25,
  /**
   * Kicks found pending when the thread was already out of the guest (dropped at the next entry, or in
   * idle): a sibling kicked it as it left on its own, which is what two siblings kicking at once do.
   */
  kicksWhileOut: 26,
  /** Kick waits (after sending kicks, before the siblings are out) during which an interrupt was pending. */
  interruptsDuringKickWait: 27,
  /**
   * Guest progress in lone-thread cycles: guest cycles weighted by the SMT speed of the moment
   * (workload.smtSpeedup). The sim's timeline writes it at the end of a run; the workers backend adds
   * each quantum at the speed its core word shows.
   */
  guestWorkCycles: 28,
  /** Today's Linux ASI (linux-asi): IBPBs executed (each with its RSB fill). */
  ibpbs: 29,
  /** Today's Linux ASI: asi_exit for a page fault, inside an interrupt, at a context switch. */
  asiExitsPageFault: 30,
  asiExitsInterrupt: 31,
  asiExitsContextSwitch: 32,
  /** Today's Linux ASI: RSB fills executed. */
  rsbFills: 33,
  /** Faults per exit reason, indexed from here by catalogue index. */
  faultsByReasonBase: 36,
  count: 68,
} as const;

/** A TLB entry: 4 words. */
export const TlbEntryField = {
  /** addressSpaceId + 1 (0 = invalid) in bits 0..15, permission flags in bits 16..23. */
  tagFlags: 0,
  vpnLow: 1,
  vpnHigh: 2,
  pfn: 3,
  count: 4,
} as const;

export type SectionName =
  | 'header'
  | 'config'
  | 'frameOwner'
  | 'frameRegion'
  | 'ptPageOwner'
  | 'ptPool'
  | 'addressSpaces'
  | 'cores'
  | 'threads'
  | 'threadStats'
  | 'rmp'
  | 'predictors';

export interface Section {
  name: SectionName;
  offsetI32: number;
  lengthI32: number;
}

export interface Layout {
  sections: Record<SectionName, Section>;
  totalI32s: number;
  totalBytes: number;
  frameCount: number;
  ptPoolPages: number;
  ptPoolFirstPfn: number;
  addressSpaceCount: number;
  coreCount: number;
  threadCount: number;
  domainCount: number;
  /** Words per core record (core fields + L1D + fill buffers), a multiple of 16. */
  coreStrideI32s: number;
  coreL1dOffsetI32: number;
  coreFillBuffersOffsetI32: number;
  /** Words per thread record (fields + TLB + generations), a multiple of 16. */
  threadStrideI32s: number;
  threadTlbOffsetI32: number;
  threadTlbGenerationsOffsetI32: number;
  /** Words per core's branch predictor record (sub-layouts.ts), a multiple of 16. */
  predictorStrideI32s: number;
}

/** Address spaces: `kernel`, then per VM `kvm:N`, `guest:N` (EPT), `vmm:N`. */
export function addressSpaceCount(vmCount: number): number {
  return 1 + 3 * vmCount;
}

function alignUp(i32s: number): number {
  return Math.ceil(i32s / sectionAlignI32s) * sectionAlignI32s;
}

/**
 * The header and the stored config come first and do not depend on the config, so a thread that has
 * only the buffer can read the config from here and compute the rest (attachMachine).
 */
export const headerOffsetI32 = 0;
export const configOffsetI32 = alignUp(HeaderField.count);

export function computeLayout(config: MachineConfig, plan: RegionPlan): Layout {
  const coreCount = config.cores;
  const threadCount = config.cores * config.smt;
  const domains = domainCount(config.vms.length);
  const spaces = addressSpaceCount(config.vms.length);

  const coreL1dOffsetI32 = alignUp(CoreField.count);
  const l1dWords = l1dI32s({
    sets: config.l1d.sets,
    ways: config.l1d.ways,
    replacement: config.l1d.replacement,
    domainCount: domains,
  });
  const coreFillBuffersOffsetI32 = alignUp(coreL1dOffsetI32 + l1dWords);
  const coreStrideI32s = alignUp(
    coreFillBuffersOffsetI32 + fillBufferI32s(config.fillBufferEntries, domains),
  );

  const threadTlbOffsetI32 = alignUp(ThreadField.count);
  const threadTlbGenerationsOffsetI32 = alignUp(threadTlbOffsetI32 + config.tlbEntries * TlbEntryField.count);
  const threadStrideI32s = alignUp(threadTlbGenerationsOffsetI32 + spaces);

  const lengths: [SectionName, number][] = [
    ['header', HeaderField.count],
    ['config', configBytesMax / 4],
    ['frameOwner', plan.totalFrames],
    ['frameRegion', plan.totalFrames],
    ['ptPageOwner', config.pageTablePoolPages],
    ['ptPool', config.pageTablePoolPages * pageTableI32s],
    ['addressSpaces', spaces * AddressSpaceField.count],
    ['cores', coreCount * coreStrideI32s],
    ['threads', threadCount * threadStrideI32s],
    ['threadStats', threadCount * ThreadStat.count * 2],
    // SNP's reverse map: one entry per physical frame (sub-layouts.ts, coco/rmp.ts).
    ['rmp', rmpI32s(plan.totalFrames)],
    // Today's ASI's branch predictors, one record per core (sub-layouts.ts). Last, so that no section
    // before it moved when it came.
    ['predictors', coreCount * predictorStrideI32s(config.smt)],
  ];
  const sections = {} as Record<SectionName, Section>;
  let offsetI32 = 0;
  for (const [name, lengthI32] of lengths) {
    sections[name] = { name, offsetI32, lengthI32 };
    offsetI32 = alignUp(offsetI32 + lengthI32);
  }
  const layout: Layout = {
    sections,
    totalI32s: offsetI32,
    totalBytes: offsetI32 * 4,
    frameCount: plan.totalFrames,
    ptPoolPages: config.pageTablePoolPages,
    ptPoolFirstPfn: plan.ptPoolFirstPfn,
    addressSpaceCount: spaces,
    coreCount,
    threadCount,
    domainCount: domains,
    coreStrideI32s,
    coreL1dOffsetI32,
    coreFillBuffersOffsetI32,
    threadStrideI32s,
    threadTlbOffsetI32,
    threadTlbGenerationsOffsetI32,
    predictorStrideI32s: predictorStrideI32s(config.smt),
  };
  if (layout.totalBytes >= machineBufferBytesMax) {
    // The schema's maxima keep memory and the page-table pool inside; many large cores, L1Ds or TLBs
    // together can still pass it, and that is the user's config, not a bug.
    throw new ConfigError(
      'machine',
      `a machine whose buffer stays under ${machineBufferBytesMax / 2 ** 30} GiB: use fewer or smaller cores (l1d, tlbEntries), less memoryMiB or fewer pageTablePoolPages`,
      `${(layout.totalBytes / 2 ** 30).toFixed(1)} GiB`,
    );
  }
  assertLayout(layout);
  assert(sections.header.offsetI32 === headerOffsetI32, 'the header is the first section');
  assert(sections.config.offsetI32 === configOffsetI32, 'the config section follows the header');
  return layout;
}

/** Alignment, non-overlap and total size, checked once at load (STYLE.md habit 1). */
function assertLayout(layout: Layout): void {
  const ordered = Object.values(layout.sections).sort((a, b) => a.offsetI32 - b.offsetI32);
  let end = 0;
  for (const section of ordered) {
    assert(section.offsetI32 % sectionAlignI32s === 0, `section ${section.name} is not 64-byte aligned`);
    assert(section.offsetI32 >= end, `section ${section.name} overlaps the previous section`);
    assert(section.lengthI32 >= 0, `section ${section.name} has a negative length`);
    end = section.offsetI32 + section.lengthI32;
  }
  assert(end <= layout.totalI32s, 'sections run past the end of the buffer');
  assert(layout.coreStrideI32s % sectionAlignI32s === 0, 'core records are padded to 64 bytes');
  assert(layout.threadStrideI32s % sectionAlignI32s === 0, 'thread records are padded to 64 bytes');
  assert(layout.sections.ptPool.offsetI32 % (pageTableI32s / 64) === 0, 'page-table pool starts aligned');
  assert(
    Number.isSafeInteger(layout.totalBytes) && layout.totalBytes < 2 ** 32,
    'machine buffer stays under 4 GiB',
  );
}

/** Word index of field `field` of core `core`. */
export function coreFieldIndex(layout: Layout, core: number, field: number): number {
  return layout.sections.cores.offsetI32 + core * layout.coreStrideI32s + field;
}

/** Word index of the first word of core `core`'s branch predictor record. */
export function corePredictorIndex(layout: Layout, core: number): number {
  return layout.sections.predictors.offsetI32 + core * layout.predictorStrideI32s;
}

/** Word index of field `field` of hyperthread `thread`. */
export function threadFieldIndex(layout: Layout, thread: number, field: number): number {
  return layout.sections.threads.offsetI32 + thread * layout.threadStrideI32s + field;
}

/** Float64 index of statistic `stat` of hyperthread `thread` (for a Float64Array over the buffer). */
export function threadStatIndex(layout: Layout, thread: number, stat: number): number {
  return layout.sections.threadStats.offsetI32 / 2 + thread * ThreadStat.count + stat;
}

/** Word index of field `field` of address space `space`. */
export function addressSpaceFieldIndex(layout: Layout, space: number, field: number): number {
  return layout.sections.addressSpaces.offsetI32 + space * AddressSpaceField.count + field;
}
