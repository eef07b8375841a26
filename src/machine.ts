import { isSimArenaBuffer } from './accel/sim-arena.js';
import { assert } from './assert.js';
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
import {
  type AccessPath,
  type AccessPathProvider,
  type MachinePlace,
  referenceAccess,
  referencePlace,
} from './cpu/access-path.js';
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
import { kernelRegionLayout } from './memory/sub-layouts.js';
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
  /**
   * The hot memory path (cpu/access-path.ts): the reference, or the accelerated one where the backend
   * asked for it and it could serve the machine. Hyperthreads make their accesses and flushes through it.
   */
  readonly access: AccessPath;
  /** Where the machine's words live (its place gives them back on `dispose`). */
  private readonly place: MachinePlace;

  constructor(
    /**
     * The buffer that holds the machine, at `byteOffset`: the whole of it, except for a machine on the
     * accelerated path, in its thread's sim arena (accel/sim-arena.ts), which only that thread uses
     * (attach a machine made with `concurrent: true` from another thread, never an arena's).
     */
    readonly buffer: SharedArrayBuffer,
    readonly config: MachineConfig,
    readonly plan: RegionPlan,
    readonly layout: Layout,
    /** false when one thread drives every hyperthread (the sim): shared words need no Atomics. */
    readonly concurrent = true,
    /** Where the machine's words are and which access path serves it (default: the reference's own buffer). */
    place: MachinePlace = referencePlace(buffer),
  ) {
    const byteOffset = place.byteOffset;
    this.byteOffset = byteOffset;
    this.place = place;
    assert(place.buffer === buffer, 'the machine is in its place');
    assert(buffer.byteLength >= byteOffset + layout.totalBytes, 'the buffer holds the layout');
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
    this.l1d = [];
    this.fillBuffers = [];
    this.caches = [];
    for (let core = 0; core < layout.coreCount; core++) {
      const base = coreFieldIndex(layout, core, 0);
      this.l1d.push(new CoreL1d(this.i32, base + layout.coreL1dOffsetI32, geometry));
      this.fillBuffers.push(
        new CoreFillBuffers(
          this.i32,
          base + layout.coreFillBuffersOffsetI32,
          config.fillBufferEntries,
          domains,
        ),
      );
      this.caches.push(new CoreCaches(this.l1d[core], this.fillBuffers[core]));
    }
    this.tlbs = [];
    for (let thread = 0; thread < layout.threadCount; thread++) {
      this.tlbs.push(
        new Tlb(
          this.i32,
          layout,
          this.pageTables,
          thread,
          { entries: config.tlbEntries, ways: config.tlbWays, pcid: config.pcid },
          concurrent,
        ),
      );
    }
    this.pinning = vcpuPinning(config);
    this.rmp = new Rmp(this.i32, layout.sections.rmp.offsetI32, layout.frameCount);
    this.addresses = regionAddresses(plan);
    this.access = place.bind(this);
  }

  /**
   * Done with the machine: a sim machine's region goes back to its thread's arena now rather than when
   * the garbage collector gets to it (accel/sim-arena.ts says why that matters). Nothing may use the
   * machine or its views after. Does nothing for a machine with a buffer of its own.
   */
  dispose(): void {
    this.place.release();
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
   * Clears everything a run changes — core words, L1Ds and fill buffers, TLBs, mailboxes, statistics,
   * today's ASI's branch predictors —
   * and keeps what was built (frames, page tables). Lets one machine serve many runs (policy
   * comparisons, fuzz cases) without rebuilding its page tables.
   */
  resetDynamicState(): void {
    const { cores, threads, threadStats, rmp, predictors } = this.layout.sections;
    for (const section of [cores, rmp, threads, threadStats, predictors])
      this.access.zeroWords(section.offsetI32, section.lengthI32);
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
  /**
   * The hot memory path (cpu/access-path.ts, docs/backends.md), picked by the backend: the sim passes
   * `acceleratedAccess` (`createSimMachine`), the workers backend `referenceAccess`. Default: the
   * reference. A path that cannot serve the machine (the accelerated path of a concurrent or debug
   * machine, or one its arena cannot hold) leaves it the reference.
   */
  access?: AccessPathProvider;
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
  // Everything above can fail on user input; nothing was allocated yet. The path the backend asked for
  // places the machine (the accelerated one in the thread's sim arena), or the reference does.
  const concurrent = options.concurrent ?? true;
  const provider = options.access ?? referenceAccess;
  const place = provider.place(layout, concurrent) ?? referenceAccess.place(layout, concurrent);
  assert(place !== null, 'the reference path places every machine');
  const { buffer, byteOffset } = place;
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
    machine = new Machine(buffer, config, plan, layout, concurrent, place);
  } catch (error) {
    place.release();
    throw error;
  }
  place.hold([machine, machine.i32, machine.u32, machine.f64]);
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

/** A sim machine's region on the accelerated path: the machine, then the kernel's parts (memory/sub-layouts.ts). */
export function simRegionBytes(layout: Layout): number {
  return (
    kernelRegionLayout(layout.totalI32s, layout.threadCount, layout.coreCount).endI32 *
    Int32Array.BYTES_PER_ELEMENT
  );
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
