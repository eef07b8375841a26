import { z } from 'zod';
import { assert } from '../assert.js';
import { pageBytes } from '../constants.js';
import { type ExitReasonSpec, exitCatalogue, exitReasonIndex, type UserHandler } from '../cpu/exits.js';
import {
  builtinMixes,
  catalogueForClass,
  defaultSmtSpeedup,
  type ExitMix,
  exitsPerSecondMax,
  exitsPerSecondMin,
  mixClassOf,
  parseUserMix,
  smtSpeedupMax,
  smtSpeedupMin,
} from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
import { ThreadStat } from '../memory/layout.js';
import { type RegionKind, type RegionPlan, regionKinds } from '../memory/regions.js';
import { isReadOnlyRegion } from '../paging/address-space.js';
import { inputLimits } from './input-limits.js';
import { configErrorFromZod } from './schema-error.js';

/**
 * The workload: which exits happen (the mix), how often, and what arrives from outside (NMIs, #MCs,
 * device IRQs). Rates are mean virtual-cycle intervals drawn as exponential gaps from the backend's
 * seeded generator; 0 turns a source off. `injections` lists exact events (the fuzzer uses them).
 */
const injectionSchema = z
  .object({
    thread: z.number().int().min(0),
    atCycles: z.number().min(0),
    vector: z.enum(['nmi', 'mc', 'irq']),
  })
  .strict();

/** Region kinds a handler may touch: every kind the machine lays out, except free memory. */
export const handlerRegionKinds = regionKinds.map((spec) => spec.kind).filter((kind) => kind !== 'free') as [
  RegionKind,
  ...RegionKind[],
];

/**
 * A user handler program (issue 6; the fuzzer draws them too): accesses to named regions and compute,
 * then one action, added as a variant of a catalogue exit reason (cpu/exits.ts `catalogueWith`).
 * Whether it needs the full kernel is not declared: it follows from whether its accesses hit kvm:N.
 */
const handlerOpSchema = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('access'),
      region: z.enum(handlerRegionKinds),
      offsetBytes: z.number().int().min(0).default(0),
      bytes: z
        .number()
        .int()
        .min(1)
        .max(1 << 20)
        .default(64),
      write: z.boolean().default(false),
    })
    .strict(),
  z
    .object({
      op: z.literal('compute'),
      cycles: z.number().int().min(0).max(100_000_000),
    })
    .strict(),
]);

/** A new exit reason's name: like the catalogue's (`DR_ACCESS`), so it reads as one in a mix key. */
const reasonNamePattern = /^[A-Z][A-Z0-9_]*$/;

/**
 * How many reasons user handlers may add: every reason has a fault counter in a thread's stats record
 * (memory/layout.ts ThreadStat, faultsByReasonBase up to count), and the built-in ones take theirs first.
 */
export const newReasonsMax = ThreadStat.count - ThreadStat.faultsByReasonBase - exitCatalogue.length;
assert(newReasonsMax >= 1, 'the thread stats record has a fault counter left for a user reason');

const handlerSchema = z
  .object({
    reason: z.string(),
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a name of letters, digits, _ . and -'),
    weight: z
      .number()
      .min(0, `a relative weight 0..${inputLimits.mixWeightMax}`)
      .max(inputLimits.mixWeightMax, `a relative weight 0..${inputLimits.mixWeightMax}`)
      .default(1),
    ops: z.array(handlerOpSchema).min(1).max(256),
    action: z.enum(['resume', 'vmm', 'halt', 'ipi']).default('resume'),
    /** Cycles in the VMM for a `vmm` action. */
    vmmCycles: z.number().min(0).default(0),
    /** What KVM path it stands for (shown in reports). */
    kvmPath: z.string().default('user-defined handler'),
  })
  .strict();

