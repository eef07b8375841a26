import { assert } from '../assert.js';
import type { MachineConfig } from '../config/machine-config.js';
import { largePage2MBytes, memoryMiBMax, pageBytes } from '../constants.js';
import { ConfigError } from '../errors.js';
import { domainHost, domainKvm, domainPublic, vmDomain } from './domains.js';

/**
 * The physical memory plan: named regions laid out in frames of the right owners (DESIGN.md
 * "Domains"). Each region starts where the previous one ended (Firecracker style), except guest
 * memory and the page-table pool, which start on a 2 MiB boundary so they can be mapped with large
 * pages and converted in 2 MiB units.
 *
 * Sizes are small on purpose (the emulator needs a frame to exist and have an owner, not the real
 * byte count) but keep the real proportions of a KVM host: struct kvm is vmalloc'ed (tens of KiB),
 * a vCPU (struct vcpu_vmx + VMCS) is a few pages, an IRQ stack is 16 KiB (IRQ_STACK_SIZE on x86-64).
 */
export type RegionKind =
  | 'kernel-text'
  | 'entry-area'
  | 'irq-stack'
  | 'percpu-kvm'
  | 'percpu'
  | 'kvm-module'
  | 'page-cache'
  | 'keys'
  | 'other-processes'
  | 'vmm-heap'
  | 'vm-struct'
  | 'vcpu-struct'
  | 'memslots'
  | 'io-bus'
  | 'guest-memory'
  | 'page-tables'
  | 'free';

/** How many instances a region kind has: one, one per hyperthread, per VM, or per vCPU. */
type RegionScope = 'global' | 'per-thread' | 'per-vm' | 'per-vcpu';

interface RegionKindSpec {
  kind: RegionKind;
  scope: RegionScope;
  /** Owner of the region's frames; for per-VM kinds, `vm` means vm:N of that VM. */
  owner: 'public' | 'kvm' | 'host' | 'vm';
  /** What the RFC's KVM address space maps of it (copied from the kernel page table). */
  inKvmAddressSpace: boolean;
  description: string;
}

/** The catalogue, in physical order. */
export const regionKinds: readonly RegionKindSpec[] = [
  {
    kind: 'kernel-text',
    scope: 'global',
    owner: 'public',
    inKvmAddressSpace: true,
    description: 'kernel text and rodata',
  },
  {
    kind: 'entry-area',
    scope: 'per-thread',
    owner: 'public',
    inKvmAddressSpace: true,
    description: 'cpu_entry_area: GDT, TSS, entry stacks',
  },
  {
    kind: 'irq-stack',
    scope: 'per-thread',
    owner: 'public',
    inKvmAddressSpace: true,
    description: 'IRQ stack (16 KiB), mapped so interrupts can be taken in isolation',
  },
  {
    kind: 'percpu-kvm',
    scope: 'per-thread',
    owner: 'kvm',
    inKvmAddressSpace: true,
    description: 'per-CPU variables KVM needs in isolation (current task, loaded VMCS)',
  },
  {
    kind: 'percpu',
    scope: 'per-thread',
    owner: 'host',
    inKvmAddressSpace: false,
    description: 'the rest of the per-CPU area',
  },
  {
    kind: 'kvm-module',
    scope: 'global',
    owner: 'kvm',
    inKvmAddressSpace: true,
    description: 'kvm.ko and kvm-intel.ko text and data',
  },
  {
    kind: 'page-cache',
    scope: 'global',
    owner: 'host',
    inKvmAddressSpace: false,
    description: 'host page cache (secret)',
  },
  {
    kind: 'keys',
    scope: 'global',
    owner: 'host',
    inKvmAddressSpace: false,
    description: 'kernel keyring and crypto keys (secret)',
  },
  {
    kind: 'other-processes',
    scope: 'global',
    owner: 'host',
    inKvmAddressSpace: false,
    description: 'memory of other host processes (secret)',
  },
  {
    kind: 'vmm-heap',
    scope: 'per-vm',
    owner: 'host',
    inKvmAddressSpace: false,
    description: "the VMM process's own memory (counts as secret)",
  },
  {
    kind: 'vm-struct',
    scope: 'per-vm',
    owner: 'vm',
    inKvmAddressSpace: true,
    description: 'struct kvm (vmalloc)',
  },
  {
    kind: 'vcpu-struct',
    scope: 'per-vcpu',
    owner: 'vm',
    inKvmAddressSpace: true,
    description: 'struct vcpu_vmx and its VMCS',
  },
  {
    kind: 'memslots',
    scope: 'per-vm',
    owner: 'vm',
    inKvmAddressSpace: true,
    description: 'memslot metadata (kvm_memslots, dirty bitmaps)',
  },
  {
    kind: 'io-bus',
    scope: 'per-vm',
    owner: 'vm',
    inKvmAddressSpace: true,
    description: 'MMIO/PIO buses (kvm_io_bus) and in-kernel devices',
  },
  {
    kind: 'guest-memory',
    scope: 'per-vm',
    owner: 'vm',
    inKvmAddressSpace: true,
    description: 'guest RAM (host-physical frames behind the EPT)',
  },
  {
    kind: 'page-tables',
    scope: 'global',
    owner: 'host',
    inKvmAddressSpace: false,
    description: 'page-table page pool; each page takes its address space owner',
  },
];

export interface Region {
  kind: RegionKind;
  /** Unique name: `kernel-text`, `irq-stack/3`, `vm-struct:0`, `vcpu-struct:0/1`. */
  name: string;
  /** Dense index into the region table (stored per frame). */
  id: number;
  owner: number;
  firstPfn: number;
  frames: number;
  /** VM for per-VM and per-vCPU regions, else -1. */
  vmId: number;
  /** Hyperthread for per-thread regions, vCPU index for per-vCPU regions, else -1. */
  index: number;
  inKvmAddressSpace: boolean;
}

