import { assert, assertDebugEnabled } from './assert.js';
import {
  type DescriptorView,
  descriptorI32s,
  type GuestAccessKernel,
  KernelDescriptorWord,
  type KernelSeat,
  type LineAccessKernel,
  type Sfc32Area,
  sfc32AreaDraws,
  type ZeroWordsKernel,
} from './cache/access-kernel.js';
import { CoreCaches } from './cache/core-caches.js';
import { CoreFillBuffers } from './cache/fill-buffers.js';
import { CoreL1d } from './cache/l1d.js';
import { Rmp } from './coco/rmp.js';
import {
  type MachineConfig,
  type MachineConfigInput,
  pageTablePoolPagesDefault,
  parseMachineConfig,
  vcpuPinning,
} from './config/machine-config.js';
import { machineInputOf, type RunConfig, type RunConfigInput } from './config/run-config.js';
import { configBytesMax } from './constants.js';
import { CapacityError, ConfigError } from './errors.js';
import { domainCount, domainName } from './memory/domains.js';
import { FrameTable } from './memory/frames.js';
import {
  computeLayout,
  configOffsetI32,
  coreFieldIndex,
  HeaderField,
  headerOffsetI32,
  type Layout,
  layoutMagic,
  layoutVersion,
} from './memory/layout.js';
import { planRegions, type Region, type RegionPlan } from './memory/regions.js';
import {
  allocateSimRegion,
  holdSimRegion,
  isSimArenaBuffer,
  releaseSimRegion,
  type SimRegion,
} from './memory/sim-arena.js';
import {
  addressSpaceName,
  buildGuestSpace,
  buildKernelSpace,
  buildKvmSpace,
  buildVmmSpace,
  type RegionAddresses,
  regionAddresses,
  tableDomainOf,
} from './paging/address-space.js';
import { PageTables, pageTablePoolResource } from './paging/page-table.js';
import { Tlb } from './paging/tlb.js';

/**
 * The machine: one SharedArrayBuffer and the typed views over it, created once (STYLE.md, v86).
 * `createMachine` builds it from a config (validated before anything is allocated);
 * `attachMachine(buffer)` in another worker makes the same views over the same memory, reading the
 * config the creator stored in the buffer, and builds nothing.
 */
export class Machine {
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  /** Float64 view of the same buffer, for per-thread statistics and clocks. */
  readonly f64: Float64Array;
  readonly frames: FrameTable;
  readonly pageTables: PageTables;
  readonly l1d: CoreL1d[];
  readonly fillBuffers: CoreFillBuffers[];
  /** Each core's data-cache path (L1D, then fill buffers): what a hyperthread's accesses go through. */
  readonly caches: CoreCaches[];
  readonly tlbs: Tlb[];
  /** Hyperthread of each vCPU, per VM. */
  readonly pinning: number[][];
  readonly addresses: RegionAddresses[];
  /** SNP's reverse map, one entry per frame (all unassigned until a confidential VM converts pages). */
  readonly rmp: Rmp;
  /** Where the machine begins in `buffer`. */
  readonly byteOffset: number;
  /** The machine's place in its thread's sim arena, or null (a buffer of its own). */
  private readonly simRegion: SimRegion | null;
  /**
   * The access kernel's guest read and handler line access (TLB, owner, caches in one call) for the
   * machine's threads, or null where the machine has no kernel (its own buffer, or ASI_EMU_DEBUG=1).
   */
  readonly guestAccess: GuestAccessKernel | null;
  readonly lineAccess: LineAccessKernel | null;
  /**
   * Where the sim's PRNG can keep its state and draws for the kernel to make its batches (a machine in
   * a sim arena, one run at a time), or null.
   */
  readonly prngArea: Sfc32Area | null;
  /** Where thread 0's kernel descriptor is in the kernel's memory (Int32 index): after the layout. */
  private readonly kernelDescriptorsI32Index: number;
  /** The kernel's `zeroWords` over the memory that holds the machine, or null. */
  private readonly zeroWords: ZeroWordsKernel | null;
  /** Where index 0 of `i32` is in that memory (Int32 words). */
  private readonly memoryI32Offset: number;

