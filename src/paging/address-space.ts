import { assert } from '../assert.js';
import type { MachineConfig } from '../config/machine-config.js';
import { largePage2MBytes, pageBytes } from '../constants.js';
import { domainHost, domainKvm, vmDomain } from '../memory/domains.js';
import type { Region, RegionKind, RegionPlan } from '../memory/regions.js';
import { formatCode, MapFlag } from './entry-format.js';
import type { PageTables } from './page-table.js';
import {
  directMapVa,
  entryAreaVa,
  kernelTextVa,
  modulesVa,
  vmallocVa,
  vmmGuestMemoryVa,
  vmmHeapVa,
} from './va-layout.js';

/**
 * Address spaces (DESIGN.md "Address spaces"): `kernel` maps everything; per VM, `kvm:N` is the
 * isolated KVM address space, `guest:N` the EPT (guest-physical to host-physical), `vmm:N` the VMM's
 * userspace. Ids are dense: kernel = 0, then three per VM.
 */
export const kernelSpace = 0;
export const AddressSpaceKind = { kernel: 0, kvm: 1, guest: 2, vmm: 3 } as const;
export type AddressSpaceKindName = keyof typeof AddressSpaceKind;

export function kvmSpace(vmId: number): number {
  return 1 + 3 * vmId;
}
export function guestSpace(vmId: number): number {
  return 2 + 3 * vmId;
}
export function vmmSpace(vmId: number): number {
  return 3 + 3 * vmId;
}

export function addressSpaceKindOf(space: number): AddressSpaceKindName {
  if (space === kernelSpace) return 'kernel';
  return (['kvm', 'guest', 'vmm'] as const)[(space - 1) % 3];
}

export function addressSpaceVmOf(space: number): number {
  return space === kernelSpace ? -1 : Math.floor((space - 1) / 3);
}

export function addressSpaceName(space: number): string {
  const kind = addressSpaceKindOf(space);
  return kind === 'kernel' ? 'kernel' : `${kind}:${addressSpaceVmOf(space)}`;
}

/** Owner domain of a page-table page of `space`: KVM's tables are KVM data, EPT pages the VM's. */
export function tableDomainOf(space: number): number {
  switch (addressSpaceKindOf(space)) {
    case 'kvm':
      return domainKvm;
    case 'guest':
      return vmDomain(addressSpaceVmOf(space));
    default:
      return domainHost;
  }
}

/**
 * Kernel windows other than the direct map that some regions are reached through. Vmalloc-backed
 * instances get a guard page after them, as vmalloc does.
 */
const aliasWindows: Partial<Record<RegionKind, { va: number; flags: number; guardPages: number }>> = {
  'kernel-text': { va: kernelTextVa, flags: MapFlag.exec | MapFlag.global, guardPages: 0 },
  'entry-area': { va: entryAreaVa, flags: MapFlag.write | MapFlag.global, guardPages: 0 },
  'kvm-module': { va: modulesVa, flags: MapFlag.write | MapFlag.exec | MapFlag.global, guardPages: 0 },
  'vm-struct': { va: vmallocVa, flags: MapFlag.write, guardPages: 1 },
  'irq-stack': { va: vmallocVa + 2 ** 30, flags: MapFlag.write, guardPages: 1 },
};

/**
 * Whether the kernel maps a region kind without write permission (kernel text): a handler that writes
 * it would fault in every address space, the full kernel's too (an oops on real hardware).
 */
export function isReadOnlyRegion(kind: RegionKind): boolean {
  const window = aliasWindows[kind];
  return window !== undefined && (window.flags & MapFlag.write) === 0;
}

/** The kernel VA through which code reaches a region: its alias window, or the direct map. */
export interface RegionAddresses {
  region: Region;
  va: number;
  viaDirectMap: boolean;
}

export function regionAddresses(plan: RegionPlan): RegionAddresses[] {
  const nextAlias = new Map<RegionKind, number>();
  return plan.regions.map((region) => {
    const window = aliasWindows[region.kind];
    if (!window) return { region, va: directMapVa + region.firstPfn * pageBytes, viaDirectMap: true };
    const va = nextAlias.get(region.kind) ?? window.va;
    nextAlias.set(region.kind, va + (region.frames + window.guardPages) * pageBytes);
    return { region, va, viaDirectMap: false };
  });
}

