import fc from 'fast-check';
import { handlerRegionKinds } from '../config/workload.js';
import { defaultCostModel } from '../cpu/costs.js';
import { exitCatalogue } from '../cpu/exits.js';
import { isReadOnlyRegion } from '../paging/address-space.js';
import type { FuzzCase, FuzzHandler } from './fuzz-case.js';
import { type FuzzLimits, fuzzLimits } from './limits.js';
import {
  asiClassArbitrary,
  type LinuxAsiDraws,
  linuxAsiExtrasArbitrary,
  withLinuxAsiExtras,
  withUserClass,
} from './linux-asi-draws.js';

/**
 * fast-check arbitraries for a whole fuzz case (issue 5): machine (cores, smt, VMs, vCPU placement),
 * exit mix, interrupt sources and exact NMI / #MC / IRQ injections, halts and wake-ups, exits to the
 * VMM, cost-model jitter, the scheduler seed and the scheduler's first draws as data.
 *
 * Handler programs are drawn too (workload.handlers): up to `handlersMax` programs of accesses to any
 * region kind (those kvm:N maps and those it does not: host secrets, the VMM heap, other processes),
 * short and long compute, and each action (resume, exit to the VMM, halt, IPI), each added to an exit
 * reason and to the mix under its own name. The mix also draws the catalogue's (reason:variant) pairs,
 * whose lengths vary further with the cost jitter.
 *
 * Every part is drawn independently and made consistent by one `map` (VMs and vCPUs that do not fit
 * are dropped, placements and injection targets taken modulo what exists), so fast-check shrinks each
 * part on its own: fewer exits, cores, siblings, VMs, vCPUs, mix entries, injections and choices, and
 * rates and jitter back to off.
 */

/**
 * Mix keys a case may draw: every variant but the kick exit, the injected-only NMI / #MC handlers, and
 * the memory conversions of confidential VMs (generated machines have none).
 */
export const fuzzMixKeys: readonly string[] = exitCatalogue.flatMap((reason) =>
  reason.name === 'EXCEPTION_NMI' || reason.name === 'MACHINE_CHECK'
    ? []
    : reason.variants
        .filter((variant) => !(reason.name === 'EXTERNAL_INTERRUPT' && variant.name === 'kick'))
        .filter((variant) => (variant as { conversion?: string }).conversion === undefined)
        .map((variant) => `${reason.name}:${variant.name}`),
);

/** Mix keys of confidential VMs' memory operations (conversions through the VMM, lazy accepts). */
export const fuzzConversionKeys: readonly string[] = exitCatalogue.flatMap((reason) =>
  reason.variants
    .filter((variant) => variant.conversion !== undefined)
    .map((variant) => `${reason.name}:${variant.name}`),
);

/** Cost-model fields the jitter scales. */
export const fuzzCostKeys = Object.keys(defaultCostModel) as (keyof typeof defaultCostModel)[];

const vectors = ['nmi', 'mc', 'irq'] as const;

/** Exit reasons a generated handler joins: those a mix draws (not the injected-only NMI and #MC). */
export const fuzzHandlerReasons: readonly string[] = exitCatalogue
  .map((reason) => reason.name)
  .filter((name) => name !== 'EXCEPTION_NMI' && name !== 'MACHINE_CHECK');

const handlerActions = ['resume', 'vmm', 'halt', 'ipi'] as const;

/** A generated handler before it is named (`concreteCase` names it and adds its mix entry). */
export interface RawHandler {
  reason: string;
  ops: FuzzHandler['ops'];
  action: (typeof handlerActions)[number];
  vmmCycles: number;
  /** Its weight in the mix. */
  mixWeight: number;
}