  constructor(
    /**
     * The buffer that holds the machine, at `byteOffset`: the whole of it, except for a sim machine in
     * its thread's arena (memory/sim-arena.ts), which only that thread uses (attach a machine made with
     * `concurrent: true` from another thread, never an arena's).
     */
    readonly buffer: SharedArrayBuffer,
    readonly config: MachineConfig,
    readonly plan: RegionPlan,
    readonly layout: Layout,
    /** false when one thread drives every hyperthread (the sim): core-buffer locks are skipped. */
    readonly concurrent = true,
    /**
     * Where the machine is in a sim arena (memory/sim-arena.ts), whose access kernel its caches then use;
     * null: the machine is the whole of `buffer`.
     */
    region: SimRegion | null = null,
  ) {
    const byteOffset = region === null ? 0 : region.byteOffset;
    this.byteOffset = byteOffset;
    // The access kernel for the machine's parts, or null: a machine with a buffer of its own, or a debug
    // run (ASI_EMU_DEBUG=1), whose asserts only the JavaScript reference has.
    const kernels = region === null || assertDebugEnabled ? null : region.kernels;
    const memoryI32Offset = byteOffset / Int32Array.BYTES_PER_ELEMENT;
    this.simRegion = region;
    assert(
      region === null
        ? buffer.byteLength === layout.totalBytes
        : region.byteLength === simRegionBytes(layout),
      'buffer size matches the layout',
    );
    assert(region === null || !concurrent, 'only a machine one thread drives lives in a sim arena');
    this.i32 = new Int32Array(buffer, byteOffset, layout.totalI32s);
    this.u32 = new Uint32Array(buffer, byteOffset, layout.totalI32s);
    this.f64 = new Float64Array(buffer, byteOffset, layout.totalBytes / Float64Array.BYTES_PER_ELEMENT);
    this.frames = new FrameTable(this.i32, layout, plan.regions, concurrent);
    this.pageTables = new PageTables(this.i32, this.u32, layout, this.frames, tableDomainOf);
    const domains = domainCount(config.vms.length);
    const geometry = {
      sets: config.l1d.sets,
      ways: config.l1d.ways,
      replacement: config.l1d.replacement,
      domainCount: domains,
    };
    // The kernel's part of a sim region after the machine (simRegionParts): descriptors and the PRNG area.
    const parts = simRegionParts(layout);
    const descriptorAt = (at: number): DescriptorView => ({
      words: new Int32Array(buffer, byteOffset + at * Int32Array.BYTES_PER_ELEMENT, descriptorI32s),
      i32Index: memoryI32Offset + at,
    });
    this.l1d = [];
    this.fillBuffers = [];
    this.caches = [];
    for (let core = 0; core < layout.coreCount; core++) {
      const base = coreFieldIndex(layout, core, 0);
      // The core's seat at the kernel: its cache descriptor, whose words its L1D and fill buffers write.
      const seat: KernelSeat | null =
        kernels === null
          ? null
          : {
              kernels,
              memoryI32Offset,
              descriptor: descriptorAt(parts.cacheDescriptorsI32 + core * descriptorI32s),
            };
      this.l1d.push(new CoreL1d(this.i32, base + layout.coreL1dOffsetI32, geometry, concurrent, seat));
      this.fillBuffers.push(
        new CoreFillBuffers(
          this.i32,
          base + layout.coreFillBuffersOffsetI32,
          config.fillBufferEntries,
          domains,
          concurrent,
          seat,
        ),
      );
      this.caches.push(new CoreCaches(this.l1d[core], this.fillBuffers[core], seat));
    }
    this.kernelDescriptorsI32Index = memoryI32Offset + parts.threadDescriptorsI32;
    this.tlbs = [];
    for (let thread = 0; thread < layout.threadCount; thread++) {
      // The thread's descriptor: the frame owners and its core's caches here, its TLB's words by the Tlb.
      let descriptor: DescriptorView | null = null;
      if (kernels !== null) {
        descriptor = descriptorAt(parts.threadDescriptorsI32 + thread * descriptorI32s);
        descriptor.words[KernelDescriptorWord.frameOwners] =
          memoryI32Offset + layout.sections.frameOwner.offsetI32;
        descriptor.words[KernelDescriptorWord.cacheDescriptor] =
          this.caches[this.coreOf(thread)].descriptorI32Index;
      }
      this.tlbs.push(
        new Tlb(
          this.i32,
          layout,
          this.pageTables,
          thread,
          { entries: config.tlbEntries, ways: config.tlbWays, pcid: config.pcid },
          concurrent,
          kernels === null ? null : kernels.translate,
          memoryI32Offset,
          descriptor,
        ),
      );
    }
    this.zeroWords = kernels === null ? null : kernels.zeroWords;
    this.memoryI32Offset = memoryI32Offset;
    this.guestAccess = kernels === null ? null : kernels.guestAccess;
    this.lineAccess = kernels === null ? null : kernels.lineAccess;
    if (kernels === null) this.prngArea = null;
    else {
      const state = descriptorAt(parts.prngStateI32);
      const drawsAt = memoryI32Offset + parts.prngDrawsI32;
      assert(drawsAt % 2 === 0, 'the PRNG draws are 8-byte aligned');
      this.prngArea = {
        sfc32: kernels.sfc32,
        state: state.words.subarray(0, 4),
        stateI32Index: state.i32Index,
        ahead: new Float64Array(buffer, byteOffset + parts.prngDrawsI32 * 4, sfc32AreaDraws),
        aheadF64Index: drawsAt / 2,
      };
    }
    this.pinning = vcpuPinning(config);
    this.rmp = new Rmp(this.i32, layout.sections.rmp.offsetI32, layout.frameCount);
    this.addresses = regionAddresses(plan);
  }

