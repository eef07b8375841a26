import { assert } from '../assert.js';
import { type RegionKind, regionKinds } from '../memory/regions.js';
import type { AsiClass } from './taints.js';

/**
 * Which memory today's ASI leaves out of a restricted address space, decided when the memory is
 * allocated: a denylist. Everything is mapped except what was allocated sensitive.
 *
 * Sources:
 * - RFC v2 patch 14/29 "mm: asi: Map non-user buddy allocations as nonsensitive"
 *   (<20250110-asi-rfc-v2-v2-14-8419288bc805@google.com>): "ASI working in a 'denylist' mode: we map
 *   the direct map into the restricted address space, except pages allocated with GFP_USER";
 *   `__GFP_SENSITIVE` is added to GFP_USER ("Allocate sensitive memory, i.e. do not map it into ASI's
 *   restricted address space"), so GFP_HIGHUSER(_MOVABLE) allocations (user pages, the page cache,
 *   guest RAM, which is the VMM's user memory) are sensitive. Freed nonsensitive pages are unmapped
 *   before reuse (asi_async_free_enqueue), so a free frame is not mapped.
 * - RFC v2 cover letter's patch list: "mm: asi: Map kernel text and static data as nonsensitive",
 *   "mm: asi: Map vmalloc/vmap data as nonsensitive".
 * - RFC v2 patch 25/29: the user class's restricted space "naturally contains the entire userspace
 *   address region, although the task's own memory is still missing from the direct map"; the KVM
 *   class maps no user addresses (asi_maps_user_addr() is true only for ASI_CLASS_USERSPACE).
 * - "file pages aren't mapped into the physmap as seen from ASI's restricted address space" (Jackman,
 *   reply in the "ASI is fast again" thread, <DD7S12CF1V9G.3KGT3KYBLZ7F2@google.com>): the page cache is
 *   sensitive; the ephmap maps one such page CPU-locally for the access.
 * - The `__GFP_UNMAPPED` series v2 (<20260320-page_alloc-unmapped-v2-0-28bf1bd54f41@google.com>) moves
 *   this into the page allocator as unmapped freelists; its text was not reachable in this session, so
 *   the per-region outcome here follows RFC v2 (docs/linux-asi.md).
 *
 * How the 2019 allowlist differs (the RFC's `kvm:N`, regions.ts `inKvmAddressSpace`): there the
 * isolated space starts empty and maps only ranges copied from the kernel page table for KVM's own
 * needs: kernel text, entry area, KVM's per-CPU data and module, this VM's structures and its guest
 * memory. Anything not listed (all other kernel data, the rest of per-CPU data, keys, the page cache,
 * other processes, the VMM) is missing, so a new kernel allocation is safe by default but every new
 * piece of state KVM touches faults until someone lists it. Today's denylist is the reverse: a new
 * kernel allocation is mapped (kernel data, keys, per-CPU data are all reachable from the restricted
 * space) and only user data, the page cache and guest RAM are missing; guest RAM itself is unmapped for
 * the KVM class, where the 2019 `kvm:N` mapped the VM's own memory.
 */

export type RestrictedMapping = 'mapped' | 'unmapped';

export interface SensitivityOptions {
  /**
   * Keys are kmalloc'ed (GFP_KERNEL), which RFC v2's denylist maps. Nothing in the postings read marks
   * them `__GFP_SENSITIVE`; this switch models a kernel that does.
   */
  readonly keysSensitive: boolean;
}

export const postedSensitivityOptions: SensitivityOptions = Object.freeze({ keysSensitive: false });

/** How each region's frames are allocated, which decides whether they are sensitive. */
export interface RegionAllocation {
  readonly allocation: string;
  /** Allocated `__GFP_SENSITIVE` (or through GFP_USER, which carries it): left out of the direct map. */
  readonly sensitive: boolean;
  /** User memory, reached through the owning process's own user mappings (the user class maps them). */
  readonly userMemory: boolean;
}