function handlerArbitrary(limits: FuzzLimits): fc.Arbitrary<RawHandler> {
  const access = fc
    .record({
      region: fc.constantFrom(...handlerRegionKinds),
      bytes: fc.integer({ min: 1, max: limits.handlerAccessBytesMax }),
      offsetFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      write: fc.boolean(),
    })
    .map(({ region, bytes, offsetFraction, write }) => ({
      op: 'access' as const,
      region,
      offsetBytes: Math.floor(offsetFraction * (limits.handlerAccessBytesMax - bytes)),
      bytes,
      // No handler writes kernel text (workload.ts refuses it: it faults in the full kernel too).
      write: write && !isReadOnlyRegion(region),
    }));
  const compute = fc
    .integer({ min: 10, max: limits.handlerComputeCyclesMax })
    .map((cycles) => ({ op: 'compute' as const, cycles }));
  return fc.record({
    reason: fc.noShrink(fc.constantFrom(...fuzzHandlerReasons)),
    ops: fc.array(fc.oneof(access, compute), { minLength: 1, maxLength: limits.handlerOpsMax }),
    action: fc.constantFrom(...handlerActions),
    vmmCycles: tuning(5000, 30_000),
    mixWeight: tuning(1, 100),
  });
}

/** The independent draws; `concreteCase` turns them into one consistent case. */
export interface RawCase {
  cores: number;
  smt: number;
  vms: { vcpus: number; guestMemoryMiB: number }[];
  /** Where each vCPU goes: an index into the hyperthreads still free (0: the next one in order). */
  placement: number[];
  pcid: boolean;
  fillBufferEntries: number;
  mix: [string, number][];
  exitIntervalCycles: number;
  guestQuantumCycles: number;
  guestAccessesPerQuantum: number;
  idleCycles: number;
  nmiIntervalCycles: number;
  machineCheckIntervalCycles: number;
  irqIntervalCycles: number;
  injections: { thread: number; atCycles: number; vector: (typeof vectors)[number] }[];
  /** Percent of each cost's default. */
  costPercent: Record<string, number>;
  exits: number;
  seed: number;
  jitterCycles: number;
  choices: number[];
  /** The first VM is confidential (shrinks to false). */
  confidential: boolean;
  hostileVmm: boolean;
  hostileRemapPercent: number;
  conversionPagesMax: number;
  /** Extra mix entries for a confidential VM's memory operations. */
  conversions: [string, number][];
  handlers: RawHandler[];
}

/**
 * A tuning value: drawn, never shrunk. A shorter exit interval or a smaller weight is not a simpler
 * case, and shrinking such values one step at a time spent most of a shrink's runs (measured: 60-80%).
 * Shrinks act on what "smaller" means instead: exits, hyperthreads, injected events, mix entries and
 * choices (arrays shrink by dropping elements).
 */
function tuning(min: number, max: number): fc.Arbitrary<number> {
  return fc.noShrink(fc.integer({ min, max }));
}

/** An interrupt source: off (what a shrink goes back to) or a mean interval in the range. */
function rate(minCycles: number, maxCycles: number): fc.Arbitrary<number> {
  return fc.option(tuning(minCycles, maxCycles), { nil: 0, freq: 2 });
}

