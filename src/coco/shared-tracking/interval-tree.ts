import { assert, assertDebug } from '../../assert.js';
import {
  bitmapBytesFor,
  isValidRange,
  type SharedRangeTracker,
  type TrackerBound,
  type TrackerUpdate,
} from './tracker.js';

/**
 * Shared ranges in a balanced binary search tree (AVL) keyed by range start, in a fixed pool of nodes
 * (Int32Array columns, free list threaded through `left`): the rbtree option of the kvm-list debate,
 * with a deterministic worst-case height instead of a red-black one.
 *
 * Stored intervals are kept disjoint and coalesced, like the range list's, so the stabbing query of a
 * general interval tree ("which intervals contain x") reduces to a predecessor search: the interval
 * with the largest start <= x contains x or nothing does. That is why the nodes carry no max-end
 * augmentation. Updates cost O((k + 1) log n) for k intervals touched.
 *
 * Bound: `nodesMax` nodes (default: as many as fit in the bytes of a bitmap of the same guest). The
 * pool is allocated at that size up front; `memoryBytes()` reports the bytes of the nodes in use.
 * Overflow: the same rule as the range list (tracker.ts).
 */

/** Five Int32 columns per node: start, end, left, right, height. */
export const intervalTreeBytesPerNode = 20;

export interface IntervalTreeOptions {
  readonly nodesMax?: number;
}

export function defaultNodesMax(gfnCount: number): number {
  return Math.max(1, Math.floor(bitmapBytesFor(gfnCount) / intervalTreeBytesPerNode));
}

const nil = -1;
/** An AVL tree of n nodes is at most 1.44 log2(n + 2) high: 46 for 2^31 nodes. */
const heightMax = 48;

export class IntervalTreeTracker implements SharedRangeTracker {
  readonly kind = 'interval-tree' as const;
  readonly gfnCount: number;
  readonly bound: TrackerBound;
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly heights: Int32Array;
  /** Scratch for the intervals one update touches (at most every node). */
  private readonly touchedStarts: Int32Array;
  /** Explicit stack for in-order walks. */
  private readonly walkStack: Int32Array;
  private root = nil;
  private freeHead = nil;
  private count = 0;
  private overflowFlag = false;

  constructor(gfnCount: number, options: IntervalTreeOptions = {}) {
    assert(Number.isSafeInteger(gfnCount) && gfnCount > 0, `IntervalTreeTracker: bad gfnCount ${gfnCount}`);
    assert(gfnCount <= 0x7fffffff, 'IntervalTreeTracker: interval ends must fit an Int32');
    const nodesMax = options.nodesMax ?? defaultNodesMax(gfnCount);
    assert(Number.isInteger(nodesMax) && nodesMax >= 1, `IntervalTreeTracker: bad nodesMax ${nodesMax}`);
    this.gfnCount = gfnCount;
    this.starts = new Int32Array(nodesMax);
    this.ends = new Int32Array(nodesMax);
    this.lefts = new Int32Array(nodesMax);
    this.rights = new Int32Array(nodesMax);
    this.heights = new Int32Array(nodesMax);
    this.touchedStarts = new Int32Array(nodesMax);
    this.walkStack = new Int32Array(heightMax);
    this.bound = { unit: 'nodes', entriesMax: nodesMax, memoryBytesMax: nodesMax * intervalTreeBytesPerNode };
    this.reset();
  }

  get overflowed(): boolean {
    return this.overflowFlag;
  }

  get entryCount(): number {
    return this.count;
  }

  /** Height of the tree (0 when empty), for balance checks. */
  height(): number {
    return this.heightOf(this.root);
  }

  /**
   * Checks every node: search order, disjoint non-touching intervals, stored heights and AVL balance.
   * Returns the first problem found, or null. For tests and checkers (walks the whole tree).
   */
  validate(): string | null {
    let previousEnd = -1;
    let problem: string | null = null;
    this.walkInOrder((node) => {
      if (problem !== null) return;
      if (this.starts[node] >= this.ends[node]) problem = `node ${node} is empty`;
      else if (this.starts[node] <= previousEnd) problem = `node ${node} overlaps or touches its predecessor`;
      const left = this.heightOf(this.lefts[node]);
      const right = this.heightOf(this.rights[node]);
      if (problem === null && this.heights[node] !== 1 + Math.max(left, right))
        problem = `node ${node} height stale`;
      if (problem === null && Math.abs(left - right) > 1)
        problem = `node ${node} unbalanced (${left} vs ${right})`;
      previousEnd = this.ends[node];
    });
    return problem;
  }