  /**
   * Done with the machine: a sim machine's region goes back to its thread's arena now rather than when
   * the garbage collector gets to it (memory/sim-arena.ts says why that matters). Nothing may use the
   * machine or its views after. Does nothing for a machine with a buffer of its own.
   */
  dispose(): void {
    if (this.simRegion !== null) releaseSimRegion(this.simRegion);
  }

  /** Where thread `thread`'s kernel descriptor is in the kernel's memory (where `guestAccess` is not null). */
  kernelDescriptorI32Index(thread: number): number {
    return this.kernelDescriptorsI32Index + thread * descriptorI32s;
  }

  get threadCount(): number {
    return this.layout.threadCount;
  }

  coreOf(thread: number): number {
    return Math.floor(thread / this.config.smt);
  }

  /** The region instance named `name` (`kernel-text`, `vcpu-struct:0/1`, ...). */
  region(name: string): Region {
    const found = this.plan.regions.find((region) => region.name === name);
    if (!found)
      throw new ConfigError('region', `one of ${this.plan.regions.map((r) => r.name).join(', ')}`, name);
    return found;
  }

  /** The kernel VA through which `region` is reached (alias window or direct map). */
  regionVa(region: Region): number {
    return this.addresses[region.id].va;
  }

  /**
   * Clears everything a run changes — core words, L1Ds and fill buffers, TLBs, mailboxes, statistics —
   * and keeps what was built (frames, page tables). Lets one machine serve many runs (policy
   * comparisons, fuzz cases) without rebuilding its page tables.
   */
  resetDynamicState(): void {
    const { cores, threads, threadStats, rmp } = this.layout.sections;
    for (const section of [cores, rmp, threads, threadStats]) {
      // The kernel's memory.fill where there is one: `fill` over a shared buffer stores a word at a time.
      if (this.zeroWords !== null)
        this.zeroWords(this.memoryI32Offset + section.offsetI32, section.lengthI32);
      else this.i32.fill(0, section.offsetI32, section.offsetI32 + section.lengthI32);
    }
  }

  /** A plain-data summary of what was built (for `npm start` and tests). */
  summary(): MachineSummary {
    const owners = this.frames.ownerHistogram();
    return {
      cores: this.config.cores,
      smt: this.config.smt,
      threads: this.threadCount,
      vms: this.config.vms.map((vm, vmId) => ({
        vcpus: vm.vcpus,
        pinnedTo: this.pinning[vmId],
        guestMemoryMiB: vm.guestMemoryMiB,
      })),
      bufferBytes: this.layout.totalBytes,
      frames: this.layout.frameCount,
      framesByOwner: Object.fromEntries(
        [...owners.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([domain, count]) => [domainName(domain), count]),
      ),
      regions: this.plan.regions.map((region) => ({
        name: region.name,
        owner: domainName(region.owner),
        firstPfn: region.firstPfn,
        frames: region.frames,
        inKvmAddressSpace: region.inKvmAddressSpace,
      })),
      addressSpaces: Array.from({ length: this.layout.addressSpaceCount }, (_, space) => {
        const mapped = this.pageTables.listMapped(space);
        return {
          name: addressSpaceName(space),
          mappedPages: mapped.reduce((sum, range) => sum + range.pages, 0),
          ranges: mapped.length,
          tablePages: this.pageTables.tablePageCount(space),
        };
      }),
      pageTablePagesUsed: Atomics.load(
        this.i32,
        this.layout.sections.header.offsetI32 + HeaderField.ptPagesUsed,
      ),
      pageTablePoolPages: this.layout.ptPoolPages,
      l1d: {
        sets: this.config.l1d.sets,
        ways: this.config.l1d.ways,
        replacement: this.config.l1d.replacement,
        bytes: this.config.l1d.sets * this.config.l1d.ways * 64,
      },
      tlbEntries: this.config.tlbEntries,
      pcid: this.config.pcid,
    };
  }
}

