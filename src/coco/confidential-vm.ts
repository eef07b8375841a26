import { assert } from '../assert.js';
import { pageBytes } from '../constants.js';
import type { ConfidentialWork } from '../cpu/confidential-work.js';
import type { CompiledVariant } from '../cpu/handler-program.js';
import type { Violation } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import { privateDomain, vmDomain } from '../memory/domains.js';
import type { Region } from '../memory/regions.js';
import { guestSpace, kernelSpace, kvmSpace, vmmSpace } from '../paging/address-space.js';
import { MapFlag } from '../paging/entry-format.js';
import { directMapVa, formatVa, vmmGuestMemoryVa } from '../paging/va-layout.js';
import { guestPvalidate, type SnpGuestView } from './pvalidate.js';
import { type Rmp, rmpPageSize4K } from './rmp.js';
import {
  checkAgreement,
  checkBound,
  createTracker,
  type SharedRangeTracker,
  trackerKinds,
} from './shared-tracking/index.js';

/**
 * A confidential VM (AMD SEV-SNP style) living in the machine: its guest memory frames move between
 * shared (owner vm:N, mapped by the host) and private (owner private:N, assigned in the RMP, validated
 * by the guest, unmapped from every host address space). This is where the standalone coco modules
 * (RMP, PVALIDATE, shared-range trackers) meet the page tables and the monitor:
 *
 * - INV-10: a page becoming private is split out of the kernel's 2 MiB direct-map leaf and unmapped
 *   from `kernel`, `kvm:N` and `vmm:N` (as guest_memfd removes private folios from the direct map); a
 *   host access then faults instead of reaching it. The RMP check reports any host access that would.
 * - INV-11: the guest validates a page after every assignment (PVALIDATE); a second validation of a
 *   page that was validated before — what a guest that trusts a hostile VMM's remap would do — is
 *   reported. A correct guest terminates instead.
 * - INV-12/13: the host's record of shared ranges is kept in all three trackers, checked against the
 *   per-page truth and their bounds after every conversion.
 *
 * Guest frame `gfn` is host frame `guestMemory.firstPfn + gfn` (the EPT built by address-space.ts).
 *
 * The checks sit between `// detector INV-n begin` / `end` comments, as in invariants/monitor.ts, for
 * `npm run check:detectors`.
 */
export interface ConfidentialOptions {
  /** SNP ASID of the guest (1..). */
  asid: number;
  /** A VMM that, on some of its exits, remaps a validated private page behind the guest's back. */
  hostileVmm: boolean;
  /** Planted guest bug: re-validates a page found unvalidated instead of terminating (breaks INV-11). */
  guestRevalidates: boolean;
  /** Planted host bug: a conversion to private forgets to unmap the VMM's mapping (breaks INV-10). */
  keepsVmmMapping: boolean;
  /** Bounds of the range-list / interval-tree trackers (defaults from the tracker module). */
  rangesMax?: number;
  nodesMax?: number;
  /**
   * The workload's VMM settings (config/workload.ts `confidential`: the backend passes them whole),
   * needed by `vmmExit` only: share of VMM exits on which a hostile VMM remaps a page, and the largest
   * range a conversion request names, in pages.
   */
  hostileRemapShare?: number;
  conversionPagesMax?: number;
}

export interface ConversionStats {
  toPrivate: number;
  toShared: number;
  accepts: number;
  hostileRemaps: number;
  guestTerminations: number;
  vmmFaults: number;
}

export class ConfidentialVm implements ConfidentialWork {
  readonly stats: ConversionStats = {
    toPrivate: 0,
    toShared: 0,
    accepts: 0,
    hostileRemaps: 0,
    guestTerminations: 0,
    vmmFaults: 0,
  };
  readonly trackers: SharedRangeTracker[];
  /** Per guest page: 1 when private. */
  readonly isPrivate: Uint8Array;
  /** Per guest page: 1 once the guest has validated it (since its last assignment by the guest's own request). */
  private readonly validatedOnce: Uint8Array;
  /** The host's truth of shared pages, for INV-13. */
  readonly truthShared: Uint8Array;
  readonly pages: number;
  private readonly memory: Region;
  private readonly guestView: SnpGuestView;
  /** The guest has stopped (it detected a remap): it converts nothing more. */
  terminated = false;

