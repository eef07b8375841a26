import { performance } from 'node:perf_hooks';
import { AcceleratedCaches } from '../src/accel/accelerated-access.js';
import { instantiateAccessKernel } from '../src/accel/access-kernel.js';
import { writeCacheDescriptor } from '../src/accel/kernel-descriptor.js';
import { assert } from '../src/assert.js';
import { parseMachineConfig } from '../src/config/machine-config.js';
import { acquireCoreLock, releaseCoreLock } from '../src/kick/core-lock.js';
import { Machine, simRegionBytes } from '../src/machine.js';
import { vmDomain } from '../src/memory/domains.js';
import { computeLayout, coreFieldIndex } from '../src/memory/layout.js';
import { planRegions } from '../src/memory/regions.js';
import { descriptorI32s, kernelRegionLayout, l1dLockI32 } from '../src/memory/sub-layouts.js';

/**
 * Prototype (issue 21, item 2): the access kernel (src/accel/access-kernel.wat) over a shared
 * `WebAssembly.Memory` that several workers use, against the JavaScript classes (`CoreL1d`,
 * `CoreFillBuffers`, with their core lock) over a SharedArrayBuffer, on the guest access stream of an
 * all-fast run. Nothing in src/ uses it: the machine is made here, in each worker, over the memory the
 * main thread made and posted, with the worker's own instance of the kernel (a WebAssembly instance is
 * per thread; its memory is shared).
 *
 * Paths measured, in the same worker, alternating batch by batch:
 * - `js`: `CoreCaches.access` on a machine over a SharedArrayBuffer (`concurrent`: the L1D takes its core
 *   lock, and on a miss the fill buffers take theirs), as the workers backend runs today.
 * - `wasm-locked`: the kernel's `access` (L1D, then the fill buffers on a miss, one call) with the core
 *   lock taken around the call in JavaScript: one lock for both sections (the kernel changes both in
 *   one call, so one lock word must guard them; the reference path would have to take the same one).
 * - `wasm-unlocked`: the kernel with no lock: the floor, correct only while one hyperthread of the core
 *   runs (nosmt, a sibling offline or idle). Two siblings unlocked race on the set's lines, the LRU
 *   clock and the fill-buffer ring: the kernel is not lock-free, and the model gives it no way to be
 *   (a hit moves the LRU stamp and the hint; a miss picks a victim and a ring slot).
 */
export type SharedKernelPath = 'js' | 'wasm-locked' | 'wasm-unlocked';

export interface SharedKernelSetup {
  machineInput: unknown;
  buffer: SharedArrayBuffer;
  memory: WebAssembly.Memory;
  /** The guest's working set: `workingSetPages` frames from `firstPfn` (the all-fast default is 8 pages). */
  firstPfn: number;
  workingSetPages: number;
  seed: number;
}

export interface SharedKernelBatch {
  path: SharedKernelPath;
  accesses: number;
  ns: number;
  hits: number;
}

/** The views both paths need, made in one worker. */
export class SharedKernelRig {
  private readonly js: Machine;
  private readonly wasm: Machine;
  /** Core 0's caches through the kernel over the shared memory (the model classes for what it hands back). */
  private readonly wasmCaches: AcceleratedCaches;
  private readonly lockI32Index: number;
  private readonly pfns = new Int32Array(4096);
  private readonly lines = new Int32Array(4096);
  private readonly domain: number;

