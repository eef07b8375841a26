import { describe, expect, it } from 'vitest';
import { interruptNames } from '../../src/backend/sim/stepped-sim.js';
import { compiledCatalogueOf } from '../../src/cpu/handler-program.js';
import { defaultExploreCase } from '../../src/explore/explore-case.js';
import { Executor, fullRecordOf, type Transition } from '../../src/explore/explorer.js';
import { StateWalker } from '../../src/explore/state-walker.js';
import { namedPolicy } from '../../src/policy/policy-module.js';

/**
 * The explorer's save/restore (issue 23 item 3) against re-execution, its ground truth: along many
 * seeded random rounds, a state reached by restoring its parent's snapshot and taking one transition is
 * the state that re-executing the whole path from the initial state on fresh hyperthreads reaches:
 * the same full record of every JS-side object the walker reaches (nothing left out: clocks,
 * statistics, the monitor, the event log, in walk order, references as positions) and the same machine
 * buffer, byte for byte (every section, not only the dynamic ones the snapshot copies). Also: a second
 * restore of a snapshot gives the same record (restoring is idempotent), every object keeps the fields
 * it was first seen with, and the opaque compiled catalogue is never written.
 */

/** A small seeded generator (mulberry32): the paths are the same on every run. */
function seeded(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function bufferOf(executor: Executor): Uint8Array {
  const { i32 } = executor.machine;
  return new Uint8Array(i32.buffer, i32.byteOffset, i32.byteLength).slice();
}

function catalogueRecord(executor: Executor): unknown[] {
  const { machine, config, sim } = executor;
  return sim.threads.map((thread) =>
    new StateWalker(
      [compiledCatalogueOf(machine, thread.thread, thread.vmId, thread.vcpu, config.workload.catalogue)],
      {
        sharedBuffer: machine.i32.buffer,
        opaque: new Set([machine]),
        abstractIgnores: new Set(),
        abstractIgnoresKey: () => false,
      },
    ).record(),
  );
}

const cases = [
  ['asi', 2, 1],
  ['asi-stun', 2, 1],
  ['coschedule', 2, 1],
  ['linux-asi', 2, 1],
  ['planted-no-flush-after-nmi', 2, 1],
] as const;

describe('restore + one transition reaches the state re-execution reaches', () => {
  for (const [name, exits, nmi] of cases) {
    it(`${name}, ${exits} exits, ${nmi} NMI: 120 rounds from a pool of saved states`, () => {
      const executor = new Executor(defaultExploreCase(exits), namedPolicy(name), true);
      const { sim, draws } = executor;
      const catalogueBefore = catalogueRecord(executor);
      // A pool of saved states, as the search's frontier is: each round restores a random one (most
      // often not the live state) and takes a random transition from it.
      const pool = [{ snapshot: executor.capture(), path: [] as Transition[], nmiLeft: nmi as number }];
      const random = seeded(name.length * 7919 + exits);
      let compared = 0;
      try {
        for (let round = 0; round < 120; round++) {
          const from = pool[random(pool.length)];
          executor.restore(from.snapshot);
          if (sim.monitor.total > 0 || sim.exitsDone >= exits) continue;
          const runnable = sim.threads.map((_, t) => t).filter((t) => sim.runnable(t));
          const interrupt = from.nmiLeft > 0 && random(6) === 0;
          if (runnable.length === 0 && !interrupt) continue;
          let transition: Transition;
          if (interrupt || runnable.length === 0) {
            transition = { thread: random(sim.threads.length), choices: [], interrupt: interruptNames[0] };
          } else {
            const thread = runnable[random(runnable.length)];
            // The widths of the step's choice points, then a random pick at each.
            executor.apply(sim, draws, { thread, choices: [], interrupt: null });
            const picks = draws.widths.map((width) => random(width));
            executor.restore(from.snapshot);
            transition = { thread, choices: picks, interrupt: null };
          }
          executor.apply(sim, draws, transition);
          const path = [...from.path, transition];
          const restored = fullRecordOf(sim, draws);
          const restoredBuffer = bufferOf(executor);
          const snapshot = executor.capture();
          pool.push({ snapshot, path, nmiLeft: from.nmiLeft - (transition.interrupt === null ? 0 : 1) });
          const replayed = executor.execute(path);
          expect(fullRecordOf(replayed.sim, replayed.draws)).toEqual(restored);
          expect(Buffer.compare(bufferOf(executor), restoredBuffer)).toBe(0);
          // Back from the re-executed state (a different sim) to the saved one.
          executor.restore(snapshot);
          expect(fullRecordOf(sim, draws)).toEqual(restored);
          expect(Buffer.compare(bufferOf(executor), restoredBuffer)).toBe(0);
          compared++;
        }
        expect(compared).toBeGreaterThan(60);
        expect(catalogueRecord(executor)).toEqual(catalogueBefore);
        expect([...executor.walker.unreadable]).toEqual([]);
      } finally {
        executor.dispose();
      }
    });
  }
});
