import { describe, expect, it } from 'vitest';
import { SimpleFrameSource } from '../../src/coco/frame-source.js';
import { fallocFlKeepSize, fallocFlPunchHole } from '../../src/coco/guest-memfd.js';
import { kvmMemGuestMemfd } from '../../src/coco/memslots.js';
import {
  kvmExitHypercallValidMask,
  kvmHcMapGpaRange,
  kvmMemoryAttributePrivate,
  type MapGpaRangeExit,
  VmMemory,
} from '../../src/coco/vm-memory.js';
import { pageBytes } from '../../src/constants.js';
import { privateDomain, vmDomain } from '../../src/memory/domains.js';

/**
 * Re-expresses tools/testing/selftests/kvm/x86/private_mem_conversions_test.c (older path x86_64/).
 *
 * The selftest's guest code becomes a TypeScript "guest" that calls the facade's guest accessors; its
 * GUEST_SYNC checks become host reads through the VMM mapping; its MAP_GPA_RANGE hypercalls go to a
 * VMM handler that is the selftest's handle_exit_hypercall, with the selftest's own attribute bits.
 */

const page = pageBytes;
const size2M = 2 * 1024 * 1024;
const baseDataGpa = 2 ** 32;
const baseDataSlot = 10;
const perCpuDataSize = size2M + page;

/** "Arbitrary values, KVM doesn't care about the attribute flags." */
const mapGpaSetAttributes = 1n << 0n;
const mapGpaShared = 1n << 1n;
const mapGpaDoFallocate = 1n << 2n;

const testRanges: Array<{ offset: number; size: number }> = [
  { offset: 0, size: page },
  { offset: 0, size: size2M },
  { offset: page, size: page },
  { offset: page, size: size2M },
  { offset: size2M, size: page },
];

/** A failed guest assertion: __GUEST_ASSERT, with the selftest's message. */
function guestAssert(condition: boolean, message: string): void {
  if (!condition) throw new Error(`guest assertion failed: ${message}`);
}

class Harness {
  readonly vm: VmMemory;
  readonly source: SimpleFrameSource;
  readonly exits: MapGpaRangeExit[] = [];
  hostChecks = 0;

  constructor(
    readonly vcpuCount: number,
    readonly memslotCount: number,
  ) {
    // test_mem_conversions: each vCPU's chunk is naturally aligned to 2 MiB.
    const perCpuSize = Math.ceil(perCpuDataSize / size2M) * size2M;
    const memfdSize = perCpuSize * vcpuCount;
    const slotSize = memfdSize / memslotCount;
    expect(slotSize * memslotCount).toBe(memfdSize);
    this.source = new SimpleFrameSource((4 * memfdSize) / page + 64);
    this.vm = new VmMemory({ vmId: 1, frames: this.source, type: 'sw-protected' });
    this.vm.enableHypercallExit(kvmExitHypercallValidMask);
    this.vm.setMapGpaRangeHandler((vm, exit) => this.handleExitHypercall(vm, exit));
    const memfd = this.vm.createGuestMemfd(memfdSize, 0);
    this.memfd = memfd;
    for (let i = 0; i < memslotCount; i++) {
      this.vm.setUserMemoryRegion2({
        slot: baseDataSlot + i,
        flags: kvmMemGuestMemfd,
        guestPhysAddr: baseDataGpa + slotSize * i,
        memorySize: slotSize,
        userspaceAddr: 0x7f0000000000 + slotSize * i,
        guestMemfd: memfd,
        guestMemfdOffset: slotSize * i,
      });
    }
    this.perCpuSize = perCpuSize;
    this.memfdSize = memfdSize;
  }

  readonly memfd;
  readonly perCpuSize: number;
  readonly memfdSize: number;