  constructor(setup: SharedKernelSetup) {
    const config = parseMachineConfig(setup.machineInput);
    const plan = planRegions(config);
    const layout = computeLayout(config, plan);
    this.js = new Machine(setup.buffer, config, plan, layout, true);
    // The kernel's memory holds the machine from byte 0 and, past it, the kernel's region (its cache
    // descriptor): the layout the sim arena gives a machine (accel/accelerated-access.ts), here shared.
    const buffer = setup.memory.buffer as unknown as SharedArrayBuffer;
    assert(
      buffer.byteLength >= simRegionBytes(layout),
      'the shared memory holds the machine and its descriptors',
    );
    // `concurrent: false` only tells the classes not to lock: the locking is this rig's (wasm-locked).
    this.wasm = new Machine(buffer, config, plan, layout, false);
    const parts = kernelRegionLayout(layout.totalI32s, layout.threadCount, layout.coreCount);
    const base = coreFieldIndex(layout, 0, 0);
    writeCacheDescriptor(
      new Int32Array(buffer, parts.cacheDescriptorsI32 * Int32Array.BYTES_PER_ELEMENT, descriptorI32s),
      0,
      base + layout.coreL1dOffsetI32,
      {
        sets: config.l1d.sets,
        ways: config.l1d.ways,
        replacement: config.l1d.replacement,
        domainCount: this.wasm.l1d[0].domainCount,
      },
      base + layout.coreFillBuffersOffsetI32,
      config.fillBufferEntries,
    );
    this.wasmCaches = new AcceleratedCaches(
      instantiateAccessKernel(setup.memory),
      parts.cacheDescriptorsI32,
      this.wasm.caches[0],
    );
    this.lockI32Index = coreFieldIndex(layout, 0, 0) + layout.coreL1dOffsetI32 + l1dLockI32;
    this.domain = vmDomain(0);
    // The guest's draw (Hyperthread.touchGuestAccess): a page of the working set and a line in it.
    let state = setup.seed >>> 0 || 1;
    for (let i = 0; i < this.pfns.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      const draw = ((state >>> 0) / 2 ** 32) * setup.workingSetPages;
      this.pfns[i] = setup.firstPfn + Math.floor(draw);
      this.lines[i] = Math.floor((draw - Math.floor(draw)) * 64);
    }
  }

  batch(path: SharedKernelPath, accesses: number): SharedKernelBatch {
    const pfns = this.pfns;
    const lines = this.lines;
    const domain = this.domain;
    let hits = 0;
    const start = performance.now();
    if (path === 'js') {
      const caches = this.js.caches[0];
      for (let i = 0; i < accesses; i++) if (caches.access(pfns[i & 4095], lines[i & 4095], domain)) hits++;
    } else if (path === 'wasm-locked') {
      const caches = this.wasmCaches;
      const i32 = this.wasm.i32;
      const lock = this.lockI32Index;
      for (let i = 0; i < accesses; i++) {
        acquireCoreLock(i32, lock);
        const hit = caches.access(pfns[i & 4095], lines[i & 4095], domain);
        releaseCoreLock(i32, lock);
        if (hit) hits++;
      }
    } else {
      const caches = this.wasmCaches;
      for (let i = 0; i < accesses; i++) if (caches.access(pfns[i & 4095], lines[i & 4095], domain)) hits++;
    }
    return { path, accesses, ns: (performance.now() - start) * 1e6, hits };
  }
}

/**
 * `rounds` rounds of one batch per path, the order rotated each round; with `parties` > 1 the workers
 * meet at a barrier (`barrier`, one Int32) before each batch, so siblings run the same path together.
 */
export function runSharedKernelRounds(
  rig: SharedKernelRig,
  paths: SharedKernelPath[],
  rounds: number,
  accesses: number,
  barrier: Int32Array,
  parties: number,
): SharedKernelBatch[] {
  const batches: SharedKernelBatch[] = [];
  let meeting = 0;
  // Warm-up: every path compiled before anything is timed.
  for (const path of paths) rig.batch(path, accesses / 10);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < paths.length; k++) {
      const path = paths[(round + k) % paths.length];
      meeting++;
      Atomics.add(barrier, 0, 1);
      const deadline = performance.now() + 10_000;
      while (Atomics.load(barrier, 0) < meeting * parties) {
        if (performance.now() > deadline) throw new Error('shared kernel: the other worker never came');
      }
      batches.push(rig.batch(path, accesses));
    }
  }
  return batches;
}
