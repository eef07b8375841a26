import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { pageBytes } from '../../src/constants.js';
import { attachMachine } from '../../src/machine.js';
import { domainHost } from '../../src/memory/domains.js';
import { kernelSpace, kvmSpace } from '../../src/paging/address-space.js';
import { smallMachine } from '../helpers/machines.js';

/** Runs the attach fixture in a real worker thread with a timeout, and joins it. */
// biome-ignore lint/suspicious/noExplicitAny: the worker answers plain structured-clone data checked field by field below
function runAttachWorker(data: Record<string, unknown>): Promise<any> {
  const worker = new Worker(new URL('../fixtures/attach.worker.mjs', import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error('attach worker did not answer within 20 s'));
    }, 20_000);
    worker.once('message', (message) => {
      clearTimeout(timer);
      void worker.terminate().then(() => resolve(message));
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

describe('one SharedArrayBuffer holds the whole machine', () => {
  it('attachMachine in a real worker thread sees the same frames, walks and L1D; writes there are seen here', async () => {
    const machine = smallMachine();
    const keys = machine.region('keys');
    const vcpu = machine.region('vcpu-struct:0/2');
    machine.l1d[0].access(keys.firstPfn, 3, domainHost);
    machine.l1d[0].access(vcpu.firstPfn, 0, vcpu.owner);
    const pfns = [0, keys.firstPfn, vcpu.firstPfn, machine.layout.frameCount - 1];
    const walks: [number, number][] = [
      [kernelSpace, machine.regionVa(keys)],
      [kvmSpace(0), machine.regionVa(keys)],
      [kvmSpace(0), machine.regionVa(vcpu) + pageBytes],
    ];
    const answer = await runAttachWorker({
      buffer: machine.buffer,
      pfns,
      walks,
      touch: { pfn: keys.firstPfn + 1, line: 9, domain: domainHost },
    });
    expect(answer.owners).toEqual(pfns.map((pfn) => machine.frames.ownerOf(pfn)));
    expect(answer.walks).toEqual(walks.map(([space, va]) => machine.pageTables.walk(space, va, 0, false)));
    expect(answer.walks[1]).toBeLessThan(0);
    expect(answer.l1d).toEqual([
      { valid: 2, host: 1 },
      { valid: 0, host: 0 },
    ]);
    expect(answer.summary).toEqual(machine.summary());
    // The worker's access landed in the shared buffer.
    expect(machine.l1d[1].validLines()).toBe(1);
    expect(machine.l1d[1].foreignLines(0)).toBe(1);
  });

  it('attachMachine in the same thread gives equal views; a foreign buffer is refused', () => {
    const machine = smallMachine();
    const attached = attachMachine(machine.buffer);
    expect(attached.layout).toEqual(machine.layout);
    expect(attached.config).toEqual(machine.config);
    expect(() => attachMachine(new SharedArrayBuffer(4096))).toThrow(/bad magic/);
  });

  it('the layout: sections 64-byte aligned, in order, not overlapping, padded per core and thread', () => {
    const { layout } = smallMachine();
    const sections = Object.values(layout.sections).sort((a, b) => a.offsetI32 - b.offsetI32);
    for (let i = 0; i < sections.length; i++) {
      expect(sections[i].offsetI32 % 16).toBe(0);
      if (i > 0)
        expect(sections[i].offsetI32).toBeGreaterThanOrEqual(
          sections[i - 1].offsetI32 + sections[i - 1].lengthI32,
        );
    }
    expect(layout.coreStrideI32s % 16).toBe(0);
    expect(layout.threadStrideI32s % 16).toBe(0);
    expect(layout.totalBytes).toBe(layout.totalI32s * 4);
  });
});