export const workloadSchema = z
  .object({
    mix: z.union([z.string(), z.object({}).passthrough()]).default('sysbench-cpu'),
    /**
     * Exits per second per vCPU, in modelled time (guest, host and idle time alike; `machine.ghz` turns
     * it into cycles). Left out: the mix's published rate, else `defaultExitsPerSecond` (cpu/mixes.ts).
     * The guest time between exits that gives this rate under `none` is derived by a short calibration
     * run (backend/sim/exit-interval.ts; docs/model.md "Exit rates").
     */
    exitsPerSecond: z
      .number()
      .min(exitsPerSecondMin, `exits per second per vCPU, ${exitsPerSecondMin}..${exitsPerSecondMax}`)
      .max(exitsPerSecondMax, `exits per second per vCPU, ${exitsPerSecondMin}..${exitsPerSecondMax}`)
      .optional(),
    /**
     * Mean guest cycles between two exits of a vCPU, given directly instead of a rate (tests, the fuzzer,
     * the kick benchmark). Left out: derived from the exit rate. Not with `exitsPerSecond`.
     */
    exitIntervalCycles: z.number().min(100, 'exitIntervalCycles must be at least 100').optional(),
    /**
     * Combined throughput of a core's busy hyperthreads over one thread alone (1..4; a value above
     * machine.smt is clamped to it). While k of a core's threads are busy each runs at speedup / k of
     * its lone speed (core-timeline.ts). Left out: the mix's, else `defaultSmtSpeedup` (1.3).
     */
    smtSpeedup: z
      .number()
      .min(
        smtSpeedupMin,
        `a speedup ${smtSpeedupMin}..${smtSpeedupMax} (combined throughput of busy siblings over one thread)`,
      )
      .max(
        smtSpeedupMax,
        `a speedup ${smtSpeedupMin}..${smtSpeedupMax} (combined throughput of busy siblings over one thread)`,
      )
      .optional(),
    /**
     * Guest cycles per `guestAccessesPerQuantum` guest memory accesses: the density of the guest's own
     * accesses (which fill the L1D with its lines). The workers backend also steps the guest in pieces
     * of at least this many cycles, polling its mailbox between them; the sim runs a guest stretch as one
     * event, cut short by a kick or an interrupt.
     */
    guestQuantumCycles: z.number().int().min(10).max(1_000_000).default(1000),
    /**
     * Guest memory lines touched per guest quantum. One per quantum keeps the sim fast; each access
     * costs about as much as the rest of a step (bench/sim.bench.ts).
     */
    guestAccessesPerQuantum: z.number().int().min(0).max(64).default(1),
    /**
     * Most guest accesses one guest stretch makes (the sim runs the guest's time between two events as
     * one stretch). A stretch of millions of cycles at one access per quantum would cost thousands of
     * accesses, nearly all hits on lines the guest already holds: what the L1D and INV-2 models need is
     * the guest's lines coming back after an exit. 48 lines at the stretch's start (48 quanta's worth at
     * the defaults) is that, at a bounded cost per stretch (docs/model.md "Exit rates").
     */
    guestAccessesPerStretchMax: z.number().int().min(0).max(4096).default(48),
    /**
     * Guest pages a vCPU touches (its hot working set, a different one per vCPU). Guests have locality;
     * a working set that fits the TLB keeps guest steps cheap. Raise it to model TLB-hostile guests.
     */
    guestWorkingSetPages: z
      .number()
      .int()
      .min(1)
      .max(1 << 20)
      .default(8),
    /** Mean cycles a halted vCPU stays idle before its timer fires (if no IPI wakes it first). */
    idleCycles: z.number().min(1).default(100000),
    nmiIntervalCycles: z.number().min(0).default(0),
    machineCheckIntervalCycles: z.number().min(0).default(0),
    irqIntervalCycles: z.number().min(0).default(0),
    injections: z.array(injectionSchema).max(10000).default([]),
    /** User handler programs, added to the catalogue's variants of their exit reasons. */
    handlers: z.array(handlerSchema).max(64).default([]),
    /** For VMs with `confidential: true` in the machine config. */
    confidential: z
      .object({
        /** A VMM that remaps a validated private page behind the guest's back on some of its exits. */
        hostileVmm: z.boolean().default(false),
        /** Share of VMM exits on which a hostile VMM remaps a page (0..1). */
        hostileRemapShare: z.number().min(0).max(1).default(0.3),
        /** Planted guest bug: re-validates a remapped page instead of terminating (breaks INV-11). */
        guestRevalidates: z.boolean().default(false),
        /** Planted host bug: a conversion to private keeps the VMM's mapping (breaks INV-10). */
        keepsVmmMapping: z.boolean().default(false),
        /** Largest range a conversion request names, in pages. */
        conversionPagesMax: z
          .number()
          .int()
          .min(1)
          .max(1 << 18)
          .default(16),
        /** Bounds of the host's shared-range trackers (range list in ranges, interval tree in nodes). */
        rangesMax: z.number().int().min(1).optional(),
        nodesMax: z.number().int().min(1).optional(),
      })
      .strict()
      .default({
        hostileVmm: false,
        hostileRemapShare: 0.3,
        guestRevalidates: false,
        keepsVmmMapping: false,
        conversionPagesMax: 16,
      }),
  })
  .strict();

export type WorkloadInput = z.input<typeof workloadSchema>;
export interface Workload extends Omit<z.output<typeof workloadSchema>, 'mix' | 'handlers'> {
  mix: ExitMix;
  handlers: UserHandler[];
  /** The exit catalogue with `handlers` added (the built-in one when there are none). */
  catalogue: readonly ExitReasonSpec[];
}