export interface MachineSummary {
  cores: number;
  smt: number;
  threads: number;
  vms: { vcpus: number; pinnedTo: number[]; guestMemoryMiB: number }[];
  bufferBytes: number;
  frames: number;
  framesByOwner: Record<string, number>;
  regions: { name: string; owner: string; firstPfn: number; frames: number; inKvmAddressSpace: boolean }[];
  addressSpaces: { name: string; mappedPages: number; ranges: number; tablePages: number }[];
  pageTablePagesUsed: number;
  pageTablePoolPages: number;
  l1d: { sets: number; ways: number; replacement: string; bytes: number };
  tlbEntries: number;
  pcid: boolean;
}

/** Validates the config (ConfigError naming the field), then allocates and builds the machine. */
export interface MachineOptions {
  /** Hyperthreads of this machine run in several threads (default true); the sim passes false. */
  concurrent?: boolean;
}

/**
 * Builds a machine from a machine config, or from a run config (`{ machine, workload, costs, run }`,
 * parsed or not), whose `machine` it uses; the run's other sections are for `runSim`/`runWorkers`.
 */
export function createMachine(
  configInput: MachineConfigInput | RunConfigInput | RunConfig | unknown = {},
  options: MachineOptions = {},
): Machine {
  const input = machineInputOf(configInput);
  const config = parseMachineConfig(input);
  const plan = planRegions(config);
  const layout = computeLayout(config, plan);
  const configBytes = new TextEncoder().encode(JSON.stringify(config));
  if (configBytes.byteLength > configBytesMax) {
    throw new ConfigError(
      'machine',
      `a config of at most ${configBytesMax} bytes as JSON`,
      configBytes.byteLength,
    );
  }
  // Everything above can fail on user input; nothing was allocated yet. A machine one thread drives (the
  // sim's) goes in the thread's sim arena when it fits, for the access kernel (memory/sim-arena.ts).
  const concurrent = options.concurrent ?? true;
  const region = concurrent ? null : allocateSimRegion(simRegionBytes(layout));
  const buffer = region === null ? new SharedArrayBuffer(layout.totalBytes) : region.buffer;
  const byteOffset = region === null ? 0 : region.byteOffset;
  const i32 = new Int32Array(buffer, byteOffset, layout.totalI32s);
  const header = layout.sections.header.offsetI32;
  i32[header + HeaderField.magic] = layoutMagic;
  i32[header + HeaderField.version] = layoutVersion;
  i32[header + HeaderField.totalI32s] = layout.totalI32s;
  i32[header + HeaderField.configBytes] = configBytes.byteLength;
  i32[header + HeaderField.frameCount] = layout.frameCount;
  i32[header + HeaderField.ptPoolPages] = layout.ptPoolPages;
  i32[header + HeaderField.ptPoolFirstPfn] = layout.ptPoolFirstPfn;
  i32[header + HeaderField.addressSpaceCount] = layout.addressSpaceCount;
  i32[header + HeaderField.coreCount] = layout.coreCount;
  i32[header + HeaderField.threadCount] = layout.threadCount;
  new Uint8Array(buffer, byteOffset + layout.sections.config.offsetI32 * 4, configBytes.byteLength).set(
    configBytes,
  );

  let machine: Machine;
  try {
    machine = new Machine(buffer, config, plan, layout, concurrent, region);
  } catch (error) {
    if (region !== null) releaseSimRegion(region);
    throw error;
  }
  if (region !== null) holdSimRegion(region, [machine, machine.i32, machine.u32, machine.f64]);
  try {
    buildPageTables(machine);
  } catch (error) {
    machine.dispose();
    if (error instanceof CapacityError && error.resource === pageTablePoolResource) {
      throw poolTooSmall(input, config.pageTablePoolPages);
    }
    throw error;
  }
  return machine;
}