  setShared(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    let start = gfn;
    let end = gfn + npages;
    // Intervals touching or overlapping [start, end]: from the predecessor of start, while begin <= end.
    const touched = this.collect(start, end, true);
    if (touched === 0 && this.count === this.starts.length) {
      this.overflowFlag = true;
      return 'overflowed';
    }
    for (let i = 0; i < touched; i++) {
      const node = this.find(this.touchedStarts[i]);
      start = Math.min(start, this.starts[node]);
      end = Math.max(end, this.ends[node]);
    }
    for (let i = 0; i < touched; i++) this.root = this.removeAt(this.root, this.touchedStarts[i]);
    this.insert(start, end);
    return 'ok';
  }

  setPrivate(gfn: number, npages: number): TrackerUpdate {
    if (!isValidRange(this.gfnCount, gfn, npages)) return 'rejected';
    const start = gfn;
    const end = gfn + npages;
    const touched = this.collect(start, end, false);
    if (touched === 0) return 'ok';
    const leftStart = this.starts[this.find(this.touchedStarts[0])];
    const rightEnd = this.ends[this.find(this.touchedStarts[touched - 1])];
    let keepLeft = leftStart < start;
    let keepRight = rightEnd > end;
    let result: TrackerUpdate = 'ok';
    const pieces = (keepLeft ? 1 : 0) + (keepRight ? 1 : 0);
    if (this.count - touched + pieces > this.starts.length) {
      // Only a split of one interval into two can grow the tree. No room: keep the larger piece.
      this.overflowFlag = true;
      result = 'overflowed';
      if (start - leftStart >= rightEnd - end) keepRight = false;
      else keepLeft = false;
    }
    for (let i = 0; i < touched; i++) this.root = this.removeAt(this.root, this.touchedStarts[i]);
    if (keepLeft) this.insert(leftStart, start);
    if (keepRight) this.insert(end, rightEnd);
    return result;
  }

  isShared(gfn: number): boolean {
    const node = this.floor(gfn);
    return node !== nil && this.ends[node] > gfn;
  }

  ranges(): Array<[start: number, npages: number]> {
    const ranges: Array<[number, number]> = [];
    this.walkInOrder((node) => {
      ranges.push([this.starts[node], this.ends[node] - this.starts[node]]);
    });
    return ranges;
  }

  memoryBytes(): number {
    return this.count * intervalTreeBytesPerNode;
  }

  reset(): void {
    const nodesMax = this.starts.length;
    for (let node = 0; node < nodesMax; node++) this.lefts[node] = node + 1 < nodesMax ? node + 1 : nil;
    this.freeHead = 0;
    this.root = nil;
    this.count = 0;
    this.overflowFlag = false;
  }

  /**
   * Put the starts of the intervals that meet [start, end] into `touchedStarts`, in order, and return
   * how many. `touching`: also intervals that only touch it (setShared merges those); otherwise only
   * those that overlap [start, end) (setPrivate).
   */
  private collect(start: number, end: number, touching: boolean): number {
    let touched = 0;
    let node = this.floor(start);
    if (node !== nil && (touching ? this.ends[node] >= start : this.ends[node] > start)) {
      this.touchedStarts[touched++] = this.starts[node];
    }
    node = this.ceilingAbove(start);
    while (node !== nil && (touching ? this.starts[node] <= end : this.starts[node] < end)) {
      this.touchedStarts[touched++] = this.starts[node];
      node = this.ceilingAbove(this.starts[node]);
    }
    return touched;
  }

  /** Node with the largest start <= key, or nil. */
  private floor(key: number): number {
    let node = this.root;
    let best = nil;
    while (node !== nil) {
      if (this.starts[node] <= key) {
        best = node;
        node = this.rights[node];
      } else {
        node = this.lefts[node];
      }
    }
    return best;
  }

  /** Node with the smallest start > key, or nil. */
  private ceilingAbove(key: number): number {
    let node = this.root;
    let best = nil;
    while (node !== nil) {
      if (this.starts[node] > key) {
        best = node;
        node = this.lefts[node];
      } else {
        node = this.rights[node];
      }
    }
    return best;
  }

