import { assert } from '../assert.js';

/**
 * Save and restore of the JS-side state of a stepped run (issue 23 item 3), by walking the object graph
 * generically: no list of fields. From its roots (the stepped sim: its hyperthreads and everything they
 * own, the monitor, the event log) the walker visits every reachable object and records, per object, its
 * own enumerable fields (numbers, booleans, strings, null, and references to other objects, which it
 * follows), an array's elements, a Map's or Set's entries, and a typed array's contents. `restore` puts
 * every recorded object back in place: its fields, elements, entries and contents, references included,
 * so an object a step replaced comes back as the object it was, with what it held.
 *
 * Not walked (kept as references, never changed by a restore):
 * - typed arrays over the machine's buffer (`sharedBuffer`): the machine's state, saved by copying the
 *   buffer's dynamic sections (snapshot.ts);
 * - the `opaque` objects the caller names: immutable by contract (the run's config, the policy, the
 *   Machine object itself, whose state is its buffer);
 * - functions (a closure's captured variables cannot be read: a model object that kept state in a
 *   closure would not be restored; the differential test in test/explore/ would see it);
 * - objects of a kind the walker cannot read (WebAssembly memories and instances, weak collections,
 *   ArrayBuffers, promises): counted in `unreadable` by class name, and never restored.
 *
 * Why this is enough: every field of the run that a step changes is either in the machine buffer or
 * reachable from the roots (a step reaches state only through `this`), except module-level state
 * (none in src/cpu, src/kick, src/invariants beyond caches keyed by the machine, whose entries depend
 * only on the machine's immutable page tables). The differential test checks it where it matters: for
 * many states, restore + one step gives byte-for-byte the state (walker record and whole machine
 * buffer) that re-executing the path from the initial state gives.
 *
 * A capture is a diff against the base (the first capture): only objects whose record differs are
 * kept, so a state costs what its steps changed, not the whole graph.
 */

/** A recorded object's contents: its fields' values in key order, or a typed array's copy. */
type Segment = unknown[] | ArrayBufferView;

export interface Capture {
  /** Objects whose record differs from the base, and their records. */
  readonly objects: readonly object[];
  readonly segments: readonly Segment[];
  /** Rough bytes held (8 per value). */
  readonly bytes: number;
}

/** Where the abstract state goes (for the hash): numbers only. */
export interface AbstractSink {
  push(value: number): void;
  stringId(text: string): number;
}

export interface WalkerOptions {
  /** The machine's buffer: views on it are not walked (the machine's state is copied as sections). */
  sharedBuffer: ArrayBufferLike;
  /** Objects kept as references and never walked: immutable by contract. */
  opaque: ReadonlySet<object>;
  /**
   * Left out of the abstract state (the hash), still saved and restored: fields by name (statistics,
   * and every virtual-time field, by the `Cycles` suffix), and the objects reached only through them.
   */
  abstractIgnoresKey: (key: string) => boolean;
  /** Objects left out of the abstract state with everything reached only through them (the monitor). */
  abstractIgnores: ReadonlySet<object>;
  /**
   * Check at every walk that each object still has the fields it had when first seen (a field added
   * later would be neither saved nor restored): the differential test turns it on; off, the walk trusts
   * class instances to keep their shape.
   */
  checkShapes?: boolean;
}

const kindObject = 0;
const kindArray = 1;
const kindTyped = 2;
const kindMap = 3;
const kindSet = 4;
const kindOpaque = 5;

function kindOf(value: object, options: WalkerOptions): number {
  if (typeof value === 'function' || options.opaque.has(value) || Object.isFrozen(value)) return kindOpaque;
  if (ArrayBuffer.isView(value)) return value.buffer === options.sharedBuffer ? kindOpaque : kindTyped;
  if (Array.isArray(value)) return kindArray;
  if (value instanceof Map) return kindMap;
  if (value instanceof Set) return kindSet;
  const proto = Object.getPrototypeOf(value);
  if (
    value instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer) ||
    value instanceof WeakMap ||
    value instanceof WeakSet ||
    value instanceof Promise ||
    value instanceof WebAssembly.Memory ||
    value instanceof WebAssembly.Instance ||
    value instanceof WebAssembly.Module ||
    value instanceof RegExp ||
    value instanceof Date
  )
    return kindOpaque;
  assert(proto === null || typeof proto === 'object', 'an object with an object prototype');
  return kindObject;
}