const regionAllocations: Readonly<Record<RegionKind, RegionAllocation>> = Object.freeze({
  'kernel-text': { allocation: 'kernel image (static)', sensitive: false, userMemory: false },
  'entry-area': { allocation: 'cpu_entry_area (static, per CPU)', sensitive: false, userMemory: false },
  'irq-stack': { allocation: 'GFP_KERNEL (vmalloc)', sensitive: false, userMemory: false },
  'percpu-kvm': { allocation: 'per-CPU area', sensitive: false, userMemory: false },
  percpu: { allocation: 'per-CPU area', sensitive: false, userMemory: false },
  'kvm-module': { allocation: 'module text and data (vmalloc)', sensitive: false, userMemory: false },
  'page-cache': { allocation: 'GFP_HIGHUSER_MOVABLE (mapping gfp mask)', sensitive: true, userMemory: false },
  keys: { allocation: 'GFP_KERNEL (kmalloc)', sensitive: false, userMemory: false },
  'other-processes': { allocation: 'GFP_HIGHUSER_MOVABLE (user pages)', sensitive: true, userMemory: true },
  'vmm-heap': { allocation: 'GFP_HIGHUSER_MOVABLE (the VMM process)', sensitive: true, userMemory: true },
  'vm-struct': { allocation: 'GFP_KERNEL_ACCOUNT (vmalloc)', sensitive: false, userMemory: false },
  'vcpu-struct': { allocation: 'GFP_KERNEL_ACCOUNT (kmem_cache)', sensitive: false, userMemory: false },
  memslots: { allocation: 'GFP_KERNEL_ACCOUNT (kvzalloc)', sensitive: false, userMemory: false },
  'io-bus': { allocation: 'GFP_KERNEL_ACCOUNT', sensitive: false, userMemory: false },
  'guest-memory': { allocation: 'GFP_HIGHUSER_MOVABLE (VMM user memory)', sensitive: true, userMemory: true },
  'page-tables': { allocation: 'GFP_PGTABLE_KERNEL', sensitive: false, userMemory: false },
  free: { allocation: 'free (unmapped before reuse)', sensitive: true, userMemory: false },
});

export function regionAllocation(kind: RegionKind, options: SensitivityOptions): RegionAllocation {
  const allocation = regionAllocations[kind];
  assert(allocation !== undefined, `unknown region kind ${kind}`);
  if (kind === 'keys' && options.keysSensitive) return { ...allocation, sensitive: true };
  return allocation;
}

/**
 * Whether a class's restricted space maps a region of the current process, today's design. For the
 * user class, "own" user memory (`vmm-heap` and `guest-memory` of the running VMM) is reachable through
 * the process's own user page tables; another process's memory never is.
 */
export function restrictedMapping(
  kind: RegionKind,
  asiClass: AsiClass,
  options: SensitivityOptions = postedSensitivityOptions,
): RestrictedMapping {
  const allocation = regionAllocation(kind, options);
  if (!allocation.sensitive) return 'mapped';
  const ownUserMemory = allocation.userMemory && kind !== 'other-processes';
  return asiClass === 'user' && ownUserMemory ? 'mapped' : 'unmapped';
}

/** The 2019 RFC's allowlist for `kvm:N` (regions.ts), for side-by-side comparison. */
export function allowlist2019Mapping(kind: RegionKind): RestrictedMapping {
  // Free frames are not in the catalogue (regions.ts lays them out last); kvm:N never maps them.
  if (kind === 'free') return 'unmapped';
  const spec = regionKinds.find((candidate) => candidate.kind === kind);
  assert(spec !== undefined, `unknown region kind ${kind}`);
  return spec.inKvmAddressSpace ? 'mapped' : 'unmapped';
}

export const sensitivityRegionKinds: readonly RegionKind[] = Object.freeze(
  Object.keys(regionAllocations) as RegionKind[],
);
