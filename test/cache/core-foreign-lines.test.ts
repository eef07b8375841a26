import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CoreForeignLines } from '../../src/cache/core-buffer.js';
import { CoreFillBuffers } from '../../src/cache/fill-buffers.js';
import { CoreL1d } from '../../src/cache/l1d.js';
import { domainCount as domainCountFor } from '../../src/memory/domains.js';
import { fillBufferI32s, l1dI32s } from '../../src/memory/sub-layouts.js';

const vmCount = 3;
const domainCount = domainCountFor(vmCount);

/** An L1D and fill buffers side by side in one SharedArrayBuffer, as a core has them. */
function makeCore(fillEntries: number) {
  const geometry = { sets: 8, ways: 2, replacement: 'lru' as const, domainCount };
  const l1dWords = l1dI32s(geometry);
  const i32 = new Int32Array(
    new SharedArrayBuffer((l1dWords + fillBufferI32s(fillEntries, domainCount)) * 4),
  );
  const l1d = new CoreL1d(i32, 0, geometry);
  const fillBuffers = new CoreFillBuffers(i32, l1dWords, fillEntries, domainCount);
  return { l1d, fillBuffers };
}

const accessArbitrary = fc.record({
  pfn: fc.integer({ min: 0, max: 40 }),
  lineInPage: fc.integer({ min: 0, max: 63 }),
  domain: fc.integer({ min: 0, max: domainCount - 1 }),
  flush: fc.integer({ min: 0, max: 40 }),
});

describe('CoreForeignLines', () => {
  const seed = 0xf0e1;
  it(`answers what the two buffers' foreignLines answer, plain and atomic, for every VM (seed ${seed})`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 4, 10),
        fc.array(accessArbitrary, { maxLength: 300 }),
        (entries, accesses) => {
          const { l1d, fillBuffers } = makeCore(entries);
          const counters: { vmId: number; atomic: boolean; counter: CoreForeignLines }[] = [];
          for (let vmId = 0; vmId < vmCount; vmId++) {
            for (const atomic of [false, true]) {
              counters.push({
                vmId,
                atomic,
                counter: new CoreForeignLines(l1d.countsView(), fillBuffers.countsView(), vmId, atomic),
              });
            }
          }
          let sawForeign = false;
          accesses.forEach(({ pfn, lineInPage, domain, flush }, step) => {
            if (flush === 0) l1d.flush();
            else if (flush === 1) fillBuffers.flush();
            else if (!l1d.access(pfn, lineInPage, domain)) fillBuffers.access(pfn, lineInPage, domain);
            for (const { vmId, atomic, counter } of counters) {
              const expected = l1d.foreignLines(vmId) + fillBuffers.foreignLines(vmId);
              if (expected > 0) sawForeign = true;
              expect(counter.count(), `step ${step}, vm ${vmId}, atomic ${atomic}`).toBe(expected);
            }
          });
          return accesses.length < 20 || sawForeign;
        },
      ),
      { seed, numRuns: 60 },
    );
  });

  it('refuses a VM the buffers have no domains for', () => {
    const { l1d, fillBuffers } = makeCore(4);
    expect(() => new CoreForeignLines(l1d.countsView(), fillBuffers.countsView(), vmCount, false)).toThrow(
      /no VM 3 among 10 domains/,
    );
  });
});
