import { describe, expect, it } from 'vitest';
import xxhash from 'xxhash-wasm';
import { interruptNames } from '../../src/backend/sim/stepped-sim.js';
import { defaultExploreCase, twoCoreExploreCase } from '../../src/explore/explore-case.js';
import {
  Executor,
  type ExploreBounds,
  explore,
  type Snapshot,
  StateHasher,
  type Transition,
} from '../../src/explore/explorer.js';
import { type Footprint, Footprints, independent } from '../../src/explore/footprint.js';
import { CoreField, coreFieldIndex, ThreadField, threadFieldIndex } from '../../src/memory/layout.js';
import { namedPolicy } from '../../src/policy/policy-module.js';

/**
 * The partial-order reduction (issue 23 item 4): sleep sets over footprint.ts's independence. Sleep
 * sets skip transitions, never states: a search with them must reach exactly the states and the
 * verdict a plain search reaches. The independence they rest on is checked where it is used: two
 * transitions it calls independent reach the same state in either order, each enabled after the other
 * with the same choice points. The atomicity argument (docs/explore.md): each step changes at most one
 * synchronisation word (a core's state or stun word, another thread's mailbox or acknowledgement).
 * Counts only, no timings.
 */

function bounds(exits: number, nmi = 0): ExploreBounds {
  return { exits, interrupts: { nmi, irq: 0, mc: 0 }, maxDepth: 200, timeLimitMs: null };
}

describe('sleep sets reach the same states and verdict as plain search, with fewer transitions', () => {
  const cases = [
    ['asi', '1 core x 2', defaultExploreCase(1), bounds(1, 1)],
    ['asi', '2 cores x 2, two VMs', twoCoreExploreCase(1), bounds(1)],
    ['coschedule', '2 cores x 2, two VMs', twoCoreExploreCase(1), bounds(1)],
    ['linux-asi', '1 core x 2', defaultExploreCase(1), bounds(1, 1)],
    ['planted-kick-after-switch', '1 core x 2', defaultExploreCase(2), bounds(2)],
  ] as const;
  for (const [name, machine, fuzzCase, limits] of cases) {
    it(`${name}, ${machine}, ${limits.exits} exits`, async () => {
      const policy = namedPolicy(name);
      const plain = await explore({ policy, fuzzCase, bounds: limits, reduction: 'none' });
      const reduced = await explore({ policy, fuzzCase, bounds: limits, reduction: 'sleep' });
      expect(plain.reduction).toBe('none');
      expect(reduced.reduction).toBe('sleep');
      expect(reduced.violations).toBe(plain.violations);
      expect(reduced.counterexample?.violation.id).toBe(plain.counterexample?.violation.id);
      expect(reduced.counterexample?.steps.length).toBe(plain.counterexample?.steps.length);
      if (plain.violations === 0) {
        expect(reduced.complete).toBe(true);
        expect(reduced.states).toBe(plain.states);
      }
      expect(reduced.transitions).toBeLessThanOrEqual(plain.transitions);
      if (machine.startsWith('2 cores')) expect(reduced.transitions).toBeLessThan(plain.transitions);
    });
  }
});

/** A small seeded generator (mulberry32). */
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

interface Taken {
  widths: number[];
  footprint: Footprint;
  hash: bigint;
  snapshot: Snapshot;
  left: number[];
}

describe('what the footprints call independent commutes', () => {
  const cases = [
    ['asi', defaultExploreCase(2)],
    ['linux-asi', defaultExploreCase(2)],
    ['asi', twoCoreExploreCase(2)],
    ['asi-stun', twoCoreExploreCase(2)],
  ] as const;
  for (const [name, fuzzCase] of cases) {
    it(`${name}, ${fuzzCase.machine.cores} core(s): independent pairs give one state in either order`, async () => {
      const { h64Raw } = await xxhash();
      const executor = new Executor(fuzzCase, namedPolicy(name));
      const { sim, draws } = executor;
      const hasher = new StateHasher(executor.machine, h64Raw);
      const footprints = new Footprints(executor.machine, sim, executor.sections, executor.walker, false);
      /** Restores `from`, takes `transition`: its picks' widths, footprint, state. */
      const take = (from: Snapshot, left: number[], transition: Transition): Taken => {
        executor.restore(from);
        const waits = footprints.waitsOf();
        executor.apply(sim, draws, transition);
        const widths = [...draws.widths];
        const after = [...left];
        if (transition.interrupt !== null) after[0]--;
        const { hash, snapshot } = hasher.hash(executor, after);
        const footprint = {
          reads: footprints.reads(transition.thread, transition.interrupt),
          writes: footprints.writes(from, snapshot, waits, footprints.waitsOf(), transition.interrupt),
        };
        return { widths, footprint, hash, snapshot, left: after };
      };
      const transitionsAt = (left: number[]): Transition[] => {
        const list: Transition[] = [];
        for (let t = 0; t < sim.threads.length; t++) {
          if (sim.runnable(t)) list.push({ thread: t, choices: [], interrupt: null });
          if (left[0] > 0) list.push({ thread: t, choices: [], interrupt: interruptNames[0] });
        }
        return list;
      };
      const random = seeded(fuzzCase.machine.cores * 31 + name.length);
      const pool: { snapshot: Snapshot; left: number[] }[] = [{ snapshot: executor.capture(), left: [1] }];
      let independentPairs = 0;
      let pairs = 0;
      try {
        for (let round = 0; round < 150; round++) {
          const from = pool[random(pool.length)];
          executor.restore(from.snapshot);
          if (sim.monitor.total > 0 || sim.exitsDone >= fuzzCase.run.exits) continue;
          const choices = transitionsAt(from.left);
          if (choices.length < 2) continue;
          const a = choices[random(choices.length)];
          const b = choices[random(choices.length)];
          const takenA = take(from.snapshot, from.left, a);
          pool.push({ snapshot: takenA.snapshot, left: takenA.left });
          if (a.thread === b.thread || (a.interrupt !== null && b.interrupt !== null)) continue;
          const takenB = take(from.snapshot, from.left, b);
          pairs++;
          if (!independent(takenA.footprint, takenB.footprint)) continue;
          independentPairs++;
          // b after a, a after b: each still enabled, with the same choice points, and one state.
          executor.restore(takenA.snapshot);
          expect(b.interrupt !== null || sim.runnable(b.thread)).toBe(true);
          const ab = take(takenA.snapshot, takenA.left, b);
          executor.restore(takenB.snapshot);
          expect(a.interrupt !== null || sim.runnable(a.thread)).toBe(true);
          const ba = take(takenB.snapshot, takenB.left, a);
          expect(ab.widths).toEqual(takenB.widths);
          expect(ba.widths).toEqual(takenA.widths);
          expect(ab.hash).toBe(ba.hash);
        }
        expect(pairs).toBeGreaterThan(20);
        // Siblings of one core share its record (mode word, L1D): on 1 core x 2 almost no pair is
        // independent; across cores most are.
        if (fuzzCase.machine.cores > 1) expect(independentPairs).toBeGreaterThan(pairs / 4);
      } finally {
        executor.dispose();
      }
    });
  }
});

