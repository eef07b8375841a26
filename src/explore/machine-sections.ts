import type { Machine } from '../machine.js';
import type { SectionName } from '../memory/layout.js';

/**
 * Save and restore of the machine's dynamic sections (issue 23 item 3): the words a run changes (core
 * words, L1Ds and fill buffers, TLBs, mailboxes, thread records, statistics, today's ASI's branch
 * predictors, the RMP: the sections
 * Machine.resetDynamicState clears; the RMP only under a confidential VM). Frames, page tables and the stored config are built once and
 * never written by a step (the differential test in test/explore/ compares the whole buffer). A
 * capture is the words that differ from the base (the state after the start steps), as index/value
 * pairs: a state costs what its steps changed.
 */
export class MachineSections {
  /** Each dynamic section as a view on the machine, its name, and its base copy. */
  private readonly views: Int32Array[];
  readonly names: SectionName[];
  private readonly bases: Int32Array[];
  /** Words in the dynamic sections. */
  readonly words: number;
  private scratch = new Int32Array(1024);

  constructor(machine: Machine) {
    const { cores, threads, threadStats, rmp, predictors } = machine.layout.sections;
    const base = machine.i32.byteOffset;
    // The RMP changes only under a confidential VM (coco/): left out otherwise (the differential test
    // compares the whole buffer, RMP included).
    const confidential = machine.config.vms.some((vm) => vm.confidential === true);
    const kept = (
      confidential
        ? [cores, threads, threadStats, rmp, predictors]
        : [cores, threads, threadStats, predictors]
    ).filter((section) => section.lengthI32 > 0);
    this.names = kept.map((section) => section.name);
    this.views = kept.map(
      (section) => new Int32Array(machine.i32.buffer, base + section.offsetI32 * 4, section.lengthI32),
    );
    this.bases = this.views.map((view) => view.slice());
    this.words = this.views.reduce((sum, view) => sum + view.length, 0);
  }

  /** The words that differ from the base now: (section, index, value) triples. */
  capture(): Int32Array {
    let length = 0;
    for (let s = 0; s < this.views.length; s++) {
      const view = this.views[s];
      const base = this.bases[s];
      for (let i = 0; i < view.length; i++) {
        if (view[i] === base[i]) continue;
        if (length + 3 > this.scratch.length) {
          const grown = new Int32Array(this.scratch.length * 2);
          grown.set(this.scratch);
          this.scratch = grown;
        }
        this.scratch[length++] = s;
        this.scratch[length++] = i;
        this.scratch[length++] = view[i];
      }
    }
    return this.scratch.slice(0, length);
  }

  /** The section's length in words. */
  length(section: number): number {
    return this.views[section].length;
  }

  /** Puts the dynamic sections back as `capture` recorded them. */
  restore(capture: Int32Array): void {
    for (let s = 0; s < this.views.length; s++) this.views[s].set(this.bases[s]);
    for (let at = 0; at < capture.length; at += 3) this.views[capture[at]][capture[at + 1]] = capture[at + 2];
  }
}