function sameSegment(a: ArrayBufferView, b: Segment): boolean {
  if (!ArrayBuffer.isView(b)) return false;
  const x = a as unknown as ArrayLike<unknown>;
  const y = b as unknown as ArrayLike<unknown>;
  if (x.length !== y.length) return false;
  // Plain !==: a NaN reads as changed (copied, harmless), and 0 and -0 as the same.
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** What the walker knows of an object, found at first sight (an object's kind and shape do not change). */
interface Info {
  kind: number;
  shape: Shape | null;
  /** Per field: left out of the abstract state (`abstractIgnoresKey`). */
  ignoredFields: boolean[] | null;
  /** The object itself is left out of the abstract state (`abstractIgnores`). */
  ignored: boolean;
  /** Its index in the base, or -1. */
  baseAt: number;
  /** The walk that last reached it, and its position in that walk. */
  epoch: number;
  at: number;
}

export class StateWalker {
  /** The base: every object reachable at construction and its record. */
  private readonly baseObjects: object[] = [];
  private readonly baseSegments: Segment[] = [];
  private readonly baseShapes: (Shape | null)[] = [];
  /** Class names of objects the walker could not read (reached but not restored). */
  readonly unreadable = new Set<string>();
  /** Objects (and their segments) of the last walk, in walk order. */
  private walked: object[] = [];
  private walkedSegments: (Segment | null)[] = [];
  private readonly infos = new WeakMap<object, Info>();
  private epoch = 0;
  private scratch: unknown[] = [];

  constructor(
    private readonly roots: readonly object[],
    private readonly options: WalkerOptions,
  ) {
    this.walk(null);
    for (let i = 0; i < this.walked.length; i++) {
      const object = this.walked[i];
      const info = this.infos.get(object) as Info;
      info.baseAt = i;
      this.baseObjects.push(object);
      this.baseSegments.push(this.walkedSegments[i] as Segment);
      this.baseShapes.push(info.shape);
    }
  }

  /** Objects and values in the base (the graph's size). */
  get baseSize(): { objects: number; values: number } {
    let values = 0;
    for (const segment of this.baseSegments)
      values += ArrayBuffer.isView(segment)
        ? (segment as unknown as ArrayLike<number>).length
        : segment.length;
    return { objects: this.baseObjects.length, values };
  }

  /**
   * Records the state reachable now, as a diff against the base; with `sink`, also writes the abstract
   * state (every walked object's record in walk order, references as walk positions, ignored fields and
   * objects left out) for the hash.
   */
  capture(sink: AbstractSink | null = null): Capture {
    this.walk(sink);
    const objects: object[] = [];
    const segments: Segment[] = [];
    let bytes = 0;
    for (let i = 0; i < this.walked.length; i++) {
      const segment = this.walkedSegments[i];
      if (segment === null) continue;
      objects.push(this.walked[i]);
      segments.push(segment);
      bytes += 16 + 8 * (ArrayBuffer.isView(segment) ? segment.byteLength / 8 : segment.length);
    }
    return { objects, segments, bytes: Math.ceil(bytes) };
  }

  /** The full record of the state reachable now (every object, not a diff): for tests' comparisons. */
  record(): unknown[] {
    this.walk(null);
    const out: unknown[] = [];
    for (let i = 0; i < this.walked.length; i++) {
      const object = this.walked[i];
      const info = this.infos.get(object) as Info;
      const segment = this.walkedSegments[i] ?? this.baseSegments[info.baseAt];
      const values = ArrayBuffer.isView(segment)
        ? Array.from(segment as unknown as ArrayLike<number>)
        : segment.map((value) => {
            if (typeof value === 'function') return 'fn';
            if (value === null || typeof value !== 'object') return value;
            const target = this.infos.get(value);
            return target !== undefined && target.epoch === this.epoch && target.kind !== kindOpaque
              ? `@${target.at}`
              : `opaque:${value.constructor?.name}`;
          });
      out.push([object.constructor?.name ?? 'null', values]);
    }
    return out;
  }

  /** Whether `object` has the same record in captures `a` and `b` (absent from a capture: its base record). */
  sameIn(object: object, a: Capture, b: Capture): boolean {
    const info = this.infos.get(object);
    const base = info === undefined || info.baseAt < 0 ? undefined : this.baseSegments[info.baseAt];
    const atA = a.objects.indexOf(object);
    const atB = b.objects.indexOf(object);
    const x = atA >= 0 ? a.segments[atA] : base;
    const y = atB >= 0 ? b.segments[atB] : base;
    if (x === undefined || y === undefined) return x === y;
    if (ArrayBuffer.isView(x)) return sameSegment(x, y);
    if (ArrayBuffer.isView(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
    return true;
  }

  /**
   * Every object of the abstract state reachable from `root` now: the walk's rules (opaque objects and
   * those the abstract state leaves out are neither listed nor followed).
   */
  abstractReach(root: object): Set<object> {
    const reached = new Set<object>();
    const stack: object[] = [root];
    while (stack.length > 0) {
      const object = stack.pop() as object;
      if (reached.has(object)) continue;
      const info = this.infoOf(object);
      if (info.kind === kindOpaque || info.ignored) continue;
      reached.add(object);
      if (info.kind === kindTyped) continue;
      const values: unknown[] =
        info.kind === kindMap
          ? [...(object as Map<unknown, unknown>)].flat()
          : info.kind === kindSet
            ? [...(object as Set<unknown>)]
            : info.kind === kindArray
              ? (object as unknown[])
              : (info.shape as Shape).keys.map((key) => (object as Record<string, unknown>)[key]);
      for (const value of values)
        if (value !== null && (typeof value === 'object' || typeof value === 'function')) stack.push(value);
    }
    return reached;
  }

  /** Puts back the state `capture` recorded: every base object to its base record, then the diff. */
  restore(capture: Capture): void {
    const { baseObjects, baseSegments, baseShapes } = this;
    for (let i = 0; i < baseObjects.length; i++) apply(baseObjects[i], baseSegments[i], baseShapes[i]);
    for (let i = 0; i < capture.objects.length; i++) {
      const object = capture.objects[i];
      apply(object, capture.segments[i], (this.infos.get(object) as Info).shape);
    }
  }

  /**
   * An object's info, made at first sight. Its shape (class instances and plain objects): its keys as
   * first seen and a reader and a writer of its fields in that order, compiled per shape (`new
   * Function` over the key names), so that each field access is a named property access the engine
   * caches, where a keyed access in a loop over many classes is a dictionary lookup each time.
   */
  private infoOf(object: object): Info {
    let info = this.infos.get(object);
    if (info !== undefined) return info;
    const { options } = this;
    const kind = kindOf(object, options);
    let shape: Shape | null = null;
    let ignoredFields: boolean[] | null = null;
    if (kind === kindObject) {
      shape = shapeOfKeys(Object.keys(object));
      ignoredFields = shape.keys.map((key) => options.abstractIgnoresKey(key));
    }
    if (
      kind === kindOpaque &&
      typeof object !== 'function' &&
      !options.opaque.has(object) &&
      !ArrayBuffer.isView(object) &&
      !Object.isFrozen(object)
    )
      this.unreadable.add(object.constructor?.name ?? 'null-prototype');
    info = {
      kind,
      shape,
      ignoredFields,
      ignored: options.abstractIgnores.has(object),
      baseAt: -1,
      epoch: -1,
      at: -1,
    };
    this.infos.set(object, info);
    return info;
  }

  /**
   * Depth-first from the roots; fills `walked` and `walkedSegments` (null where the object's record is
   * its base record: nothing allocated for it); writes the abstract state to `sink`.
   */
  private walk(sink: AbstractSink | null): void {
    const { options } = this;
    const epoch = ++this.epoch;
    const walked: object[] = [];
    const segments: (Segment | null)[] = [];
    this.walked = walked;
    this.walkedSegments = segments;
    const visit = (object: object, info: Info, abstract: boolean): void => {
      const kind = info.kind;
      info.epoch = epoch;
      info.at = walked.length;
      walked.push(object);
      const slot = segments.length;
      segments.push(null);
      const base = info.baseAt < 0 ? undefined : this.baseSegments[info.baseAt];
      const inAbstract = sink !== null && abstract && !info.ignored;
      if (kind === kindTyped) {
        const items = object as unknown as ArrayLike<number>;
        if (base === undefined || !sameSegment(object as ArrayBufferView, base))
          segments[slot] = (object as Uint8Array).slice();
        if (inAbstract) {
          sink.push(items.length);
          for (let i = 0; i < items.length; i++) sink.push(Number(items[i]));
        }
        return;
      }
      let values: unknown[] | null = null;
      let length: number;
      const shape = info.shape;
      if (kind === kindArray) length = (object as unknown[]).length;
      else if (shape !== null) {
        if (options.checkShapes === true)
          assert(
            Object.keys(object).join() === shape.keys.join(),
            `an object keeps its fields (${object.constructor?.name}: ${Object.keys(object).join()})`,
          );
        length = shape.keys.length;
        values = this.scratch;
        shape.read(object, values);
      } else {
        values = [];
        if (kind === kindMap)
          for (const [key, value] of object as Map<unknown, unknown>) values.push(key, value);
        else for (const item of object as Set<unknown>) values.push(item);
        length = values.length;
      }
      const record = object as unknown[];
      let same = base !== undefined && !ArrayBuffer.isView(base) && base.length === length;
      if (inAbstract) sink.push(length);
      const scratched = values === this.scratch;
      if (scratched) this.scratch = [];
      const ignoredFields = info.ignoredFields;
      for (let i = 0; i < length; i++) {
        const value = values !== null ? values[i] : record[i];
        if (same && !Object.is(value, (base as unknown[])[i])) same = false;
        const fieldAbstract = inAbstract && (ignoredFields === null || !ignoredFields[i]);
        if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
          const target = this.infoOf(value);
          if (target.kind === kindOpaque) {
            if (fieldAbstract) sink.push(-3);
            continue;
          }
          if (target.epoch !== epoch) visit(value, target, fieldAbstract);
          if (fieldAbstract) sink.push(-10 - target.at);
        } else if (fieldAbstract) abstractValue(value, sink);
      }
      if (same) {
        if (scratched) this.scratch = values as unknown[];
        return;
      }
      if (values === null) values = record.slice();
      else if (scratched) values = (values as unknown[]).slice(0, length);
      segments[slot] = values;
    };
    for (const root of this.roots) {
      const info = this.infoOf(root);
      if (info.epoch !== epoch) visit(root, info, true);
    }
  }
}

function abstractValue(value: unknown, sink: AbstractSink): void {
  switch (typeof value) {
    case 'number':
      sink.push(value);
      return;
    case 'boolean':
      sink.push(value ? 1 : 0);
      return;
    case 'string':
      sink.push(sink.stringId(value));
      return;
    case 'undefined':
      sink.push(-2);
      return;
    default:
      sink.push(value === null ? -1 : sink.stringId(String(value)));
  }
}

interface Shape {
  keys: readonly string[];
  read: (object: object, out: unknown[]) => void;
  write: (object: object, values: readonly unknown[]) => void;
}

const shapesByKeys = new Map<string, Shape>();

function shapeOfKeys(keys: string[]): Shape {
  const id = keys.join('\u0000');
  let shape = shapesByKeys.get(id);
  if (shape === undefined) {
    const names = keys.map((key) => JSON.stringify(key));
    shape = {
      keys,
      read: new Function(
        'o',
        'v',
        names.map((name, i) => `v[${i}] = o[${name}];`).join('\n'),
      ) as Shape['read'],
      write: new Function(
        'o',
        'v',
        names.map((name, i) => `o[${name}] = v[${i}];`).join('\n'),
      ) as Shape['write'],
    };
    shapesByKeys.set(id, shape);
  }
  return shape;
}

function apply(object: object, segment: Segment, shape: Shape | null): void {
  if (ArrayBuffer.isView(segment)) {
    (object as Uint8Array).set(segment as Uint8Array);
    return;
  }
  if (Array.isArray(object)) {
    object.length = segment.length;
    for (let i = 0; i < segment.length; i++) object[i] = segment[i];
    return;
  }
  if (object instanceof Map) {
    object.clear();
    for (let i = 0; i < segment.length; i += 2) object.set(segment[i], segment[i + 1]);
    return;
  }
  if (object instanceof Set) {
    object.clear();
    for (const item of segment) object.add(item);
    return;
  }
  assert(shape !== null && shape.keys.length === segment.length, 'a walked object has its shape');
  shape.write(object, segment);
}