  constructor(
    private readonly machine: Machine,
    readonly vmId: number,
    private readonly rmp: Rmp,
    readonly options: ConfidentialOptions,
    private readonly report: (violation: Violation) => void,
  ) {
    const memory = machine.plan.regions.find(
      (region) => region.kind === 'guest-memory' && region.vmId === vmId,
    );
    assert(memory !== undefined, `VM ${vmId} has guest memory`);
    this.memory = memory;
    this.pages = memory.frames;
    this.isPrivate = new Uint8Array(this.pages);
    this.validatedOnce = new Uint8Array(this.pages);
    this.truthShared = new Uint8Array(this.pages);
    this.trackers = trackerKinds.map((kind) =>
      createTracker(kind, this.pages, { rangesMax: options.rangesMax, nodesMax: options.nodesMax }),
    );
    this.guestView = {
      asid: options.asid,
      pfnOf: (gfn) => (gfn >= 0 && gfn < this.pages ? this.memory.firstPfn + gfn : -1),
    };
    // Launch: every page but the GHCB page (gfn 0) is private. The lower half is validated at launch
    // (SNP_LAUNCH_UPDATE / early acceptance); the upper half is left unaccepted and is accepted lazily on
    // first touch (the #VC path; drivers/firmware/efi/unaccepted_memory.c in the guest).
    this.resetShared();
    const launchValidated = Math.max(1, Math.floor(this.pages / 2));
    this.convert(1, launchValidated - 1, true, 0, true);
    this.convert(launchValidated, this.pages - launchValidated, true, 0, false);
  }

  /** Every page shared and mapped by the host: the state a fresh (or reused) machine starts in. */
  private resetShared(): void {
    for (let gfn = 0; gfn < this.pages; gfn++) {
      const pfn = this.memory.firstPfn + gfn;
      this.rmp.makeShared(pfn, rmpPageSize4K);
      this.machine.frames.setOwner(pfn, vmDomain(this.vmId));
      this.mapOnHost(gfn, true);
    }
    for (const tracker of this.trackers) tracker.reset();
    for (const tracker of this.trackers) tracker.setShared(0, this.pages);
    this.truthShared.fill(1);
  }

  private mapOnHost(gfn: number, mapped: boolean): void {
    const pfn = this.memory.firstPfn + gfn;
    const tables = this.machine.pageTables;
    const directVa = directMapVa + pfn * pageBytes;
    if (mapped) {
      tables.map(kernelSpace, directVa, pfn, MapFlag.write);
      tables.map(kvmSpace(this.vmId), directVa, pfn, MapFlag.write);
      tables.map(vmmSpace(this.vmId), vmmGuestMemoryVa + gfn * pageBytes, pfn, MapFlag.write | MapFlag.user);
      return;
    }
    // Splits the 2 MiB direct-map leaf if one covers it, then removes the 4 KiB entry.
    tables.unmap(kernelSpace, directVa);
    tables.unmap(kvmSpace(this.vmId), directVa);
    if (!this.options.keepsVmmMapping) tables.unmap(vmmSpace(this.vmId), vmmGuestMemoryVa + gfn * pageBytes);
  }

