import { describe, expect, it } from 'vitest';
import { type ArchAccept, UnacceptedMemory, unacceptedUnitPages } from '../../src/coco/lazy-accept.js';
import { TdxGuestMemory, tdxAcceptMemory, tdxLevel2M } from '../../src/coco/tdx-accept.js';

const unit = unacceptedUnitPages;
const unitCount = 8;
const gfnCount = unitCount * unit;

function setup(archAccept?: ArchAccept) {
  const calls: Array<[number, number]> = [];
  const memory = new UnacceptedMemory({
    gfnCount,
    baseGfn: 0,
    unitCount,
    inFlightMax: 4,
    archAccept: (start, end) => {
      calls.push([start, end]);
      return archAccept ? archAccept(start, end) : { ok: true };
    },
  });
  return { memory, calls };
}

describe('recording unaccepted memory (EFI stub process_unaccepted_memory)', () => {
  it('accepts a range shorter than two units at once and marks nothing', () => {
    const { memory, calls } = setup();
    const result = memory.processUnaccepted(100, 100 + 2 * unit - 1);
    expect(result.markedUnits).toBeNull();
    expect(calls).toEqual([[100, 100 + 2 * unit - 1]]);
    expect(memory.unacceptedUnitCount()).toBe(0);
  });

  it('accepts the unaligned head and tail at once and marks only the aligned middle', () => {
    const { memory, calls } = setup();
    const start = unit - 3;
    const end = 5 * unit + 7;
    const result = memory.processUnaccepted(start, end);
    expect(calls).toEqual([
      [start, unit],
      [5 * unit, end],
    ]);
    expect(result.markedUnits).toEqual([1, 5]);
    expect([0, 1, 2, 3, 4, 5].map((u) => memory.isUnitUnaccepted(u))).toEqual([
      false,
      true,
      true,
      true,
      true,
      false,
    ]);
  });
});

describe('accepting memory (accept_memory)', () => {
  it('accepts one extra guard unit when the range ends on a unit boundary (load_unaligned_zeropad)', () => {
    const { memory, calls } = setup();
    memory.processUnaccepted(0, gfnCount);
    const result = memory.acceptMemory(unit, 2 * unit, 0);
    expect(result).toMatchObject({ kind: 'done', guardUnit: 2 });
    expect(calls).toEqual([[unit, 3 * unit]]);
    expect(memory.isUnitUnaccepted(2)).toBe(false);
    expect(memory.isUnitUnaccepted(3)).toBe(true);
  });

  it('adds no guard unit when the range ends inside a unit', () => {
    const { memory, calls } = setup();
    memory.processUnaccepted(0, gfnCount);
    const result = memory.acceptMemory(unit + 5, 2 * unit - 1, 0);
    expect(result).toMatchObject({ kind: 'done', guardUnit: -1 });
    expect(calls).toEqual([[unit, 2 * unit]]);
    expect(memory.isUnitUnaccepted(2)).toBe(true);
  });

  it('looks one unit further in range_contains_unaccepted_memory when the end is aligned', () => {
    const { memory } = setup();
    memory.processUnaccepted(2 * unit, 4 * unit);
    expect(memory.rangeContainsUnaccepted(0, 2 * unit)).toBe(true);
    expect(memory.rangeContainsUnaccepted(0, 2 * unit - 1)).toBe(false);
  });

  it('never accepts a cleared unit again', () => {
    const { memory, calls } = setup();
    memory.processUnaccepted(0, gfnCount);
    memory.acceptMemory(0, 3 * unit + 1, 0);
    const before = calls.length;
    const again = memory.acceptMemory(unit, 3 * unit + 1, 1);
    expect(again).toMatchObject({ kind: 'done', accepted: [], violations: [] });
    expect(calls).toHaveLength(before);
  });

  it('reports INV-11 when firmware re-reports accepted memory as unaccepted and it is accepted again', () => {
    const tdx = new TdxGuestMemory(gfnCount);
    tdx.augment(0, gfnCount, tdxLevel2M);
    const { memory } = setup((start, end) => {
      const outcome = tdxAcceptMemory(tdx, start, end);
      return outcome.ok ? { ok: true } : { ok: false, detail: outcome.status, violation: outcome.violation };
    });
    memory.processUnaccepted(0, gfnCount);
    expect(memory.acceptMemory(0, unit - 1, 0)).toMatchObject({ kind: 'done', violations: [] });
    // Planted bug: the first unit is marked unaccepted a second time.
    memory.processUnaccepted(0, 2 * unit);
    const result = memory.acceptMemory(0, unit - 1, 0);
    expect(result.kind).toBe('done');
    if (result.kind !== 'done') return;
    // Caught twice: by the model's history and by the TDX module's TDX_PAGE_ALREADY_ACCEPTED.
    expect(result.violations.map((v) => v.mechanism)).toEqual(['unaccepted-memory', 'tdg.mem.page.accept']);
    expect(result.failures).toEqual(['TDX_PAGE_ALREADY_ACCEPTED']);
  });
});

describe('accepts in flight (accepting_list)', () => {
  it('answers busy to a second hyperthread whose request shares a unit, even at different pages', () => {
    const { memory, calls } = setup();
    memory.processUnaccepted(0, gfnCount);
    const first = memory.beginAccept(unit + 1, unit + 2, 0);
    expect(first.kind).toBe('started');
    expect(memory.beginAccept(unit + 100, unit + 101, 1)).toEqual({ kind: 'busy', heldBy: 0 });
    expect(memory.acceptMemory(unit + 100, unit + 101, 1)).toEqual({ kind: 'busy', heldBy: 0 });
    // A request for another unit goes ahead meanwhile.
    expect(memory.acceptMemory(5 * unit + 1, 5 * unit + 2, 1)).toMatchObject({ kind: 'done' });
    if (first.kind !== 'started') return;
    memory.finishAccept(first.ticket, 0);
    // The retry finds the unit accepted and does no work.
    const callsBefore = calls.length;
    expect(memory.acceptMemory(unit + 100, unit + 101, 1)).toMatchObject({ kind: 'done', accepted: [] });
    expect(calls).toHaveLength(callsBefore);
  });

  it('counts the guard unit as in flight too', () => {
    const { memory } = setup();
    memory.processUnaccepted(0, gfnCount);
    const first = memory.beginAccept(0, unit, 0);
    expect(first).toMatchObject({ kind: 'started', startUnit: 0, endUnit: 2, guardUnit: 1 });
    expect(memory.beginAccept(unit + 3, unit + 4, 1)).toEqual({ kind: 'busy', heldBy: 0 });
  });
});