  private find(key: number): number {
    const node = this.floor(key);
    assert(node !== nil && this.starts[node] === key, `interval tree: no interval starts at ${key}`);
    return node;
  }

  private insert(start: number, end: number): void {
    assert(this.freeHead !== nil, 'interval tree: node pool exhausted (the bound check must come first)');
    const node = this.freeHead;
    this.freeHead = this.lefts[node];
    this.starts[node] = start;
    this.ends[node] = end;
    this.lefts[node] = nil;
    this.rights[node] = nil;
    this.heights[node] = 1;
    this.count++;
    this.root = this.insertAt(this.root, node);
    assertDebug(this.height() <= heightMax, 'interval tree: AVL height bound broken');
  }

  private insertAt(subtree: number, node: number): number {
    if (subtree === nil) return node;
    if (this.starts[node] < this.starts[subtree])
      this.lefts[subtree] = this.insertAt(this.lefts[subtree], node);
    else this.rights[subtree] = this.insertAt(this.rights[subtree], node);
    return this.rebalance(subtree);
  }

  private removeAt(subtree: number, key: number): number {
    assert(subtree !== nil, `interval tree: removing missing key ${key}`);
    if (key < this.starts[subtree]) {
      this.lefts[subtree] = this.removeAt(this.lefts[subtree], key);
    } else if (key > this.starts[subtree]) {
      this.rights[subtree] = this.removeAt(this.rights[subtree], key);
    } else if (this.lefts[subtree] === nil || this.rights[subtree] === nil) {
      const child = this.lefts[subtree] !== nil ? this.lefts[subtree] : this.rights[subtree];
      this.release(subtree);
      return child;
    } else {
      // Two children: take over the successor's interval, then remove the successor.
      let successor = this.rights[subtree];
      while (this.lefts[successor] !== nil) successor = this.lefts[successor];
      this.starts[subtree] = this.starts[successor];
      this.ends[subtree] = this.ends[successor];
      this.rights[subtree] = this.removeAt(this.rights[subtree], this.starts[successor]);
    }
    return this.rebalance(subtree);
  }

  private release(node: number): void {
    this.lefts[node] = this.freeHead;
    this.rights[node] = nil;
    this.freeHead = node;
    this.count--;
  }

  private heightOf(node: number): number {
    return node === nil ? 0 : this.heights[node];
  }

  private updateHeight(node: number): void {
    this.heights[node] = 1 + Math.max(this.heightOf(this.lefts[node]), this.heightOf(this.rights[node]));
  }

  private rotateRight(node: number): number {
    const pivot = this.lefts[node];
    this.lefts[node] = this.rights[pivot];
    this.rights[pivot] = node;
    this.updateHeight(node);
    this.updateHeight(pivot);
    return pivot;
  }

  private rotateLeft(node: number): number {
    const pivot = this.rights[node];
    this.rights[node] = this.lefts[pivot];
    this.lefts[pivot] = node;
    this.updateHeight(node);
    this.updateHeight(pivot);
    return pivot;
  }

  private rebalance(node: number): number {
    this.updateHeight(node);
    const balance = this.heightOf(this.lefts[node]) - this.heightOf(this.rights[node]);
    if (balance > 1) {
      const left = this.lefts[node];
      if (this.heightOf(this.lefts[left]) < this.heightOf(this.rights[left]))
        this.lefts[node] = this.rotateLeft(left);
      return this.rotateRight(node);
    }
    if (balance < -1) {
      const right = this.rights[node];
      if (this.heightOf(this.rights[right]) < this.heightOf(this.lefts[right])) {
        this.rights[node] = this.rotateRight(right);
      }
      return this.rotateLeft(node);
    }
    return node;
  }

  private walkInOrder(visit: (node: number) => void): void {
    let depth = 0;
    let node = this.root;
    while (node !== nil || depth > 0) {
      while (node !== nil) {
        assert(depth < heightMax, 'interval tree: walk deeper than the AVL height bound');
        this.walkStack[depth++] = node;
        node = this.lefts[node];
      }
      node = this.walkStack[--depth];
      visit(node);
      node = this.rights[node];
    }
  }
}
