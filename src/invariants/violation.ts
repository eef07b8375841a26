/**
 * Invariant ids (DESIGN.md "Invariants") and the violation record every checker produces.
 */
export const invariantIds = [
  'INV-1',
  'INV-2',
  'INV-3',
  'INV-4',
  'INV-5',
  'INV-6',
  'INV-7',
  'INV-8',
  'INV-9',
  'INV-10',
  'INV-11',
  'INV-12',
  'INV-13',
  'INV-14',
  'INV-15',
] as const;
export type InvariantId = (typeof invariantIds)[number];

export const invariantTitles: Record<InvariantId, string> = {
  'INV-1': 'sibling exclusion: no guest code while a sibling is in full or vmm',
  'INV-2': 'no foreign secrets: no guest code while the core holds a foreign line',
  'INV-3': 'entry barrier: enter only when every sibling is in guest/isolated of this VM, held or idle',
  'INV-4': 'kick before switch: every sibling in the guest is kicked before a switch to full',
  'INV-5': 'isolated contents: kvm:N maps no host frame and no other VM frame',
  'INV-6': 'no propagation: changing kvm:N never writes a kernel page-table page',
  'INV-7': 'faults reported: an unmapped access in isolation is reported and handled by a switch',
  'INV-8': 'interrupts leave isolation: IRQ/NMI/#MC arriving in isolation are handled in full after a kick',
  'INV-9': 'liveness: no deadlock, no lost wake-up, held threads re-enter within a bound',
  'INV-10': 'private stays private: no host address space reaches a guest-private frame',
  'INV-11': 'validate once: a guest page is validated/accepted at most once',
  'INV-12': 'bounded tracking: shared-range tracking stays within its bound',
  'INV-13': 'tracking agrees: bitmap, range list and interval tree agree with the per-page truth',
  'INV-14':
    "data taint (today's ASI): no guest runs while its core holds data its class protects (sensitive, not its own) without the flush",
  'INV-15':
    "control taint (today's ASI): no victim runs with branch-predictor state trained by a domain its class must be protected from",
};

export interface Violation {
  id: InvariantId;
  /** The hyperthreads involved: the one that stepped first. */
  threads: number[];
  /** Their modes at the instant, in the same order. */
  modes: string[];
  /** What was wrong, in words. */
  detail: string;
  /** The offending address (canonical hex), if any. */
  address?: string;
  /** The offending cache line, if any. */
  line?: { pfn: number; lineInPage: number; domain: string };
  /** Virtual time (sim) or wall-clock nanoseconds since start (workers) of the thread that saw it. */
  timeCycles: number;
  /** The thread's step count at the instant. */
  step: number;
  /** The last events before it, oldest first (from the trace ring). */
  recentEvents?: string[];
}

export type ViolationCounts = Record<InvariantId, number>;

/** The number of each id ('INV-7' -> 7), as event-log records carry it; built once, not parsed per event. */
export const invariantNumbers: Readonly<ViolationCounts> = Object.fromEntries(
  invariantIds.map((id) => [id, Number(id.slice('INV-'.length))]),
) as ViolationCounts;

export function zeroCounts(): ViolationCounts {
  return Object.fromEntries(invariantIds.map((id) => [id, 0])) as ViolationCounts;
}