  /** handle_exit_hypercall: fallocate the guest_memfd and/or set attributes, as the guest asked. */
  handleExitHypercall(vm: VmMemory, exit: MapGpaRangeExit): number {
    expect(exit.nr).toBe(kvmHcMapGpaRange);
    this.exits.push(exit);
    const gpa = Number(exit.gpa);
    const size = Number(exit.npages) * page;
    const setAttributes = (exit.attributes & mapGpaSetAttributes) !== 0n;
    const mapShared = (exit.attributes & mapGpaShared) !== 0n;
    const doFallocate = (exit.attributes & mapGpaDoFallocate) !== 0n;
    if (doFallocate) vm.guestMemFallocate(gpa, size, mapShared);
    if (setAttributes) {
      vm.setMemoryAttributes({ address: gpa, size, attributes: mapShared ? 0n : kvmMemoryAttributePrivate });
    }
    return 0;
  }

  // ---- guest side ----

  memset(gpa: number, pattern: number, size: number): void {
    expect(this.vm.guestWrite(gpa, new Uint8Array(size).fill(pattern))).toBeNull();
  }

  /** memcmp_g */
  memcmpG(gpa: number, pattern: number, size: number): void {
    const seen = new Uint8Array(size);
    expect(this.vm.guestRead(gpa, seen)).toBeNull();
    const bad = seen.findIndex((byte) => byte !== pattern);
    guestAssert(
      bad < 0,
      `Guest expected 0x${pattern.toString(16)} at offset ${bad} (gpa 0x${(gpa + bad).toString(16)}), got 0x${seen[bad]?.toString(16)}`,
    );
  }

  mapMem(gpa: number, size: number, mapShared: boolean, doFallocate: boolean): void {
    let flags = mapGpaSetAttributes;
    if (mapShared) flags |= mapGpaShared;
    if (doFallocate) flags |= mapGpaDoFallocate;
    expect(this.vm.guestMapGpaRange(gpa, size / page, flags).ret).toBe(0);
  }

  mapShared(gpa: number, size: number, doFallocate: boolean): void {
    this.mapMem(gpa, size, true, doFallocate);
  }

  mapPrivate(gpa: number, size: number, doFallocate: boolean): void {
    this.mapMem(gpa, size, false, doFallocate);
  }

  /** guest_punch_hole: "mapping" shared via fallocate() is PUNCH_HOLE, without touching attributes. */
  punchHole(gpa: number, size: number): void {
    expect(this.vm.guestMapGpaRange(gpa, size / page, mapGpaShared | mapGpaDoFallocate).ret).toBe(0);
  }

  // ---- host side: the UCALL_SYNC handler ----

  /** In all cases the host observes the shared data; for SYNC_SHARED it then writes the new pattern. */
  syncShared(gpa: number, size: number, currentPattern: number, newPattern: number): void {
    this.hostCompare(gpa, size, currentPattern);
    expect(this.vm.hostWrite(gpa, new Uint8Array(size).fill(newPattern))).toBeNull();
  }

  syncPrivate(gpa: number, size: number, pattern: number): void {
    this.hostCompare(gpa, size, pattern);
  }

  /** memcmp_h */
  hostCompare(gpa: number, size: number, pattern: number): void {
    const seen = new Uint8Array(size);
    expect(this.vm.hostRead(gpa, seen)).toBeNull();
    const bad = seen.findIndex((byte) => byte !== pattern);
    expect(bad, `Host expected 0x${pattern.toString(16)} at gpa 0x${(gpa + bad).toString(16)}`).toBe(-1);
    this.hostChecks++;
  }
}