export function rawCaseArbitrary(limits: FuzzLimits = fuzzLimits): fc.Arbitrary<RawCase> {
  const costPercent: Record<string, fc.Arbitrary<number>> = {};
  for (const key of fuzzCostKeys) {
    costPercent[key] = fc.option(tuning(limits.costScalePercentMin, limits.costScalePercentMax), {
      nil: 100,
      freq: 2,
    });
  }
  const threadsMax = limits.coresMax * limits.smtMax;
  // Key order is shrink order (fast-check shrinks a record's fields first to last): what "smaller"
  // means first (exits, which also make every later run shorter; hyperthreads; injected events), the
  // scenario's details after.
  return fc.record({
    exits: fc.integer({ min: 1, max: limits.exitsMax }),
    cores: fc.integer({ min: 1, max: limits.coresMax }),
    smt: fc.integer({ min: 1, max: limits.smtMax }),
    vms: fc.array(
      fc.record({
        vcpus: fc.integer({ min: 1, max: limits.vcpusPerVmMax }),
        guestMemoryMiB: fc.integer({ min: 1, max: limits.guestMemoryMiBMax }),
      }),
      { minLength: 1, maxLength: limits.vmsMax },
    ),
    placement: fc.array(fc.nat({ max: threadsMax - 1 }), { maxLength: threadsMax }),
    injections: fc.array(
      fc.noShrink(
        fc.record({
          thread: fc.nat({ max: threadsMax - 1 }),
          atCycles: fc.integer({ min: 0, max: limits.injectionAtCyclesMax }),
          vector: fc.constantFrom(...vectors),
        }),
      ),
      { maxLength: limits.injectionsMax },
    ),
    nmiIntervalCycles: rate(20_000, 400_000),
    machineCheckIntervalCycles: rate(200_000, 2_000_000),
    irqIntervalCycles: rate(10_000, 200_000),
    mix: fc.array(fc.noShrink(fc.tuple(fc.constantFrom(...fuzzMixKeys), fc.integer({ min: 1, max: 100 }))), {
      minLength: 1,
      maxLength: limits.mixEntriesMax,
    }),
    handlers: fc.array(handlerArbitrary(limits), { maxLength: limits.handlersMax }),
    choices: fc.array(fc.noShrink(fc.integer()), { maxLength: limits.choicesMax }),
    exitIntervalCycles: tuning(1000, 20_000),
    guestQuantumCycles: tuning(100, 2000),
    guestAccessesPerQuantum: tuning(0, 4),
    idleCycles: tuning(1000, limits.idleCyclesMax),
    pcid: fc.boolean().map((noPcid) => !noPcid),
    fillBufferEntries: tuning(0, 10),
    costPercent: fc.record(costPercent),
    jitterCycles: tuning(0, 64),
    // A smaller seed is not a simpler case: never shrunk.
    seed: fc.noShrink(fc.nat()),
    confidential: fc.integer({ min: 1, max: 100 }).map((percent) => percent <= limits.confidentialPercent),
    hostileVmm: fc.boolean(),
    hostileRemapPercent: tuning(5, 100),
    conversionPagesMax: tuning(1, 64),
    conversions: fc.array(
      fc.noShrink(fc.tuple(fc.constantFrom(...fuzzConversionKeys), fc.integer({ min: 1, max: 30 }))),
      {
        minLength: 1,
        maxLength: fuzzConversionKeys.length,
      },
    ),
  });
}