const mib = 1024 * 1024;
const framesPerMiB = mib / pageBytes;
const framesPer2M = largePage2MBytes / pageBytes;

/** Frames of one instance of each region kind. */
function instanceFrames(kind: RegionKind, config: MachineConfig, vmId: number): number {
  switch (kind) {
    case 'kernel-text':
      return 512; // 2 MiB
    case 'entry-area':
      return 2;
    case 'irq-stack':
      return 4; // 16 KiB
    case 'percpu-kvm':
      return 1;
    case 'percpu':
      return 8;
    case 'kvm-module':
      return 256; // 1 MiB
    case 'page-cache':
      return Math.max(1, Math.floor((config.hostSecretsMiB * framesPerMiB) / 2));
    case 'keys':
      return 4;
    case 'other-processes':
      return Math.max(1, Math.floor((config.hostSecretsMiB * framesPerMiB) / 2) - 4);
    case 'vmm-heap':
      return 64;
    case 'vm-struct':
      return 8;
    case 'vcpu-struct':
      return 4;
    case 'memslots':
      return 2;
    case 'io-bus':
      return 2;
    case 'guest-memory':
      return config.vms[vmId].guestMemoryMiB * framesPerMiB;
    case 'page-tables':
      return config.pageTablePoolPages;
    case 'free':
      return 0;
  }
}

export interface RegionPlan {
  regions: Region[];
  totalFrames: number;
  /** First frame of the page-table pool (pool page i is frame ptPoolFirstPfn + i). */
  ptPoolFirstPfn: number;
  /** Frames used by the plan; the rest of memory is one `free` region. */
  usedFrames: number;
}

/**
 * Lays the regions out. Throws ConfigError('machine.memoryMiB', ...) when memory is too small: that
 * happens before the buffer is allocated.
 */
export function planRegions(config: MachineConfig): RegionPlan {
  const threads = config.cores * config.smt;
  const totalFrames = config.memoryMiB * framesPerMiB;
  const regions: Region[] = [];
  let nextPfn = 0;
  const add = (
    spec: RegionKindSpec,
    name: string,
    owner: number,
    vmId: number,
    index: number,
    align: number,
  ) => {
    const frames = instanceFrames(spec.kind, config, vmId);
    const firstPfn = Math.ceil(nextPfn / align) * align;
    regions.push({
      kind: spec.kind,
      name,
      id: regions.length,
      owner,
      firstPfn,
      frames,
      vmId,
      index,
      inKvmAddressSpace: spec.inKvmAddressSpace,
    });
    nextPfn = firstPfn + frames;
  };
  for (const spec of regionKinds) {
    const fixedOwner = spec.owner === 'public' ? domainPublic : spec.owner === 'kvm' ? domainKvm : domainHost;
    const align = spec.kind === 'guest-memory' || spec.kind === 'page-tables' ? framesPer2M : 1;
    switch (spec.scope) {
      case 'global':
        add(spec, spec.kind, fixedOwner, -1, -1, align);
        break;
      case 'per-thread':
        for (let thread = 0; thread < threads; thread++)
          add(spec, `${spec.kind}/${thread}`, fixedOwner, -1, thread, align);
        break;
      case 'per-vm':
        config.vms.forEach((_, vmId) => {
          add(
            spec,
            `${spec.kind}:${vmId}`,
            spec.owner === 'vm' ? vmDomain(vmId) : fixedOwner,
            vmId,
            -1,
            align,
          );
        });
        break;
      case 'per-vcpu':
        config.vms.forEach((vm, vmId) => {
          for (let vcpu = 0; vcpu < vm.vcpus; vcpu++) {
            add(spec, `${spec.kind}:${vmId}/${vcpu}`, vmDomain(vmId), vmId, vcpu, align);
          }
        });
        break;
    }
  }
  const usedFrames = nextPfn;
  if (usedFrames > totalFrames) {
    const neededMiB = Math.ceil(usedFrames / framesPerMiB);
    const layoutParts = `kernel, KVM, host secrets, ${config.vms.length} VM(s) with their guest memory, page-table pool`;
    // Never suggest a size the schema refuses: past the maximum, the layout itself must shrink.
    throw new ConfigError(
      'machine.memoryMiB',
      neededMiB <= memoryMiBMax
        ? `at least ${neededMiB} MiB for this layout (${layoutParts})`
        : `a layout that fits ${memoryMiBMax} MiB, the most a machine has: this one needs ${neededMiB} MiB (${layoutParts}); give the VMs less guestMemoryMiB or the host less hostSecretsMiB`,
      config.memoryMiB,
    );
  }
  regions.push({
    kind: 'free',
    name: 'free',
    id: regions.length,
    owner: 0,
    firstPfn: usedFrames,
    frames: totalFrames - usedFrames,
    vmId: -1,
    index: -1,
    inKvmAddressSpace: false,
  });
  const pool = regions.find((region) => region.kind === 'page-tables');
  assert(pool !== undefined, 'the plan has a page-table pool');
  // Regions never overlap and stay in physical order.
  for (let i = 1; i < regions.length; i++) {
    const previous = regions[i - 1];
    assert(
      regions[i].firstPfn >= previous.firstPfn + previous.frames,
      `region ${regions[i].name} overlaps ${previous.name}`,
    );
  }
  return { regions, totalFrames, ptPoolFirstPfn: pool.firstPfn, usedFrames };
}
