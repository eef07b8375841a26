import { z } from 'zod';
import { builtinMixes, type ExitMix, parseUserMix } from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
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

export const workloadSchema = z
  .object({
    mix: z.union([z.string(), z.object({}).passthrough()]).default('sysbench-cpu'),
    /**
     * Mean guest cycles between two exits of a vCPU. 20,000 cycles (~150,000 exits/s per vCPU at 3 GHz)
     * is a busy I/O guest; the published mixes' own rates are far lower and would hide every cost.
     */
    exitIntervalCycles: z.number().min(100, 'exitIntervalCycles must be at least 100').default(20000),
    /** Guest cycles per step between mailbox checks: bounds how late a kick is seen. */
    guestQuantumCycles: z.number().int().min(10).max(1_000_000).default(1000),
    /**
     * Guest memory lines touched per guest step (filling the L1D with the VM's own lines, evicting
     * others'). One per quantum keeps the sim fast; each access costs about as much as the rest of a
     * step (bench/sim.bench.ts).
     */
    guestAccessesPerQuantum: z.number().int().min(0).max(64).default(1),
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
export interface Workload extends Omit<z.output<typeof workloadSchema>, 'mix'> {
  mix: ExitMix;
}

export function parseWorkload(input: unknown, threads: number): Workload {
  const parsed = workloadSchema.safeParse(input ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'workload');
  const { mix, ...rest } = parsed.data;
  let resolved: ExitMix;
  if (typeof mix === 'string') {
    const builtin = builtinMixes.find((candidate) => candidate.name === mix);
    if (!builtin)
      throw new ConfigError(
        'workload.mix',
        `one of ${builtinMixes.map((candidate) => candidate.name).join(', ')}, or a mix object`,
        mix,
      );
    resolved = builtin;
  } else {
    resolved = parseUserMix(mix, 'workload.mix');
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
  return { ...rest, mix: resolved };
}
