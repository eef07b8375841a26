import { assert } from '../../assert.js';
import type { SharedRangeTracker, TrackerUpdate } from './tracker.js';

/**
 * Deterministic conversion workloads for the shared-range trackers: the same seed and guest size
 * always give the same sequence of "page encryption status" hypercalls.
 *
 *  - boot: an SEV guest booting through OVMF into Linux. 19,479 status hypercalls, the count measured
 *    by Ashish Kalra for one boot (kvm list, 24 Feb 2021: 19,479 of 19,573 hypercalls). Almost all are
 *    OVMF's bounce buffer flipping the C-bit of one page (or a few) on every DMA map and unmap, as
 *    Brijesh Singh pointed out in the same thread; the rest are a few static shared pages (GHCBs,
 *    firmware mailboxes) and Linux's large early decryptions (SWIOTLB, bss..decrypted, kvmclock).
 *  - dma-churn: a running guest: a few static shared ranges (virtio rings, an MMIO window, SWIOTLB),
 *    then coherent DMA buffers allocated and freed over and over, flipping the same 4 KiB pages.
 *  - hostile: a guest that wants to blow up the host's record: single-page conversions of every other
 *    page so that no two shared pages touch, then churn that keeps it that way.
 */

export interface ConversionOp {
  readonly op: 'shared' | 'private';
  readonly gfn: number;
  readonly npages: number;
}

export type WorkloadName = 'boot' | 'dma-churn' | 'hostile';
export const workloadNames: readonly WorkloadName[] = ['boot', 'dma-churn', 'hostile'];

/** Status hypercalls in one measured SEV boot (see above). */
export const bootHypercallCount = 19_479;
/** Smallest guest the boot and dma-churn workloads lay out their regions in: 256 MiB of 4 KiB frames. */
export const workloadGfnCountMin = 65_536;
export const dmaChurnOpsDefault = 20_000;
export const hostileOpsDefault = 20_000;

/**
 * A small seeded PRNG (splitmix32): uint32 outputs, deterministic, good enough to place pages. The
 * model never uses Math.random (STYLE.md).
 */