/** Builds `kernel`: the direct map of every frame plus the alias windows. */
export function buildKernelSpace(tables: PageTables, config: MachineConfig, plan: RegionPlan): void {
  tables.createAddressSpace(kernelSpace, AddressSpaceKind.kernel, -1, formatCode.x86);
  // Direct map: RW, NX. Not global: a global kernel entry would survive the switch to kvm:N in the
  // TLB and let isolated code reach host memory without a fault (why ASI keeps G off such mappings).
  const framesPer2M = largePage2MBytes / pageBytes;
  let pfn = 0;
  while (pfn < plan.totalFrames) {
    const va = directMapVa + pfn * pageBytes;
    if (config.directMapLargePages && pfn % framesPer2M === 0 && pfn + framesPer2M <= plan.totalFrames) {
      tables.map(kernelSpace, va, pfn, MapFlag.write, largePage2MBytes);
      pfn += framesPer2M;
    } else {
      tables.map(kernelSpace, va, pfn, MapFlag.write);
      pfn += 1;
    }
  }
  for (const { region, va, viaDirectMap } of regionAddresses(plan)) {
    if (viaDirectMap) continue;
    const window = aliasWindows[region.kind];
    assert(window !== undefined, `region ${region.name} has an alias window`);
    for (let page = 0; page < region.frames; page++) {
      tables.map(kernelSpace, va + page * pageBytes, region.firstPfn + page, window.flags);
    }
  }
}

/**
 * Builds `kvm:N` as the RFC does: an empty table of its own, then the VA ranges KVM needs in isolation
 * copied from `kernel` (core mappings, KVM module, this VM's structures, vCPUs, memslots, buses, guest
 * memory). Returns the ranges it copied, for reports.
 */
export function buildKvmSpace(
  tables: PageTables,
  plan: RegionPlan,
  vmId: number,
): { region: string; va: number; pages: number }[] {
  const space = kvmSpace(vmId);
  tables.createAddressSpace(space, AddressSpaceKind.kvm, vmId, formatCode.x86);
  const copied: { region: string; va: number; pages: number }[] = [];
  for (const { region, va } of regionAddresses(plan)) {
    if (!region.inKvmAddressSpace) continue;
    if (region.vmId !== -1 && region.vmId !== vmId) continue;
    const pages = tables.copyRange(space, kernelSpace, va, region.frames * pageBytes);
    assert(
      pages === region.frames,
      `kvm:${vmId} copied ${pages} of ${region.frames} pages of ${region.name}`,
    );
    copied.push({ region: region.name, va, pages });
  }
  return copied;
}

/** Builds `guest:N`: the EPT mapping guest-physical 0.. onto the VM's guest-memory frames. */
export function buildGuestSpace(tables: PageTables, plan: RegionPlan, vmId: number): void {
  const space = guestSpace(vmId);
  tables.createAddressSpace(space, AddressSpaceKind.guest, vmId, formatCode.ept);
  const memory = plan.regions.find((region) => region.kind === 'guest-memory' && region.vmId === vmId);
  assert(memory !== undefined, `VM ${vmId} has guest memory`);
  for (let page = 0; page < memory.frames; page++) {
    tables.map(space, page * pageBytes, memory.firstPfn + page, MapFlag.write | MapFlag.exec);
  }
}

/**
 * Builds `vmm:N`: the VMM process. Its kernel half shares the kernel's upper-level tables (as every
 * Linux process does), its user half maps guest memory and the VMM heap.
 */
export function buildVmmSpace(tables: PageTables, plan: RegionPlan, vmId: number): void {
  const space = vmmSpace(vmId);
  tables.createAddressSpace(space, AddressSpaceKind.vmm, vmId, formatCode.x86);
  tables.shareTopLevel(space, kernelSpace, 256, 511);
  for (const region of plan.regions) {
    if (region.vmId !== vmId) continue;
    const base =
      region.kind === 'guest-memory' ? vmmGuestMemoryVa : region.kind === 'vmm-heap' ? vmmHeapVa : -1;
    if (base < 0) continue;
    for (let page = 0; page < region.frames; page++) {
      tables.map(space, base + page * pageBytes, region.firstPfn + page, MapFlag.write | MapFlag.user);
    }
  }
}