describe('atomicity: a step changes one synchronisation word, or one of two known pairs', () => {
  for (const name of ['asi', 'asi-stun', 'coschedule', 'linux-asi']) {
    it(name, () => {
      const fuzzCase = defaultExploreCase(3);
      const executor = new Executor(fuzzCase, namedPolicy(name));
      const { sim, draws, machine } = executor;
      const { layout } = machine;
      // Words another thread reads to decide: each core's state (modes) and stun words, each thread's
      // mailbox and acknowledgement counter.
      const sync: number[] = [];
      for (let core = 0; core < machine.config.cores; core++)
        sync.push(
          coreFieldIndex(layout, core, CoreField.state),
          coreFieldIndex(layout, core, CoreField.stun),
        );
      for (let thread = 0; thread < layout.threadCount; thread++)
        sync.push(
          threadFieldIndex(layout, thread, ThreadField.mailbox),
          threadFieldIndex(layout, thread, ThreadField.kickAcks),
        );
      const random = seeded(name.length);
      const root = executor.capture();
      let steps = 0;
      let single = 0;
      const pairsSeen = new Set<string>();
      try {
        for (let walk = 0; walk < 30; walk++) {
          executor.restore(root);
          for (let depth = 0; depth < 60; depth++) {
            if (sim.monitor.total > 0 || sim.exitsDone >= 3) break;
            const runnable = sim.threads.map((_, t) => t).filter((t) => sim.runnable(t));
            if (runnable.length === 0) break;
            const thread = runnable[random(runnable.length)];
            const before = sync.map((index) => machine.i32[index]);
            executor.apply(sim, draws, { thread, choices: [random(4)], interrupt: null });
            const changed = sync.filter((index, at) => machine.i32[index] !== before[at]);
            // Its own mailbox (taking a vector) may change with anything: no other thread reads it to
            // decide. Beyond it, one word, or one of the two pairs docs/explore.md discusses.
            const hyperthread = sim.threads[thread];
            const own = threadFieldIndex(layout, hyperthread.thread, ThreadField.mailbox);
            const seen = changed.filter((index) => index !== own);
            if (seen.length <= 1) single++;
            else {
              const coreWords = [CoreField.state, CoreField.stun].map((field) =>
                coreFieldIndex(layout, hyperthread.core, field),
              );
              const ownAcks = threadFieldIndex(layout, hyperthread.thread, ThreadField.kickAcks);
              const siblingMailboxes: number[] = [];
              for (let sibling = 0; sibling < machine.config.smt; sibling++) {
                const id = hyperthread.core * machine.config.smt + sibling;
                if (id !== hyperthread.thread)
                  siblingMailboxes.push(threadFieldIndex(layout, id, ThreadField.mailbox));
              }
              const modes = seen.filter((index) => coreWords.includes(index));
              const rest = seen.filter((index) => !coreWords.includes(index));
              // (a) a kick taken: the mode changes and the thread's own acknowledgement counter counts.
              // (b) a mode or stun change and a kick sent to one sibling, in one step.
              const kind =
                modes.length === 1 && rest.length === 1 && rest[0] === ownAcks
                  ? 'a'
                  : modes.length === 1 && rest.length === 1 && siblingMailboxes.includes(rest[0])
                    ? 'b'
                    : `other: ${seen.join(',')}`;
              expect(kind, `step ${depth} of walk ${walk} (${hyperthread.phaseName})`).toMatch(/^[ab]$/);
              pairsSeen.add(kind);
            }
            steps++;
          }
        }
        expect(steps).toBeGreaterThan(300);
        expect(single).toBeGreaterThan(steps * 0.9);
      } finally {
        executor.dispose();
      }
    });
  }
});