/** Makes the independent draws one valid case (every field concrete). */
export function concreteCase(raw: RawCase, limits: FuzzLimits = fuzzLimits): FuzzCase {
  // Core scheduling: a core runs one VM's vCPUs only (two VMs on one core's siblings is itself a
  // cross-VM exposure, INV-3, whatever the policy). VM j gets the cores c with c mod (VMs) = j.
  const vmCount = Math.min(raw.vms.length, raw.cores);
  let placed = 0;
  const vms: FuzzCase['machine']['vms'] = [];
  for (let vmId = 0; vmId < vmCount; vmId++) {
    const free: number[] = [];
    for (let core = vmId; core < raw.cores; core += vmCount) {
      for (let sibling = 0; sibling < raw.smt; sibling++) free.push(core * raw.smt + sibling);
    }
    const vcpus = Math.min(raw.vms[vmId].vcpus, free.length);
    const pin: number[] = [];
    for (let vcpu = 0; vcpu < vcpus; vcpu++) {
      const at = (raw.placement[placed] ?? 0) % free.length;
      pin.push(free[at]);
      free.splice(at, 1);
      placed++;
    }
    vms.push({
      vcpus,
      guestMemoryMiB: raw.vms[vmId].guestMemoryMiB,
      pin,
      confidential: vmId === 0 && raw.confidential,
    });
  }
  const pinned = vms.flatMap((vm) => vm.pin).sort((a, b) => a - b);
  const weights: Record<string, number> = {};
  for (const [key, weight] of raw.mix) weights[key] = (weights[key] ?? 0) + weight;
  if (raw.confidential)
    for (const [key, weight] of raw.conversions) weights[key] = (weights[key] ?? 0) + weight;
  const handlers: FuzzHandler[] = raw.handlers.map((handler, i) => ({
    reason: handler.reason,
    name: `fuzz-${i}`,
    weight: 1,
    ops: handler.ops,
    action: handler.action,
    vmmCycles: handler.action === 'vmm' ? handler.vmmCycles : 0,
  }));
  raw.handlers.forEach((handler, i) => {
    weights[`${handler.reason}:fuzz-${i}`] = handler.mixWeight;
  });
  const costs: Record<string, number> = {};
  for (const key of fuzzCostKeys) {
    const percent = raw.costPercent[key] ?? 100;
    if (percent === 100) continue;
    costs[key] = Math.round((defaultCostModel[key] * percent) / 100);
  }
  const injections = raw.injections
    .map((injection) => ({
      thread: pinned[injection.thread % pinned.length],
      atCycles: injection.atCycles,
      vector: injection.vector,
    }))
    .sort((a, b) => a.atCycles - b.atCycles || a.thread - b.thread);
  return {
    machine: {
      cores: raw.cores,
      smt: raw.smt,
      memoryMiB: limits.memoryMiB,
      pageTablePoolPages: limits.pageTablePoolPages,
      pcid: raw.pcid,
      fillBufferEntries: raw.fillBufferEntries,
      vms,
    },
    workload: {
      mix: { name: 'fuzz', description: 'generated by the fuzzer', source: 'fast-check', weights },
      exitIntervalCycles: raw.exitIntervalCycles,
      guestQuantumCycles: raw.guestQuantumCycles,
      guestAccessesPerQuantum: raw.guestAccessesPerQuantum,
      idleCycles: raw.idleCycles,
      nmiIntervalCycles: raw.nmiIntervalCycles,
      machineCheckIntervalCycles: raw.machineCheckIntervalCycles,
      irqIntervalCycles: raw.irqIntervalCycles,
      injections,
      ...(handlers.length > 0 ? { handlers } : {}),
      confidential: {
        hostileVmm: raw.confidential && raw.hostileVmm,
        hostileRemapShare: raw.hostileRemapPercent / 100,
        guestRevalidates: limits.plantedGuestRevalidates === 1,
        keepsVmmMapping: limits.plantedKeepsVmmMapping === 1,
        conversionPagesMax: raw.conversionPagesMax,
      },
    },
    costs,
    run: {
      exits: raw.exits,
      seed: raw.seed,
      jitterCycles: raw.jitterCycles,
      waitBoundCycles: limits.waitBoundCycles,
      maxCycles: limits.maxCycles,
      stopOnViolation: true,
    },
    choices: raw.choices.map((choice) => choice >>> 0),
  };
}

/**
 * The fuzz case arbitrary: raw draws made consistent (shrinks act on the raw draws). With `draws` (a
 * linux-asi policy, or `none`: fuzz/linux-asi-draws.ts `linuxAsiDrawsOf`), today's ASI's choices and
 * the class are drawn after the case, so the case itself is the one drawn without them.
 */
export function fuzzCaseArbitrary(
  limits: FuzzLimits = fuzzLimits,
  draws: LinuxAsiDraws | null = null,
): fc.Arbitrary<FuzzCase> {
  if (draws === null) return rawCaseArbitrary(limits).map((raw) => concreteCase(raw, limits));
  // The class last (drawn after, shrunk last: back to kvm), so the rest is what it was without it.
  const asiClass = asiClassArbitrary(draws, limits);
  if (!draws.pairsAndHalts) {
    return fc
      .tuple(rawCaseArbitrary(limits), asiClass)
      .map(([raw, user]) => withUserClass(concreteCase(raw, limits), user));
  }
  return fc
    .tuple(rawCaseArbitrary(limits), linuxAsiExtrasArbitrary(draws, limits), asiClass)
    .map(([raw, extras, user]) => withUserClass(withLinuxAsiExtras(concreteCase(raw, limits), extras), user));
}
