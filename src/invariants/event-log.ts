import { type ExitReasonSpec, exitCatalogue } from '../cpu/exits.js';
import { modeNames } from '../cpu/modes.js';
import { formatVa } from '../paging/va-layout.js';

/**
 * The event log: a running hash of every event (the sim's determinism check hashes it), a ring of the
 * last events (for violation records and replay output), and optionally the whole list (for traces).
 * Events are five numbers: time, thread, kind, a, b — stored flat, nothing allocated per event unless
 * the full list is kept.
 */
export const EventKind = {
  mode: 0,
  enter: 1,
  exit: 2,
  kick: 3,
  switchToFull: 4,
  fault: 5,
  interrupt: 6,
  flush: 7,
  guestStep: 8,
  violation: 9,
  /**
   * A trace sample, kept only with the full list (traces): a = core, b = lines in the core's L1D foreign
   * to the VM the sampling hyperthread runs. Not hashed and not in the ring, so a traced run has the
   * same hash and the same violation records as one that is not.
   */
  foreignLines: 10,
} as const;
const kindNames = [
  'mode',
  'enter',
  'exit',
  'kick',
  'switch',
  'fault',
  'interrupt',
  'flush',
  'guest',
  'violation',
  'foreign',
];
const fields = 5;

export interface LoggedEvent {
  timeCycles: number;
  thread: number;
  kind: number;
  a: number;
  b: number;
}

export class EventLog {
  private hashValue = 0x811c9dc5;
  private readonly ring: Float64Array;
  private ringNext = 0;
  private ringCount = 0;
  /** Every event, when `keepAll` (time, thread, kind, a, b repeated). */
  readonly all: number[] | null;
  count = 0;

  readonly ringSize: number;
  readonly logGuestSteps: boolean;
  /** Where event times come from instead of the caller's (the workers backend's wall clock), or null. */
  private readonly clock: (() => number) | null;

  constructor(
    ringSize = 64,
    keepAll = false,
    /** Guest steps are many: hash them but keep them out of the ring and the list unless asked. */
    logGuestSteps = false,
    /**
     * Stamps every event with this clock's reading instead of the time the caller passes (a thread's
     * virtual cycles): the workers backend's traces are in wall-clock nanoseconds since the run began.
     */
    clock: (() => number) | null = null,
  ) {
    this.ringSize = ringSize;
    this.logGuestSteps = logGuestSteps;
    this.clock = clock;
    this.ring = new Float64Array(ringSize * fields);
    this.all = keepAll ? [] : null;
  }

  record(eventTime: number, thread: number, kind: number, a: number, b: number): void {
    const timeCycles = this.clock === null ? eventTime : this.clock();
    this.count++;
    // Guest steps are the bulk of events and follow from the others (their times show in the next
    // exit's time): counted, not hashed, unless asked for.
    if (kind === EventKind.guestStep && !this.logGuestSteps) return;
    let hash = this.hashValue;
    hash = Math.imul(hash ^ (timeCycles | 0), 0x01000193);
    hash = Math.imul(hash ^ Math.floor(timeCycles / 4294967296), 0x01000193);
    hash = Math.imul(hash ^ thread, 0x01000193);
    hash = Math.imul(hash ^ kind, 0x01000193);
    hash = Math.imul(hash ^ (a | 0), 0x01000193);
    hash = Math.imul(hash ^ Math.floor(a / 4294967296), 0x01000193);
    this.hashValue = Math.imul(hash ^ (b | 0), 0x01000193);
    const at = this.ringNext * fields;
    this.ring[at] = timeCycles;
    this.ring[at + 1] = thread;
    this.ring[at + 2] = kind;
    this.ring[at + 3] = a;
    this.ring[at + 4] = b;
    // A compare, not `%`: an integer division per event costs more than the rest of the ring write.
    this.ringNext = this.ringNext + 1 === this.ringSize ? 0 : this.ringNext + 1;
    if (this.ringCount < this.ringSize) this.ringCount++;
    this.all?.push(timeCycles, thread, kind, a, b);
  }

  /**
   * A guest step: counted, and hashed only with `logGuestSteps` (see `record`). Small on purpose: the
   * common case is a count.
   */
  recordGuestStep(timeCycles: number, thread: number): void {
    if (!this.logGuestSteps) {
      this.count++;
      return;
    }
    this.record(timeCycles, thread, EventKind.guestStep, 0, 0);
  }

  /** A trace-only sample (EventKind.foreignLines): kept in the full list, outside the hash and ring. */
  recordSample(eventTime: number, thread: number, kind: number, a: number, b: number): void {
    this.all?.push(this.clock === null ? eventTime : this.clock(), thread, kind, a, b);
  }

  /** Whether every event is kept (a trace is being recorded). */
  get keepsAll(): boolean {
    return this.all !== null;
  }

  /** The hash of every event so far, as 8 hex digits. */
  hash(): string {
    return (this.hashValue >>> 0).toString(16).padStart(8, '0');
  }

  /** The last `count` events, oldest first. */
  recent(count = this.ringSize): LoggedEvent[] {
    const events: LoggedEvent[] = [];
    const n = Math.min(count, this.ringCount);
    for (let i = n; i > 0; i--) {
      const slot = (this.ringNext - i + this.ringSize) % this.ringSize;
      const at = slot * fields;
      events.push({
        timeCycles: this.ring[at],
        thread: this.ring[at + 1],
        kind: this.ring[at + 2],
        a: this.ring[at + 3],
        b: this.ring[at + 4],
      });
    }
    return events;
  }

  /** Every kept event as objects (needs keepAll). */
  events(): LoggedEvent[] {
    const list = this.all ?? [];
    const events: LoggedEvent[] = [];
    for (let i = 0; i < list.length; i += fields) {
      events.push({
        timeCycles: list[i],
        thread: list[i + 1],
        kind: list[i + 2],
        a: list[i + 3],
        b: list[i + 4],
      });
    }
    return events;
  }
}

/**
 * One line per event, for replay output and violation records. `catalogue` names the exit variants:
 * the run's (with its user handlers), or the built-in one.
 */
export function describeEvent(
  event: LoggedEvent,
  catalogue: readonly ExitReasonSpec[] = exitCatalogue,
): string {
  const head = `t=${Math.round(event.timeCycles)} ht${event.thread} ${kindNames[event.kind] ?? event.kind}`;
  switch (event.kind) {
    case EventKind.mode:
      return `${head} ${modeNames[event.a]} -> ${modeNames[event.b]}`;
    case EventKind.exit:
      return `${head} ${catalogue[event.a]?.name ?? event.a}:${catalogue[event.a]?.variants[event.b]?.name ?? event.b}`;
    case EventKind.kick:
      return `${head} -> ht${event.a}`;
    case EventKind.switchToFull:
      return `${head} -> ${modeNames[event.a]}`;
    case EventKind.fault:
      return `${head} ${formatVa(event.a)} in ${catalogue[event.b]?.name ?? event.b}`;
    case EventKind.interrupt:
      return `${head} vector ${event.a}`;
    case EventKind.flush:
      return `${head} bits ${event.a}, ${event.b} lines`;
    case EventKind.violation:
      return `${head} INV-${event.a}`;
    default:
      return head;
  }
}