/** guest_test_explicit_conversion */
function guestTestExplicitConversion(h: Harness, baseGpa: number, doFallocate: boolean): void {
  const defP = 0xaa;
  const initP = 0xcc;
  // Memory should be shared by default.
  h.memset(baseGpa, defP, perCpuDataSize);
  h.memcmpG(baseGpa, defP, perCpuDataSize);
  h.syncShared(baseGpa, perCpuDataSize, defP, initP);
  h.memcmpG(baseGpa, initP, perCpuDataSize);

  for (const range of testRanges) {
    const gpa = baseGpa + range.offset;
    const size = range.size;
    const p1 = 0x11;
    const p2 = 0x22;
    const p3 = 0x33;
    const p4 = 0x44;

    h.memset(gpa, p1, size);
    h.mapPrivate(gpa, size, doFallocate);

    if (size > page) {
      h.memset(gpa, p2, page);
    } else {
      h.memset(gpa, p2, size);
      h.syncPrivate(gpa, size, p1);
      // The private memory holds pattern two, the shared rest still the initial pattern.
      h.memcmpG(gpa, p2, size);
      if (gpa > baseGpa) h.memcmpG(baseGpa, initP, gpa - baseGpa);
      if (gpa + size < baseGpa + perCpuDataSize) {
        h.memcmpG(gpa + size, initP, baseGpa + perCpuDataSize - (gpa + size));
      }
      // Convert odd-numbered pages back to shared to check holes in private ranges.
      for (let j = 0; j < size; j += page) {
        if (((j / page) & 1) === 1) {
          h.mapShared(gpa + j, page, doFallocate);
          h.syncShared(gpa + j, page, p1, p3);
          h.memcmpG(gpa + j, p3, page);
        } else {
          h.syncPrivate(gpa + j, page, p1);
        }
      }
    }
    // skip: convert the whole region back to shared, fill the even pages, host checks and writes p4.
    h.mapShared(gpa, size, doFallocate);
    h.memset(gpa, p3, size);
    h.syncShared(gpa, size, p3, p4);
    h.memcmpG(gpa, p4, size);
    // Reset the shared memory to the initial pattern, then free all private memory.
    h.memset(gpa, initP, size);
    h.mapShared(baseGpa, perCpuDataSize, true);
  }
}

/** guest_test_punch_hole */
function guestTestPunchHole(h: Harness, baseGpa: number, precise: boolean): void {
  const initP = 0xcc;
  h.mapPrivate(baseGpa, perCpuDataSize, false);
  for (const range of testRanges) {
    const gpa = baseGpa + range.offset;
    const size = range.size;
    h.punchHole(baseGpa, perCpuDataSize);
    if (precise) {
      h.memset(gpa, initP, size);
      h.memcmpG(gpa, initP, size);
    } else {
      h.memset(baseGpa, initP, perCpuDataSize);
      h.memcmpG(baseGpa, initP, perCpuDataSize);
    }
    // Punch a hole at the target range: guest reads succeed and return zeroes.
    h.punchHole(gpa, size);
    h.memcmpG(gpa, 0, size);
  }
}

/** guest_code, run for one vCPU's chunk. */
function guestCode(h: Harness, baseGpa: number): void {
  guestTestExplicitConversion(h, baseGpa, false);
  guestTestExplicitConversion(h, baseGpa, true);
  guestTestPunchHole(h, baseGpa, false);
  guestTestPunchHole(h, baseGpa, true);
}

describe('private_mem_conversions_test: test_mem_conversions', () => {
  for (const [vcpus, memslots] of [
    [1, 1],
    [1, 2],
    [2, 1],
    [2, 4],
  ] as const) {
    it(`guest_code over every range, with and without fallocate (-n ${vcpus} -m ${memslots})`, () => {
      const h = new Harness(vcpus, memslots);
      for (let i = 0; i < vcpus; i++) guestCode(h, baseDataGpa + i * h.perCpuSize);
      expect(h.exits.length).toBeGreaterThan(0);
      expect(h.hostChecks).toBeGreaterThan(0);

      // kvm_vm_free, then allocate and free through the guest_memfd: the file outlives the VM.
      h.vm.destroy();
      h.memfd.fallocate(fallocFlKeepSize | fallocFlPunchHole, 0, h.memfdSize);
      expect(h.memfd.framesAllocated).toBe(0);
      h.memfd.fallocate(fallocFlKeepSize, 0, h.memfdSize);
      expect(h.memfd.framesAllocated).toBe(h.memfdSize / page);
      h.memfd.close();
      expect(h.source.framesFree).toBe(h.source.frameCount);
    });
  }
});