/**
 * Where the kernel's parts of a sim machine's region begin (Int32 indices from the region's start, each
 * 64-byte aligned): after the machine, each thread's descriptor, each core's cache descriptor
 * (access-kernel.wat), then the sim PRNG's state (4 words, padded) and its draws (`Machine.prngArea`).
 */
function simRegionParts(layout: Layout): {
  threadDescriptorsI32: number;
  cacheDescriptorsI32: number;
  prngStateI32: number;
  prngDrawsI32: number;
  endI32: number;
} {
  const threadDescriptorsI32 = layout.totalI32s;
  const cacheDescriptorsI32 = threadDescriptorsI32 + layout.threadCount * descriptorI32s;
  const prngStateI32 = cacheDescriptorsI32 + layout.coreCount * descriptorI32s;
  const prngDrawsI32 = prngStateI32 + descriptorI32s;
  const endI32 = prngDrawsI32 + sfc32AreaDraws * 2;
  return { threadDescriptorsI32, cacheDescriptorsI32, prngStateI32, prngDrawsI32, endI32 };
}

/** A sim machine's region: the machine, then the kernel's parts (simRegionParts). */
export function simRegionBytes(layout: Layout): number {
  return simRegionParts(layout).endI32 * Int32Array.BYTES_PER_ELEMENT;
}

function buildPageTables(machine: Machine): void {
  const { config, plan } = machine;
  machine.frames.initialize();
  machine.pageTables.initializePool();
  // Fixed build order (gem5): kernel first (kvm:N copies from it, vmm:N shares its upper half).
  buildKernelSpace(machine.pageTables, config, plan);
  config.vms.forEach((_, vmId) => {
    buildKvmSpace(machine.pageTables, plan, vmId);
    buildGuestSpace(machine.pageTables, plan, vmId);
    buildVmmSpace(machine.pageTables, plan, vmId);
  });
}

/**
 * The machine's page tables did not fit its pool: a config error naming the field and the size they take,
 * measured by building them once more with a pool of the schema's default (or, if that is too small as
 * well, without the size). Only the page tables' size tells; the layout alone does not.
 */
function poolTooSmall(input: unknown, poolPages: number): ConfigError {
  const measurePages = Math.max(pageTablePoolPagesDefault, poolPages * 4);
  let needed: number | null = null;
  try {
    const measured = createMachine(
      { ...(input as object), pageTablePoolPages: measurePages },
      { concurrent: false },
    );
    needed = 0;
    for (let space = 0; space < measured.layout.addressSpaceCount; space++) {
      needed += measured.pageTables.tablePageCount(space);
    }
    measured.dispose();
  } catch {
    needed = null;
  }
  const accepted =
    needed === null
      ? `more pages: the page tables of this machine do not fit in ${poolPages}`
      : `at least ${needed}: the page tables of this machine take ${needed} pages when built (more for mappings made at run time)`;
  return new ConfigError('machine.pageTablePoolPages', accepted, poolPages);
}

/** Views over a buffer made by `createMachine` (in this or another thread). Builds nothing. */
export function attachMachine(buffer: SharedArrayBuffer): Machine {
  assert(buffer instanceof SharedArrayBuffer, 'attachMachine takes the SharedArrayBuffer of a machine');
  assert(
    !isSimArenaBuffer(buffer),
    'attachMachine takes the buffer of a machine made with concurrent: true (a sim machine shares its arena)',
  );
  const i32 = new Int32Array(buffer);
  const header = headerOffsetI32;
  assert(i32[header + HeaderField.magic] === layoutMagic, 'not a machine buffer (bad magic)');
  const version = i32[header + HeaderField.version];
  assert(version === layoutVersion, `machine buffer layout version ${version}, expected ${layoutVersion}`);
  const configBytes = i32[header + HeaderField.configBytes];
  const text = new TextDecoder().decode(new Uint8Array(buffer, configOffsetI32 * 4, configBytes).slice());
  const config = parseMachineConfig(JSON.parse(text));
  const plan = planRegions(config);
  const layout = computeLayout(config, plan);
  assert(layout.totalI32s === i32[header + HeaderField.totalI32s], 'the stored config gives the same layout');
  assert(layout.frameCount === i32[header + HeaderField.frameCount], 'same frame count');
  return new Machine(buffer, config, plan, layout);
}
