import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/assert.js';
import {
  acquireCoreLock,
  lockContended,
  lockFree,
  lockHeld,
  releaseCoreLock,
} from '../../src/kick/core-lock.js';

const distBuilt = existsSync(fileURLToPath(new URL('../../dist/src/internal.js', import.meta.url)));
const lockIndex = 0;
const counterIndex = 16;

function startWorker(buffer: SharedArrayBuffer, rounds: number): Promise<void> {
  const worker = new Worker(new URL('../fixtures/core-lock.worker.mjs', import.meta.url), {
    workerData: { buffer, lockIndex, counterIndex, rounds },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error('core-lock worker did not finish within 20 s'));
    }, 20_000);
    worker.once('message', () => {
      clearTimeout(timer);
      void worker.terminate().then(() => resolve());
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Blocks this thread for `ms` without spinning. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('core-buffer lock', () => {
  it('is taken and released in one thread', () => {
    const i32 = new Int32Array(new SharedArrayBuffer(64));
    acquireCoreLock(i32, lockIndex);
    expect(i32[lockIndex]).toBe(lockHeld);
    releaseCoreLock(i32, lockIndex);
    expect(i32[lockIndex]).toBe(lockFree);
  });

  it('declares a lock that is never released lost after its wait bound, naming the word', () => {
    const i32 = new Int32Array(new SharedArrayBuffer(64));
    i32[lockIndex] = lockHeld;
    const started = performance.now();
    expect(() => acquireCoreLock(i32, lockIndex, 50)).toThrow(AssertionError);
    expect(() => acquireCoreLock(i32, lockIndex, 50)).toThrow(/lock at i32 index 0 still held after 50 ms/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
  });

  it.skipIf(!distBuilt)(
    'a waiter on a lock held for a long time sleeps on the word (marks it contended) and gets it on release',
    async () => {
      const buffer = new SharedArrayBuffer(128);
      const i32 = new Int32Array(buffer);
      acquireCoreLock(i32, lockIndex);
      const done = startWorker(buffer, 1);
      // Held far longer than the waiter spins: it must go to sleep, and say so in the word.
      const deadline = performance.now() + 10_000;
      while (Atomics.load(i32, lockIndex) !== lockContended && performance.now() < deadline) sleep(1);
      expect(Atomics.load(i32, lockIndex), 'the waiter marked the lock contended').toBe(lockContended);
      sleep(50);
      expect(Atomics.load(i32, counterIndex), 'nothing ran under the lock while it was held').toBe(0);
      releaseCoreLock(i32, lockIndex);
      await done;
      expect(Atomics.load(i32, counterIndex)).toBe(1);
      expect(Atomics.load(i32, lockIndex)).toBe(lockFree);
    },
  );

  it.skipIf(!distBuilt)('keeps two threads increments apart under contention', async () => {
    const buffer = new SharedArrayBuffer(128);
    const i32 = new Int32Array(buffer);
    const rounds = 20_000;
    const done = startWorker(buffer, rounds);
    for (let round = 0; round < rounds; round++) {
      acquireCoreLock(i32, lockIndex);
      i32[counterIndex] = i32[counterIndex] + 1;
      releaseCoreLock(i32, lockIndex);
    }
    await done;
    expect(Atomics.load(i32, counterIndex)).toBe(2 * rounds);
    expect(Atomics.load(i32, lockIndex)).toBe(lockFree);
  });
});
