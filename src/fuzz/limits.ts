import { assert } from '../assert.js';
import { smtMax } from '../constants.js';

/**
 * Every bound of the fuzzer in one place (STYLE.md, TigerBeetle), with why. A fuzz case is kept small
 * on purpose: a campaign's worth is cases per second, and the planted bugs all show on one or two
 * cores within a few hundred exits.
 */
export const fuzzLimits = {
  /** Cores per case: two cores already give cross-core IPIs and two L1Ds. */
  coresMax: 2,
  /** Hyperthreads per core: the machine's own limit (one nibble per sibling in the core word). */
  smtMax,
  /** VMs per case: two VMs give cross-VM placement on one core (INV-3's cross-VM exposure). */
  vmsMax: 2,
  vcpusPerVmMax: 4,
  /** Guest memory per VM: 1-2 MiB keeps the page tables and the machine buffer small (~1 MiB). */
  guestMemoryMiBMax: 2,
  /**
   * Physical memory of every case: 40 MiB holds kernel text, host secrets (4 MiB), two VMs of 2 MiB,
   * per-thread regions and the VMM heaps with room to spare (measured: 24 MiB is the least that builds).
   */
  memoryMiB: 40,
  /** Page-table pool: 256 pages hold kernel + kvm:N + guest:N + vmm:N of two small VMs. */
  pageTablePoolPages: 256,
  /** Workload exits per case: "hundreds", the size; a run of 300 exits takes ~3-8 ms. */
  exitsMax: 300,
  /** Distinct (reason:variant) entries of a generated mix. */
  mixEntriesMax: 6,
  /** Generated handler programs per case (each also a mix entry), and ops per program. */
  handlersMax: 3,
  handlerOpsMax: 8,
  /**
   * A generated access stays in the first page of its region (offsetBytes + bytes <= 4096): every
   * region of every fuzz machine has at least one page, so a drawn program fits any drawn machine.
   */
  handlerAccessBytesMax: 4096,
  /** Compute of one generated op: short (tens of cycles) to long (a slow emulation path). */
  handlerComputeCyclesMax: 20_000,
  /** Exactly timed NMI / #MC / IRQ injections per case. */
  injectionsMax: 6,
  /** Latest injection time: a 300-exit run lasts ~1-6 M cycles, so 2 M lands in most runs. */
  injectionAtCyclesMax: 2_000_000,
  /**
   * Today's Linux ASI (fuzz/linux-asi-draws.ts): pairs of injections whose second lands in the first's
   * handler (a nested NMI in an IRQ's), on top of `injectionsMax`. Two pairs give two nestings a case.
   */
  nestedInjectionPairsMax: 2,
  /**
   * The second of a pair arrives 1..4,000 cycles after the first: inside the exit it caused (a VM exit
   * round trip is ~1,550 cycles, costs.ts; an interrupt exit's handler adds hundreds to thousands), so
   * it meets asi_intr_enter at depth 1; longer delays land after the handler, as single ones do.
   */
  nestedInjectionDelayCyclesMax: 4000,
  /**
   * A user-class case (fuzz/linux-asi-draws.ts `withUserClass`): user-mode cycles between two kernel
   * entries, drawn log-uniform between these. 100 is the least a calibration gives (exit-interval.ts
   * `exitIntervalCyclesMin`), the FIO storm's regime: fio-randread-tmpfs's 1,003,102 preads/s (cpu/mixes.ts,
   * Jackman's "ASI is fast again") leave a 3,000-cycle period at 3 GHz, most of it in the kernel.
   * 250,000 is past kernel-build's 12,347 entries/s (cpu/mixes.ts, Dilek's perf stat): a period of
   * 243,000 cycles at 3 GHz. A 300-exit case on one thread at the top runs ~75 M cycles and stops at
   * `maxCycles`, with its first ~200 entries done.
   */
  userExitIntervalCyclesMin: 100,
  userExitIntervalCyclesMax: 250_000,
  /**
   * Scheduler choices as data: the first draws of a run, enough to steer its early interleaving (the
   * PRNG takes over after them). Longer lists cost shrink time and rarely matter.
   */
  choicesMax: 64,
  /**
   * A case with a schedule (an explorer's counterexample, src/explore/) lists every draw of its run and
   * every step: a bounded exploration's path is tens to hundreds of steps, each with a few draws; 4,096
   * of each is far past any (and keeps a hand-made file from running long).
   */
  scheduleStepsMax: 4096,
  scheduleChoicesMax: 4096,
  /** Cost-model jitter: each cost scaled by 50%..200% of its default. */
  costScalePercentMin: 50,
  costScalePercentMax: 200,
  /**
   * INV-9's bound for every case. Legitimate waits are far shorter: a held sibling waits out a VMM
   * exit (20,000-25,000 cycles) or a halted sibling's idle period (exponential, mean <= idleCyclesMax:
   * P(wait > 1 M) = e^-20). A lost wake-up waits forever and is caught once the others run 1 M on.
   */
  waitBoundCycles: 1_000_000,
  /** Mean idle period of a halted vCPU (see waitBoundCycles). */
  idleCyclesMax: 50_000,
  /** Virtual-time cap of a case, a guard against runs that stop making exits (halts, holds). */
  maxCycles: 50_000_000,
  /**
   * Sim runs one shrink may spend (each a few ms, less as the case shrinks); fast-check stops asking
   * after this. The planted bugs shrink to their fixed point in 90-250 runs (measured).
   */
  shrinkRunsMax: 500,
  /**
   * How often a campaign rewrites its summary while failures come in (the replay files are written at
   * once; the summary lists them all, so rewriting it per failure would be quadratic).
   */
  summaryRewriteIntervalMs: 1000,
  summaryRewriteFailuresMax: 64,
  /**
   * Percent of cases whose first VM is confidential (SEV-SNP style memory: conversions, lazy accepts,
   * possibly a hostile VMM that remaps validated pages), so INV-10..13 are fuzzed too.
   */
  confidentialPercent: 30,
  /**
   * Planted confidential-VM bugs, off in real campaigns (0/1): a guest that re-validates a remapped page
   * (breaks INV-11), a VMM that keeps its mapping of pages turned private (breaks INV-10). Tests turn
   * them on to show the fuzzer finds and shrinks them.
   */
  plantedGuestRevalidates: 0,
  plantedKeepsVmmMapping: 0,
  /** Cases a campaign may ask for (with --cases). */
  casesMax: 100_000_000,
} as const;

