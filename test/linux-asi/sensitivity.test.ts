import { describe, expect, it } from 'vitest';
import {
  allowlist2019Mapping,
  regionAllocation,
  restrictedMapping,
  sensitivityRegionKinds,
} from '../../src/linux-asi/sensitivity.js';
import { regionKinds } from '../../src/memory/regions.js';

describe('linux-asi allocation-time sensitivity (a denylist)', () => {
  it('covers every region kind of the machine layout, plus free frames', () => {
    expect([...sensitivityRegionKinds].sort()).toEqual([...regionKinds.map((r) => r.kind), 'free'].sort());
  });

  it('maps kernel data, keys and per-CPU data into both classes: only GFP_USER-family memory is sensitive (RFC v2 patch 14/29)', () => {
    for (const kind of ['kernel-text', 'percpu', 'keys', 'vm-struct', 'vcpu-struct', 'kvm-module'] as const) {
      expect(restrictedMapping(kind, 'kvm'), kind).toBe('mapped');
      expect(restrictedMapping(kind, 'user'), kind).toBe('mapped');
    }
  });

  it('leaves out the page cache, other processes and free frames for both classes', () => {
    for (const kind of ['page-cache', 'other-processes', 'free'] as const) {
      expect(restrictedMapping(kind, 'kvm'), kind).toBe('unmapped');
      expect(restrictedMapping(kind, 'user'), kind).toBe('unmapped');
    }
  });

  it("leaves guest RAM and the VMM's memory out of the KVM class, but the user class reaches its own process's memory", () => {
    expect(restrictedMapping('guest-memory', 'kvm')).toBe('unmapped');
    expect(restrictedMapping('vmm-heap', 'kvm')).toBe('unmapped');
    expect(restrictedMapping('guest-memory', 'user')).toBe('mapped');
    expect(restrictedMapping('vmm-heap', 'user')).toBe('mapped');
  });

  it('a kernel that allocates keys __GFP_SENSITIVE leaves them out', () => {
    expect(regionAllocation('keys', { keysSensitive: true }).sensitive).toBe(true);
    expect(restrictedMapping('keys', 'kvm', { keysSensitive: true })).toBe('unmapped');
  });

  it('differs from the 2019 allowlist exactly where the designs disagree', () => {
    const differences = sensitivityRegionKinds
      .filter((kind) => restrictedMapping(kind, 'kvm') !== allowlist2019Mapping(kind))
      .map((kind) => `${kind}: today ${restrictedMapping(kind, 'kvm')}, 2019 ${allowlist2019Mapping(kind)}`)
      .sort();
    expect(differences).toEqual([
      'guest-memory: today unmapped, 2019 mapped',
      'keys: today mapped, 2019 unmapped',
      'page-tables: today mapped, 2019 unmapped',
      'percpu: today mapped, 2019 unmapped',
    ]);
  });
});
