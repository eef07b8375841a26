import { assert, assertDebug } from '../assert.js';

/**
 * The core lock: one word per core-buffer section (the L1D, the fill buffers) that the core's
 * hyperthreads take around an access or a flush when they run in different worker threads. It lives
 * here, beside the kick protocol, because it is the one other place a model thread may block: the cache
 * model (src/cache/) calls `acquireCoreLock`/`releaseCoreLock` and never waits itself
 * (test/architecture/import-rules.test.ts checks that no file in src/cache/ calls Atomics.wait).
 *
 * Why no wake-up is lost: a waiter marks the word contended with one exchange and then sleeps only
 * while the word still holds `lockContended` (Atomics.wait compares and blocks atomically); the holder's
 * release exchanges the word to free and, having seen it contended, notifies. Either the release comes
 * first and the sleeper's compare fails, or the sleeper is blocked when the notify comes. Each sleep
 * also has a timeout (`lockSleepMs`), after which the waiter looks again.
 */
/** Lock word values. */
export const lockFree = 0;
export const lockHeld = 1;
/** Held, and a waiter may be asleep on the word: the release wakes one. */
export const lockContended = 2;

/**
 * Spins before a waiter sleeps. The lock is held for one access (tens of ns) or one flush (a few µs), so
 * a short spin almost always wins; past it the holder has most likely lost its CPU (the `workers` backend
 * with more hyperthreads than CPUs), and spinning on would only take the CPU it needs.
 */
export const lockSpins = 1 << 10;
/** How long one sleep on the lock word lasts before the waiter looks again. */
const lockSleepMs = 5;
/**
 * How long a waiter waits in all before it declares the lock lost (a holder that died with it): far past
 * any OS time slice (~1-10 ms) or a stop of the holder's process for a debugger or a GC, short of a hang.
 * A bound in time, not in spins: on a loaded 2-CPU machine 2^24 spins took ~100 ms, which a descheduled
 * holder could outlast.
 */
export const lockWaitMaxMs = 10_000;

/**
 * Takes a section's lock word. The fast path is one compare-exchange: in the single-threaded `sim`
 * backend the lock is never contended (and not taken at all: `concurrent` false).
 */
export function acquireCoreLock(i32: Int32Array, lockI32Index: number, waitMaxMs = lockWaitMaxMs): void {
  if (Atomics.compareExchange(i32, lockI32Index, lockFree, lockHeld) === lockFree) return;
  acquireCoreLockSlow(i32, lockI32Index, waitMaxMs);
}

function acquireCoreLockSlow(i32: Int32Array, lockI32Index: number, waitMaxMs: number): void {
  for (let spin = 0; spin < lockSpins; spin++) {
    // Read before trying again so the spin does not bounce the line between cores with writes.
    if (Atomics.load(i32, lockI32Index) !== lockFree) continue;
    if (Atomics.compareExchange(i32, lockI32Index, lockFree, lockHeld) === lockFree) return;
  }
  // Then sleep on the word, as a futex mutex does (Drepper, "Futexes Are Tricky", 2011, mutex type 3):
  // marking it contended makes the holder's release wake a sleeper. A waiter that takes the lock this
  // way leaves it marked contended, so a release may wake nobody: harmless.
  const deadline = performance.now() + waitMaxMs;
  while (Atomics.exchange(i32, lockI32Index, lockContended) !== lockFree) {
    if (performance.now() > deadline) {
      assert(false, `core buffer lock at i32 index ${lockI32Index} still held after ${waitMaxMs} ms`);
    }
    Atomics.wait(i32, lockI32Index, lockContended, lockSleepMs);
  }
}

export function releaseCoreLock(i32: Int32Array, lockI32Index: number): void {
  // The paired check: only the holder releases, and it must still be held.
  const previous = Atomics.exchange(i32, lockI32Index, lockFree);
  assertDebug(previous !== lockFree, 'core buffer lock released while not held');
  if (previous === lockContended) Atomics.notify(i32, lockI32Index, 1);
}