/**
 * Wall-clock limits of the pool that runs cases (fuzz/executor.ts), apart from `fuzzLimits` because
 * they are not part of what a campaign draws (merged shards need not agree on them).
 */
export const fuzzWallLimits = {
  /**
   * A case (or one run of a shrink, or a replay) that makes no progress for this long is stopped and
   * reported as a hang. Cases take 3-8 ms and a shrink run less (measured, 2 CPUs); 5 s leaves room for
   * a machine under heavy load, and bounds what one stuck hook costs a campaign.
   */
  caseTimeLimitMsDefault: 5_000,
  /** `--case-timeout` bounds: below 100 ms a loaded machine would report honest cases as hangs. */
  caseTimeLimitMsMin: 100,
  caseTimeLimitMsMax: 600_000,
  /** The watchdog looks this many times per limit: a hang is reported within 1.25x the limit. */
  watchdogPollsPerLimit: 4,
} as const;

/** The limits' shape, for callers (tests, benchmarks) that want other values. */
export type FuzzLimits = { readonly [Key in keyof typeof fuzzLimits]: number };

assert(
  fuzzLimits.waitBoundCycles >= 20 * fuzzLimits.idleCyclesMax,
  'idle periods stay far inside INV-9 bound',
);
assert(fuzzLimits.maxCycles > 10 * fuzzLimits.waitBoundCycles, 'a lost wake-up is seen before the cap');
assert(
  fuzzLimits.vmsMax * fuzzLimits.vcpusPerVmMax >= fuzzLimits.coresMax * fuzzLimits.smtMax,
  'generated VMs can fill every hyperthread',
);
assert(fuzzLimits.costScalePercentMin <= 100 && 100 <= fuzzLimits.costScalePercentMax, 'defaults in range');