export function createPrng(seed: number): () => number {
  assert(Number.isInteger(seed), `createPrng: seed must be an integer, got ${seed}`);
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Uniform integer in [0, bound) from a PRNG (bound < 2^32; the modulo bias is irrelevant here). */
function below(next: () => number, bound: number): number {
  return next() % bound;
}

/** Layout of the guest's shared regions in the boot and dma-churn workloads, derived from its size. */
interface GuestLayout {
  /** OVMF's bounce-buffer pool: 1 MiB below the 4 GiB hole, or low in small guests. */
  readonly bouncePoolGfn: number;
  readonly bouncePoolPages: number;
  /** SWIOTLB: 64 MiB by default, capped at 1/16 of the guest. */
  readonly swiotlbGfn: number;
  readonly swiotlbPages: number;
  /** Coherent DMA pool of a running guest's drivers. */
  readonly dmaPoolGfn: number;
  readonly dmaPoolPages: number;
}

function guestLayout(gfnCount: number): GuestLayout {
  assert(
    Number.isSafeInteger(gfnCount) && gfnCount >= workloadGfnCountMin,
    `workload needs at least ${workloadGfnCountMin} guest frames, got ${gfnCount}`,
  );
  const bouncePoolPages = 256;
  const bouncePoolGfn = Math.floor(gfnCount / 4);
  const swiotlbPages = Math.min(16_384, Math.floor(gfnCount / 16));
  const swiotlbGfn = Math.floor(gfnCount / 2);
  const dmaPoolPages = 512;
  const dmaPoolGfn = bouncePoolGfn + 4096;
  assert(bouncePoolGfn + bouncePoolPages <= dmaPoolGfn, 'bounce pool and DMA pool must not overlap');
  assert(dmaPoolGfn + dmaPoolPages <= swiotlbGfn, 'DMA pool and SWIOTLB must not overlap');
  assert(swiotlbGfn + swiotlbPages <= gfnCount - 64, 'SWIOTLB must leave room for the top-of-memory pages');
  return { bouncePoolGfn, bouncePoolPages, swiotlbGfn, swiotlbPages, dmaPoolGfn, dmaPoolPages };
}

/** The boot workload: exactly `bootHypercallCount` operations. */
export function* bootWorkload(seed: number, gfnCount: number): Generator<ConversionOp> {
  const layout = guestLayout(gfnCount);
  const next = createPrng(seed);
  const vcpuCount = 4;
  // Firmware: one GHCB page per vCPU and the AP jump-table page, shared for the guest's whole life,
  // near the top of memory.
  const firmwareOps: ConversionOp[] = [{ op: 'shared', gfn: gfnCount - 20, npages: 1 }];
  for (let vcpu = 0; vcpu < vcpuCount; vcpu++)
    firmwareOps.push({ op: 'shared', gfn: gfnCount - 16 + vcpu, npages: 1 });
  // Linux early boot: SWIOTLB in one call, then bss..decrypted and per-vCPU kvmclock pages.
  const kernelOps: ConversionOp[] = [{ op: 'shared', gfn: layout.swiotlbGfn, npages: layout.swiotlbPages }];
  kernelOps.push({ op: 'shared', gfn: gfnCount - 48, npages: 8 });
  for (let vcpu = 0; vcpu < vcpuCount; vcpu++)
    kernelOps.push({ op: 'shared', gfn: gfnCount - 32 + vcpu, npages: 1 });
  const churnOps = bootHypercallCount - firmwareOps.length - kernelOps.length;
  assert(churnOps > 0 && churnOps % 2 === 0, 'bounce-buffer churn comes in map/unmap pairs');

  yield* firmwareOps;
  yield* bounceChurn(next, layout.bouncePoolGfn, layout.bouncePoolPages, churnOps, 4, 0.92);
  yield* kernelOps;
}

/** The dma-churn workload: a few static ranges, then `opsCount` operations in total. */
export function* dmaChurnWorkload(
  seed: number,
  gfnCount: number,
  opsCount: number = dmaChurnOpsDefault,
): Generator<ConversionOp> {
  const layout = guestLayout(gfnCount);
  const next = createPrng(seed);
  const staticOps: ConversionOp[] = [
    { op: 'shared', gfn: layout.swiotlbGfn, npages: layout.swiotlbPages },
    // Virtio rings of four devices, 4 pages each, one after another.
    { op: 'shared', gfn: layout.dmaPoolGfn - 64, npages: 16 },
    // An MMIO-like window at the top of memory.
    { op: 'shared', gfn: gfnCount - 64, npages: 32 },
  ];
  assert(
    Number.isInteger(opsCount) && opsCount >= staticOps.length + 2,
    `dma-churn: opsCount ${opsCount} too small`,
  );
  const churnOps = opsCount - staticOps.length;
  yield* staticOps;
  yield* bounceChurn(next, layout.dmaPoolGfn, layout.dmaPoolPages, churnOps - (churnOps % 2), 32, 0.8);
  if (churnOps % 2 === 1) yield { op: 'private', gfn: layout.dmaPoolGfn, npages: 1 };
}

/** The hostile workload: `opsCount` single-page operations that keep the shared set maximally split. */
export function* hostileWorkload(
  seed: number,
  gfnCount: number,
  opsCount: number = hostileOpsDefault,
): Generator<ConversionOp> {
  assert(Number.isSafeInteger(gfnCount) && gfnCount >= 4, `hostile: gfnCount ${gfnCount} too small`);
  assert(Number.isInteger(opsCount) && opsCount > 0, `hostile: bad opsCount ${opsCount}`);
  const next = createPrng(seed);
  const evenPages = gfnCount >>> 1;
  // Phase one: share even pages in a scattered order (worst case for a sorted array's inserts).
  const floodOps = Math.min(opsCount >>> 1, evenPages);
  for (let i = 0; i < floodOps; i++) yield { op: 'shared', gfn: 2 * below(next, evenPages), npages: 1 };
  // Phase two: flip even pages back and forth; an odd page is never shared, so nothing ever merges.
  for (let i = floodOps; i < opsCount; i++) {
    yield { op: (i & 1) === 0 ? 'private' : 'shared', gfn: 2 * below(next, evenPages), npages: 1 };
  }
}

/**
 * Map and unmap DMA buffers from a pool of slots: `opsCount` operations (even), at most `inFlightMax`
 * buffers mapped at once, a share of `singlePageShare` one-page buffers and the rest 2-16 pages. Every
 * buffer mapped is unmapped again by the end.
 */
function* bounceChurn(
  next: () => number,
  poolGfn: number,
  poolPages: number,
  opsCount: number,
  inFlightMax: number,
  singlePageShare: number,
): Generator<ConversionOp> {
  assert(opsCount % 2 === 0, 'bounceChurn: map/unmap pairs');
  const slotPages = 16;
  const slotCount = Math.floor(poolPages / slotPages);
  assert(slotCount >= inFlightMax, 'bounceChurn: the pool must hold every buffer in flight');
  const inFlightSlot = new Int32Array(inFlightMax);
  const inFlightPages = new Int32Array(inFlightMax);
  const slotBusy = new Uint8Array(slotCount);
  let inFlight = 0;
  let remaining = opsCount;
  const singlePageCut = Math.floor(singlePageShare * 0x1_0000_0000);
  // Bounded: every iteration emits one operation.
  while (remaining > 0) {
    const mustUnmap = inFlight === inFlightMax || remaining === inFlight;
    const mayUnmap = inFlight > 0;
    if (mustUnmap || (mayUnmap && (next() & 1) === 0)) {
      const which = below(next, inFlight);
      const slot = inFlightSlot[which];
      yield { op: 'private', gfn: poolGfn + slot * slotPages, npages: inFlightPages[which] };
      slotBusy[slot] = 0;
      inFlight--;
      inFlightSlot[which] = inFlightSlot[inFlight];
      inFlightPages[which] = inFlightPages[inFlight];
    } else {
      let slot = below(next, slotCount);
      while (slotBusy[slot] === 1) slot = (slot + 1) % slotCount;
      const npages = next() < singlePageCut ? 1 : 2 + below(next, slotPages - 1);
      slotBusy[slot] = 1;
      inFlightSlot[inFlight] = slot;
      inFlightPages[inFlight] = npages;
      inFlight++;
      yield { op: 'shared', gfn: poolGfn + slot * slotPages, npages };
    }
    remaining--;
  }
  assert(inFlight === 0, 'bounceChurn: every buffer mapped is unmapped');
}

/** The named workload for a seed and guest size. */
export function workload(
  name: WorkloadName,
  seed: number,
  gfnCount: number,
  opsCount?: number,
): Iterable<ConversionOp> {
  switch (name) {
    case 'boot':
      return bootWorkload(seed, gfnCount);
    case 'dma-churn':
      return dmaChurnWorkload(seed, gfnCount, opsCount);
    case 'hostile':
      return hostileWorkload(seed, gfnCount, opsCount);
  }
}

/** A workload stored as typed arrays, so replaying it (in a benchmark) allocates nothing. */
export interface MaterializedWorkload {
  readonly name: string;
  readonly opsCount: number;
  /** 1 = make shared, 0 = make private. */
  readonly shared: Uint8Array;
  readonly gfns: Int32Array;
  readonly npages: Int32Array;
}

export function materialize(name: string, ops: Iterable<ConversionOp>): MaterializedWorkload {
  const list = Array.from(ops);
  const shared = new Uint8Array(list.length);
  const gfns = new Int32Array(list.length);
  const npages = new Int32Array(list.length);
  for (let i = 0; i < list.length; i++) {
    shared[i] = list[i].op === 'shared' ? 1 : 0;
    gfns[i] = list[i].gfn;
    npages[i] = list[i].npages;
  }
  return { name, opsCount: list.length, shared, gfns, npages };
}

/** Apply one operation to a tracker. */
export function applyOp(tracker: SharedRangeTracker, op: ConversionOp): TrackerUpdate {
  return op.op === 'shared' ? tracker.setShared(op.gfn, op.npages) : tracker.setPrivate(op.gfn, op.npages);
}

/** Replay a materialized workload on a tracker; returns how many updates overflowed. */
export function replay(tracker: SharedRangeTracker, work: MaterializedWorkload): number {
  let overflows = 0;
  for (let i = 0; i < work.opsCount; i++) {
    const update =
      work.shared[i] === 1
        ? tracker.setShared(work.gfns[i], work.npages[i])
        : tracker.setPrivate(work.gfns[i], work.npages[i]);
    if (update === 'overflowed') overflows++;
  }
  return overflows;
}