export function parseWorkload(input: unknown, threads: number): Workload {
  const parsed = workloadSchema.safeParse(input ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'workload');
  const { mix, handlers, ...rest } = parsed.data;
  if (rest.exitsPerSecond !== undefined && rest.exitIntervalCycles !== undefined) {
    throw new ConfigError(
      'workload.exitIntervalCycles',
      'left out when workload.exitsPerSecond is given (one says how often a vCPU exits: a rate, or guest cycles between exits)',
      rest.exitIntervalCycles,
    );
  }
  handlers.forEach((handler, i) => {
    handler.ops.forEach((op, j) => {
      if (op.op === 'access' && op.write && isReadOnlyRegion(op.region)) {
        throw new ConfigError(
          `workload.handlers[${i}].ops[${j}].write`,
          `false: ${op.region} is mapped read-only (a write would fault in the full kernel too)`,
          true,
        );
      }
    });
    // A reason the catalogue lacks is a new reason, made of the handlers that name it (real data may
    // carry a reason this model has no program for); its name is a mix key, so it must look like one.
    const spec = exitCatalogue.find((candidate) => candidate.name === handler.reason);
    if (!spec && !reasonNamePattern.test(handler.reason)) {
      throw new ConfigError(
        `workload.handlers[${i}].reason`,
        `an exit reason: ${exitCatalogue.map((candidate) => candidate.name).join(', ')}, or a new name of capitals, digits and _`,
        handler.reason,
      );
    }
    const taken = [
      ...(spec?.variants.map((variant) => variant.name) ?? []),
      ...handlers
        .slice(0, i)
        .filter((other) => other.reason === handler.reason)
        .map((other) => other.name),
    ];
    if (taken.includes(handler.name)) {
      throw new ConfigError(
        `workload.handlers[${i}].name`,
        `a name no other variant of ${handler.reason} has (taken: ${taken.join(', ')})`,
        handler.name,
      );
    }
  });
  const newReasons = new Set(
    handlers.map((handler) => handler.reason).filter((reason) => exitReasonIndex(reason) < 0),
  );
  if (newReasons.size > newReasonsMax) {
    throw new ConfigError(
      'workload.handlers',
      `at most ${newReasonsMax} exit reasons the catalogue lacks (each has a fault counter in the thread stats)`,
      [...newReasons],
    );
  }
  let resolved: ExitMix;
  let catalogue: readonly ExitReasonSpec[];
  if (typeof mix === 'string') {
    const builtin = builtinMixes.find((candidate) => candidate.name === mix);
    if (!builtin)
      throw new ConfigError(
        'workload.mix',
        `one of ${builtinMixes.map((candidate) => candidate.name).join(', ')}, or a mix object`,
        mix,
      );
    resolved = builtin;
    catalogue = catalogueForClass(mixClassOf(builtin), handlers);
  } else {
    // A user-defined mix says its class (a host process's kernel entries, or VM exits: the default).
    const declared = (mix as { class?: unknown }).class;
    catalogue = catalogueForClass(declared === 'user' ? 'user' : 'kvm', handlers);
    resolved = parseUserMix(mix, 'workload.mix', catalogue);
  }
  rest.injections.forEach((injection, i) => {
    if (injection.thread >= threads) {
      throw new ConfigError(
        `workload.injections[${i}].thread`,
        `a hyperthread 0..${threads - 1}`,
        injection.thread,
      );
    }
  });
  return { ...rest, mix: resolved, handlers, catalogue };
}

/**
 * `workload` running `mix` instead of its own: the catalogue follows the mix's class (a host process's
 * kernel entries for a user mix), with the workload's handlers added. Every place that swaps a run's
 * mix (bench, sweep, comparisons) goes through here.
 */
export function workloadWithMix(workload: Workload, mix: ExitMix): Workload {
  const catalogue =
    mixClassOf(mix) === mixClassOf(workload.mix)
      ? workload.catalogue
      : catalogueForClass(mixClassOf(mix), workload.handlers);
  return { ...workload, mix, catalogue };
}

/**
 * The SMT speedup a run uses: the workload's (`--set`, config file), else its mix's, else the default;
 * clamped to `smt` (k threads cannot do more than k lone threads' work) and to 1 with one thread.
 */
export function smtSpeedupOf(workload: Workload, smt: number): number {
  const speedup = workload.smtSpeedup ?? workload.mix.smtSpeedup ?? defaultSmtSpeedup;
  return Math.max(1, Math.min(speedup, smt));
}

/**
 * User handlers' accesses against the regions of a machine: each must fall inside the smallest
 * instance of its region kind (a per-VM region is as large in every VM, guest memory is not).
 */
export function checkHandlersFit(handlers: readonly UserHandler[], plan: RegionPlan): void {
  handlers.forEach((handler, i) => {
    handler.ops.forEach((op, j) => {
      if (op.op !== 'access') return;
      const sizes = plan.regions.filter((region) => region.kind === op.region).map((region) => region.frames);
      const bytes = sizes.length === 0 ? 0 : Math.min(...sizes) * pageBytes;
      if (op.offsetBytes + op.bytes > bytes) {
        throw new ConfigError(
          `workload.handlers[${i}].ops[${j}]`,
          `an access inside region ${op.region} (offsetBytes + bytes <= ${bytes} on this machine)`,
          { offsetBytes: op.offsetBytes, bytes: op.bytes },
        );
      }
    });
  });
}
