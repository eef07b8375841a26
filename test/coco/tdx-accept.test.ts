import { describe, expect, it } from 'vitest';
import {
  TdxGuestMemory,
  tdxAcceptMemory,
  tdxLevel1G,
  tdxLevel2M,
  tdxLevel4K,
  tdxLevelPages,
} from '../../src/coco/tdx-accept.js';

const pages2M = tdxLevelPages[tdxLevel2M];
const pages1G = tdxLevelPages[tdxLevel1G];

describe('TDG.MEM.PAGE.ACCEPT', () => {
  it('accepts a pending page once and reports TDX_PAGE_ALREADY_ACCEPTED the second time', () => {
    const memory = new TdxGuestMemory(16);
    memory.augment(0, 16);
    expect(memory.pageAccept(3, tdxLevel4K)).toBe('TDX_SUCCESS');
    expect(memory.state(3)).toBe('accepted');
    expect(memory.pageAccept(3, tdxLevel4K)).toBe('TDX_PAGE_ALREADY_ACCEPTED');
  });

  it('refuses misaligned sizes, sizes the VMM cannot map, and absent pages', () => {
    const memory = new TdxGuestMemory(2 * pages2M);
    expect(memory.pageAccept(0, tdxLevel4K)).toBe('TDX_EPT_WALK_FAILED');
    memory.augment(0, 2 * pages2M, tdxLevel4K);
    expect(memory.pageAccept(1, tdxLevel2M)).toBe('TDX_OPERAND_INVALID');
    expect(memory.pageAccept(0, tdxLevel2M)).toBe('TDX_PAGE_SIZE_MISMATCH');
  });
});

describe('tdx_accept_memory size choice (tdx-shared.c)', () => {
  it('uses one 1 GiB accept for an aligned 1 GiB range', () => {
    const memory = new TdxGuestMemory(pages1G);
    memory.augment(0, pages1G, tdxLevel1G);
    const outcome = tdxAcceptMemory(memory, 0, pages1G);
    expect(outcome).toEqual({ ok: true, calls: [{ gfn: 0, level: tdxLevel1G, status: 'TDX_SUCCESS' }] });
    expect(memory.state(pages1G - 1)).toBe('accepted');
  });

  it('uses 4 KiB up to the next 2 MiB boundary, 2 MiB in the middle, 4 KiB for the tail', () => {
    const memory = new TdxGuestMemory(4 * pages2M);
    memory.augment(0, 4 * pages2M, tdxLevel2M);
    const start = pages2M - 2;
    const end = 3 * pages2M + 1;
    const outcome = tdxAcceptMemory(memory, start, end);
    expect(outcome.ok).toBe(true);
    expect(outcome.calls.map((call) => [call.gfn, call.level])).toEqual([
      [pages2M - 2, tdxLevel4K],
      [pages2M - 1, tdxLevel4K],
      [pages2M, tdxLevel2M],
      [2 * pages2M, tdxLevel2M],
      [3 * pages2M, tdxLevel4K],
    ]);
    expect(memory.state(start - 1)).toBe('pending');
    expect(memory.state(end)).toBe('pending');
  });

  it('falls back to smaller sizes when the VMM can only map 4 KiB, trying each size once per page', () => {
    const memory = new TdxGuestMemory(2 * pages2M);
    memory.augment(0, 2 * pages2M, tdxLevel4K);
    const outcome = tdxAcceptMemory(memory, 0, pages2M + 1);
    expect(outcome.ok).toBe(true);
    expect(outcome.calls[0]).toEqual({ gfn: 0, level: tdxLevel2M, status: 'TDX_PAGE_SIZE_MISMATCH' });
    expect(outcome.calls[1]).toEqual({ gfn: 0, level: tdxLevel4K, status: 'TDX_SUCCESS' });
    // One failed 2 MiB try at gfn 0 (at gfn 512 only one page remains), plus 513 4 KiB accepts.
    expect(outcome.calls).toHaveLength(1 + pages2M + 1);
  });

  it('reports a second accept of an accepted page as INV-11 and stops', () => {
    const memory = new TdxGuestMemory(pages2M);
    memory.augment(0, pages2M, tdxLevel2M);
    expect(tdxAcceptMemory(memory, 10, 12).ok).toBe(true);
    const outcome = tdxAcceptMemory(memory, 8, 16);
    expect(outcome).toMatchObject({
      ok: false,
      failedGfn: 10,
      status: 'TDX_PAGE_ALREADY_ACCEPTED',
      violation: { invariant: 'INV-11', mechanism: 'tdg.mem.page.accept', gfn: 10 },
    });
    // Pages before the accepted one were accepted on the way; nothing after it was touched.
    expect(memory.state(9)).toBe('accepted');
    expect(memory.state(12)).toBe('pending');
  });

  it('fails without an INV-11 record when the page is simply not there', () => {
    const memory = new TdxGuestMemory(8);
    expect(tdxAcceptMemory(memory, 0, 1)).toMatchObject({
      ok: false,
      status: 'TDX_EPT_WALK_FAILED',
      violation: null,
    });
  });
});