  /**
   * Converts [gfn, gfn + npages) as the guest asked (MAP_GPA_RANGE or a PSC handled by the VMM), in the
   * order Linux's SNP guest uses: to shared, the guest rescinds its validation first, then the host
   * makes the frames shared; to private, the host assigns them, then the guest validates each.
   */
  convert(gfn: number, npages: number, toPrivate: boolean, timeCycles: number, validateNow = true): void {
    if (this.terminated) return;
    const end = Math.min(this.pages, gfn + npages);
    for (let page = Math.max(0, gfn); page < end; page++) {
      if ((this.isPrivate[page] === 1) === toPrivate) continue;
      const pfn = this.memory.firstPfn + page;
      if (toPrivate) {
        const assigned = this.rmp.makePrivate(pfn, page, this.options.asid, rmpPageSize4K);
        assert(assigned.ok, `RMPUPDATE of frame ${pfn} failed: ${assigned.ok ? '' : assigned.reason}`);
        this.machine.frames.setOwner(pfn, privateDomain(this.vmId));
        this.mapOnHost(page, false);
        this.isPrivate[page] = 1;
        this.validatedOnce[page] = 0;
        if (validateNow) this.validate(page, timeCycles);
        this.stats.toPrivate++;
      } else {
        const rescinded = guestPvalidate(this.rmp, this.guestView, page, rmpPageSize4K, false);
        assert(
          rescinded.kind === 'ok' || rescinded.kind === 'terminate',
          `rescind of gfn ${page}: ${rescinded.kind}`,
        );
        this.rmp.makeShared(pfn, rmpPageSize4K);
        this.machine.frames.setOwner(pfn, vmDomain(this.vmId));
        this.mapOnHost(page, true);
        this.isPrivate[page] = 0;
        this.stats.toShared++;
      }
    }
    const first = Math.max(0, gfn);
    if (end > first) {
      for (let page = first; page < end; page++) this.truthShared[page] = toPrivate ? 0 : 1;
      for (const tracker of this.trackers) {
        if (toPrivate) tracker.setPrivate(first, end - first);
        else tracker.setShared(first, end - first);
      }
      this.checkTracking(timeCycles);
    }
  }

  /** The guest's PVALIDATE of a page just assigned to it. A second validation is INV-11. */
  private validate(page: number, timeCycles: number): void {
    const outcome = guestPvalidate(this.rmp, this.guestView, page, rmpPageSize4K, true);
    if (outcome.kind === 'terminate' && outcome.violation) {
      // detector INV-11 (PVALIDATE refuses) begin
      this.report(this.violation('INV-11', `gfn ${page}: ${outcome.violation.detail}`, timeCycles));
      // detector INV-11 (PVALIDATE refuses) end
      return;
    }
    assert(outcome.kind === 'ok', `PVALIDATE of a freshly assigned gfn ${page}: ${outcome.kind}`);
    // detector INV-11 (validated twice) begin
    if (this.validatedOnce[page] === 1) {
      this.report(
        this.violation(
          'INV-11',
          `gfn ${page} validated a second time since the guest converted it`,
          timeCycles,
        ),
      );
    }
    // detector INV-11 (validated twice) end
    this.validatedOnce[page] = 1;
  }

  /** A hostile VMM remaps a validated private page: RMPUPDATE reassigns it, clearing Validated. */
  hostileRemap(random: () => number, timeCycles: number): void {
    if (!this.options.hostileVmm || this.terminated) return;
    const page = 1 + Math.floor(random() * (this.pages - 1));
    if (this.isPrivate[page] !== 1) return;
    const pfn = this.memory.firstPfn + page;
    this.rmp.makeShared(pfn, rmpPageSize4K);
    const reassigned = this.rmp.makePrivate(pfn, page, this.options.asid, rmpPageSize4K);
    assert(reassigned.ok, 'the hostile VMM reassigns a frame it just freed');
    this.stats.hostileRemaps++;
    void timeCycles;
  }

  /**
   * The guest touches a page. A private page not validated yet is either unaccepted (first touch: the
   * guest accepts it, lazily) or was validated before and remapped behind the guest's back: then a
   * correct guest terminates, and a buggy one validates it again (INV-11).
   */
  guestTouch(gfn: number, timeCycles: number): void {
    if (this.terminated || gfn < 0 || gfn >= this.pages || this.isPrivate[gfn] !== 1) return;
    if (this.rmp.entry(this.memory.firstPfn + gfn).validated) return;
    if (this.validatedOnce[gfn] === 0) {
      this.stats.accepts++;
      this.validate(gfn, timeCycles);
      return;
    }
    if (!this.options.guestRevalidates) {
      this.stats.guestTerminations++;
      this.terminated = true;
      return;
    }
    this.validate(gfn, timeCycles);
  }