describe('private_mem_conversions_test: the properties the selftest checks, one by one', () => {
  for (const range of testRanges) {
    it(`range (${range.offset}, ${range.size}): guest writes private data the host never sees`, () => {
      const h = new Harness(1, 1);
      const gpa = baseDataGpa + range.offset;
      h.memset(baseDataGpa, 0xcc, perCpuDataSize);
      h.memset(gpa, 0x11, range.size);
      h.mapPrivate(gpa, range.size, false);
      h.memset(gpa, 0x22, range.size);
      // The guest sees its private writes, the host only ever the shared contents.
      h.memcmpG(gpa, 0x22, range.size);
      h.syncPrivate(gpa, range.size, 0x11);
      // Private frames are in the private domain; shared frames in the VM's.
      const privateInfo = h.vm.inspectBacking(gpa);
      expect(privateInfo).toMatchObject({
        backing: 'guest-memfd',
        private: true,
        ownerDomain: privateDomain(1),
      });
      const sharedGpa = range.offset > 0 ? baseDataGpa : gpa + range.size;
      const sharedInfo = h.vm.inspectBacking(sharedGpa);
      expect(sharedInfo).toMatchObject({ backing: 'userspace', private: false, ownerDomain: vmDomain(1) });
    });
  }

  it('odd pages converted back to shared: the host sees them, the guest sees what the host wrote', () => {
    const h = new Harness(1, 1);
    const gpa = baseDataGpa + page;
    h.memset(gpa, 0x11, 4 * page);
    h.mapPrivate(gpa, 4 * page, false);
    h.memset(gpa, 0x22, 4 * page);
    h.mapShared(gpa + page, page, false);
    h.mapShared(gpa + 3 * page, page, false);
    // Shared contents survived the private excursion: they are the VMM's memory.
    h.syncShared(gpa + page, page, 0x11, 0x33);
    h.syncShared(gpa + 3 * page, page, 0x11, 0x33);
    h.memcmpG(gpa + page, 0x33, page);
    h.memcmpG(gpa + 3 * page, 0x33, page);
    h.memcmpG(gpa, 0x22, page);
    h.memcmpG(gpa + 2 * page, 0x22, page);
    expect(h.vm.privateRanges()).toEqual([
      [gpa / page, gpa / page + 1],
      [gpa / page + 2, gpa / page + 3],
    ]);
  });

  it('contents are not preserved across conversion: a page converted back to private reads zeros', () => {
    for (const doFallocate of [false, true]) {
      const h = new Harness(1, 1);
      const gpa = baseDataGpa;
      h.mapPrivate(gpa, 2 * page, doFallocate);
      h.memset(gpa, 0x22, 2 * page);
      h.memcmpG(gpa, 0x22, 2 * page);
      h.mapShared(gpa, page, doFallocate);
      h.mapPrivate(gpa, page, doFallocate);
      h.memcmpG(gpa, 0, page);
      // The page left alone keeps its private data.
      h.memcmpG(gpa + page, 0x22, page);
    }
  });

  it('a frame leaving the private domain is scrubbed before the VM domain owns it', () => {
    const h = new Harness(1, 1);
    const gpa = baseDataGpa;
    h.mapPrivate(gpa, page, false);
    h.memset(gpa, 0x5a, page);
    const pfn = h.vm.inspectBacking(gpa).pfn;
    expect(h.vm.frames.ownerOf(pfn)).toBe(privateDomain(1));
    expect(h.vm.frames.isWritten(pfn)).toBe(true);
    h.mapShared(gpa, page, false);
    expect(h.vm.frames.ownerOf(pfn)).toBe(vmDomain(1));
    expect(h.vm.frames.isWritten(pfn)).toBe(false);
  });

  it('guest_test_punch_hole: PUNCH_HOLE frees private memory and the next fault reads zeros', () => {
    const h = new Harness(1, 1);
    h.mapPrivate(baseDataGpa, perCpuDataSize, false);
    h.memset(baseDataGpa, 0xcc, perCpuDataSize);
    const held = h.memfd.framesAllocated;
    expect(held).toBe(perCpuDataSize / page);
    h.punchHole(baseDataGpa + page, page);
    expect(h.memfd.framesAllocated).toBe(held - 1);
    h.memcmpG(baseDataGpa + page, 0, page);
    h.memcmpG(baseDataGpa, 0xcc, page);
    // Attributes were not touched by the punch.
    expect(h.vm.isPrivate(baseDataGpa + page)).toBe(true);
  });
});