  /** The VMM touches a guest page through its own mapping (virtio buffers): a private one must fault. */
  vmmTouch(gfn: number): void {
    if (gfn < 0 || gfn >= this.pages) return;
    const result = this.machine.pageTables.walk(
      vmmSpace(this.vmId),
      vmmGuestMemoryVa + gfn * pageBytes,
      0,
      false,
    );
    if (result < 0) {
      this.stats.vmmFaults++;
      return;
    }
    // detector INV-10 (VMM touch) begin
    const host = this.rmp.checkHostAccess(result, false);
    if (!host.ok) {
      const violation = this.violation(
        'INV-10',
        `the VMM reached guest-private gfn ${gfn} (frame ${result}) through vmm:${this.vmId}`,
        0,
      );
      violation.address = formatVa(vmmGuestMemoryVa + gfn * pageBytes);
      this.report(violation);
    }
    // detector INV-10 (VMM touch) end
  }

  /**
   * What the VMM does to the guest's memory on an exit to userspace (ConfidentialWork.vmmExit, which
   * gives the draws' order): the conversion the exit asks for, a virtio buffer touched through the VMM's
   * own mapping, and a hostile VMM's remap on a share of its exits.
   */
  vmmExit(conversion: CompiledVariant['conversion'], random: () => number, timeCycles: number): void {
    const { conversionPagesMax, hostileRemapShare } = this.options;
    assert(
      conversionPagesMax !== undefined && hostileRemapShare !== undefined,
      'a VMM exit needs the workload confidential settings (conversionPagesMax, hostileRemapShare)',
    );
    if (conversion === 'map-gpa-range' || conversion === 'psc') {
      const gfn = 1 + Math.floor(random() * (this.pages - 1));
      const npages = 1 + Math.floor(random() * conversionPagesMax);
      this.convert(gfn, npages, random() < 0.5, timeCycles);
    }
    this.vmmTouch(Math.floor(random() * this.pages));
    if (this.options.hostileVmm && random() < hostileRemapShare) this.hostileRemap(random, timeCycles);
  }

  /** An accept on the #VC / #VE path: the guest touches a random page (accepting it if unaccepted). */
  accept(random: () => number, timeCycles: number): void {
    this.guestTouch(1 + Math.floor(random() * (this.pages - 1)), timeCycles);
  }

  private checkTracking(timeCycles: number): void {
    // detector INV-12 begin
    for (const tracker of this.trackers) {
      const bound = checkBound(tracker);
      if (bound) {
        this.report(
          this.violation(
            'INV-12',
            `${bound.tracker} holds ${bound.entryCount} entries (${bound.memoryBytes} bytes), bound ${bound.entriesMax} (${bound.memoryBytesMax} bytes)`,
            timeCycles,
          ),
        );
      }
    }
    // detector INV-12 end
    // detector INV-13 begin
    const disagreement = checkAgreement(this.trackers, this.truthShared);
    if (disagreement) {
      this.report(
        this.violation(
          'INV-13',
          `${disagreement.tracker} says gfn ${disagreement.gfn} is ${disagreement.tracked ? 'shared' : 'private'}, truth ${disagreement.truth ? 'shared' : 'private'}`,
          timeCycles,
        ),
      );
    }
    // detector INV-13 end
  }

  private violation(id: Violation['id'], detail: string, timeCycles: number): Violation {
    return { id, threads: [], modes: [], detail: `vm:${this.vmId}: ${detail}`, timeCycles, step: 0 };
  }

  /** Whether the EPT still maps `gfn` (for tests). */
  guestMaps(gfn: number): boolean {
    return this.machine.pageTables.walk(guestSpace(this.vmId), gfn * pageBytes, 0, false) >= 0;
  }
}
