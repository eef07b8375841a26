import { z } from 'zod';
import { inputLimits } from '../config/input-limits.js';
import { configErrorFromZod } from '../config/schema-error.js';
import { ConfigError } from '../errors.js';
import {
  catalogueWith,
  type ExitReasonSpec,
  exitCatalogue,
  exitKeyAliases,
  kernelEntryReasonNames,
  processCatalogue,
} from './exits.js';

/**
 * Exit mixes: distributions over exit reasons, each with its source (published `perf kvm stat` style
 * outputs). A key is a reason (`HLT`) or a reason and one of its variants (`EPT_VIOLATION:alloc`).
 * Weights are percentages as published; they need not sum to 100 (they are normalized).
 *
 * A mix also carries how often a vCPU exits, in exits per second per vCPU of modelled time, where its
 * source gives a count over a duration (`exitsPerSecond`); where it does not, the field is null, the
 * description says why, and a run uses `defaultExitsPerSecond` (or `workload.exitsPerSecond`).
 * Precedence, lowest first: the default, the mix, the config file's `workload.exitsPerSecond`, then
 * `--set` / `--exit-rate` (docs/model.md "Exit rates").
 */
/**
 * What a mix's vCPU threads run (issue 22 item 4): `kvm`, a vCPU whose exits are VM exits (the exit
 * catalogue), or `user`, a host process whose "exits" are its kernel entries (syscalls, page faults,
 * blocking; cpu/exits.ts `kernelEntryCatalogue`), under today's ASI the userspace class.
 */
export type MixClass = 'kvm' | 'user';
export const mixClasses: readonly MixClass[] = ['kvm', 'user'];

export interface ExitMix {
  name: string;
  /** What its threads run; absent: `kvm`. */
  class?: MixClass;
  description: string;
  source: string;
  weights: Record<string, number>;
  /** Published exits per second per vCPU; null or absent: the source gives none (the default applies). */
  exitsPerSecond?: number | null;
  /**
   * Combined throughput of a core's busy hyperthreads over one thread alone, where the mix's source
   * measured it; absent: `defaultSmtSpeedup`.
   */
  smtSpeedup?: number;
}

/**
 * SMT speedup when neither the workload nor the mix gives one: 1.3, Intel's figure for Hyper-Threading
 * on server workloads ("up to 30%": Marr et al., "Hyper-Threading Technology Architecture and
 * Microarchitecture", Intel Technology Journal 6(1), 2002). Independent of Fernandes' 1.79 for sysbench
 * cpu, which the calibration's nosmt row reproduces, and so cannot also be its default.
 */
export const defaultSmtSpeedup = 1.3;
/** Bounds of a speedup: at least a lone thread, at most every thread of a core at full speed (smtMax). */
export const smtSpeedupMin = 1;
export const smtSpeedupMax = 4;

/**
 * Exits per second per vCPU when neither the mix nor the workload gives a rate: light-load's published
 * 1,934/s (bcc kvmexit_example.txt: 19,335 exits of a 2-vCPU guest in 5 s), rounded to 2,000. It is the
 * busier of the two per-vCPU rates the built-in mixes can cite (sysbench-cpu's is 1,143/s), so a
 * synthetic mix runs at a rate a real guest has shown, not at one chosen to make costs visible.
 */
export const defaultExitsPerSecond = 2000;

/** Bounds of an exits-per-second rate: one a second, up to ten million (a vCPU doing nothing but exit). */
export const exitsPerSecondMin = 1;
export const exitsPerSecondMax = 10_000_000;

export const builtinMixes: readonly ExitMix[] = [
  {
    name: 'idle-tracing',
    class: 'kvm',
    description:
      'idle-heavy guest with eBPF tracing (134,241 exits; no rate: the source gives no duration, so the default applies)',
    source:
      'Andrea Arcangeli, kvm mailing list, October 2019 (perf kvm stat on an idle guest with eBPF tracing)',
    weights: {
      HLT: 75.33,
      VMCALL: 10.5,
      MSR_WRITE: 6.14,
      EPT_VIOLATION: 4.7,
      PREEMPTION_TIMER: 1.29,
      EXTERNAL_INTERRUPT: 0.99,
      EPT_MISCONFIG: 0.73,
      PENDING_INTERRUPT: 0.23,
    },
    exitsPerSecond: null,
  },
  {
    name: 'sysbench-cpu',
    class: 'kvm',
    description: 'sysbench cpu, 1 thread (25,898 exits in 22.7 s)',
    source:
      'a perf kvm stat walk-through blog post, 2020 ("perf kvm to profile vm_exit", 0xba1a blog_source 2020-09-28: sysbench --test=cpu in a 1-vCPU guest, total time 22.6607 s)',
    weights: {
      MSR_WRITE: 35.4,
      EXTERNAL_INTERRUPT: 22.69,
      PREEMPTION_TIMER: 22.12,
      HLT: 8.62,
      CPUID: 8.34,
      PAUSE: 1.51,
      EPT_MISCONFIG: 1.17,
      EOI_INDUCED: 0.14,
    },
    // 25,898 exits in 22.66 s on the one vCPU: 1,143 exits/s.
    exitsPerSecond: 1143,
    // Fernandes, LKML 2020 (core scheduling v8 thread): two sysbench cpu instances on an 8-vCPU VM made
    // 175.7 (events/s) with SMT on and 97.9 with it off: 175.7 / 97.9 = 1.79.
    smtSpeedup: 1.79,
  },
  {
    name: 'light-load',
    class: 'kvm',
    description: 'lightly loaded guest (19,335 exits of 2 vCPUs in 5 s)',
    source: 'bcc tools/kvmexit.py example output (kvmexit_example.txt)',
    weights: {
      MSR_WRITE: 69.65,
      HLT: 26.17,
      PREEMPTION_TIMER: 1.78,
      EPT_MISCONFIG: 1.37,
      EXTERNAL_INTERRUPT: 0.87,
      EPT_VIOLATION: 0.09,
    },
    // `kvmexit.py -p 1273795 5`: 19,335 exits in 5 s, of the two vCPU threads `-a` lists: 1,934/s each.
    exitsPerSecond: 1934,
  },
  {
    name: 'snp-guest',
    class: 'kvm',
    description:
      'a confidential (SEV-SNP) guest converting memory: page state changes, lazy accepts (no rate: synthetic, so the default applies)',
    source:
      'synthetic: shaped like the boot-time conversion storm of the SEV live-migration threads (Kalra, kvm list, Feb 2021: ~19,500 page-encryption-status hypercalls in an OVMF boot) on top of light-load',
    weights: {
      'VMGEXIT:psc': 6,
      'VMCALL:map-gpa-range': 3,
      'VMGEXIT:private-accept': 6,
      MSR_WRITE: 50,
      HLT: 25,
      PREEMPTION_TIMER: 5,
      EPT_MISCONFIG: 3,
      EXTERNAL_INTERRUPT: 2,
    },
    exitsPerSecond: null,
  },
  {
    name: 'all-fast',
    class: 'kvm',
    description:
      'synthetic: only exits handled entirely in isolation (no rate: synthetic, so the default applies)',
    source: 'synthetic, for benchmarks',
    weights: { MSR_WRITE: 50, PREEMPTION_TIMER: 30, CPUID: 20 },
    exitsPerSecond: null,
  },
  {
    name: 'all-slow',
    class: 'kvm',
    description:
      'synthetic: only exits that need the full kernel address space (no rate: synthetic, so the default applies)',
    source: 'synthetic, for benchmarks',
    weights: { 'EPT_VIOLATION:alloc': 50, 'EXTERNAL_INTERRUPT:device': 30, PAUSE: 20 },
    exitsPerSecond: null,
  },
  {
    name: 'fio-randread-tmpfs',
    class: 'user',
    description:
      'a host process: FIO 4 KiB random reads of a tmpfs file, psync engine (one pread per I/O), one job: 1,003,102 IOPS native on Sapphire Rapids',
    source:
      'Brendan Jackman, "ASI is fast again", <20250812173109.295750-1-jackmanb@google.com> (FIO randread on tmpfs, native baseline: 1,003,102 IOPS, mean of 10 samples)',
    weights: { 'read:tmpfs-page-cache': 100 },
    // psync: one pread(2) per I/O, so a job's IOPS is its syscalls per second.
    exitsPerSecond: 1_003_102,
  },
  {
    name: 'kernel-build',
    class: 'user',
    description:
      'a host process: a native kernel build (make -j), its kernel entries per CPU-second: page faults 7,162/s and context switches 185/s (perf stat of a make -j4 bindeb-pkg), syscalls 5,000/s (ASSUMPTION: perf stat counts none)',
    source:
      'Sedat Dilek, LKML, "Re: [PATCH 0/2] x86: Remove ideal_nops[]", 15 Mar 2021, <CA+icZUXLyFqq0y_GnKca8MS4wO2kcj4K-D1kBHLa8u_pnLZ7eQ@mail.gmail.com>: perf stat of a kernel build (Debian 5.10.19 host), 40,223,080.69 ms task-clock, 7,438,923 context-switches, 288,073,015 page-faults. Syscall rate and the splits between variants: assumptions of this model (docs/calibration.md)',
    weights: {
      // 288,073,015 page faults / 40,223.08 CPU-seconds = 7,162/s; split ASSUMED 60% first touch of
      // anonymous memory (compiler heaps), 30% cached file mappings, 10% copy-on-write after fork.
      'page-fault:anon-zero': 4297,
      'page-fault:file-map': 2149,
      'page-fault:cow': 716,
      // 7,438,923 context switches / 40,223.08 CPU-seconds = 185/s: each a blocking syscall (wait4,
      // a pipe read) switching away.
      'futex:block': 185,
      // ASSUMPTION: 5,000 syscalls/s per CPU (no published count of a kernel build's syscalls was
      // found; sys time was 2,314 s of 40,223 s, 5.8%, which bounds them): 40% reads of cached sources
      // and headers, 10% writes of objects, 50% light calls (openat of a cached dentry, fstat, close).
      'read:page-cache': 2000,
      'write:page-cache': 500,
      'syscall:light': 2500,
    },
    // 7,162 + 185 + 5,000 kernel entries per CPU-second.
    exitsPerSecond: 12_347,
  },
];

/** The catalogue key of the exit a sibling kick causes (cpu/exits.ts EXTERNAL_INTERRUPT:kick). */
const kickKey = ['EXTERNAL_INTERRUPT', 'kick'] as const;

/** A mix resolved against the catalogue: cumulative probabilities over (reason, variant) pairs. */
export interface ResolvedMix {
  name: string;
  /** Parallel arrays, cumulative probability ending at 1. */
  cumulative: Float64Array;
  reasons: Int32Array;
  /** Variant index, or -1 to draw by the catalogue's variant weights. */
  variants: Int32Array;
}

const userMixSchema = z
  .object({
    name: z.string().min(1, 'a mix needs a name'),
    description: z.string().default('user-defined mix'),
    source: z.string().min(1, 'say where the numbers come from'),
    weights: z.record(
      z.string(),
      z
        .number()
        .min(0, `weights are relative numbers 0..${inputLimits.mixWeightMax}`)
        .max(inputLimits.mixWeightMax, `weights are relative numbers 0..${inputLimits.mixWeightMax}`),
    ),
    /** Published exits per second per vCPU; left out (or null), the default applies. */
    exitsPerSecond: z
      .number()
      .min(exitsPerSecondMin, `exits per second per vCPU, ${exitsPerSecondMin}..${exitsPerSecondMax}`)
      .max(exitsPerSecondMax, `exits per second per vCPU, ${exitsPerSecondMin}..${exitsPerSecondMax}`)
      .nullable()
      .optional(),
    /** Measured SMT speedup of this workload (1..4); left out, the default applies. */
    smtSpeedup: z.number().min(smtSpeedupMin).max(smtSpeedupMax).optional(),
    /** What its threads run: vCPUs (`kvm`, the default) or host processes (`user`). */
    class: z
      .enum(['kvm', 'user'], {
        error: () =>
          'kvm (a vCPU; its keys are VM exit reasons) or user (a host process; its keys are kernel entries: read, write, page-fault, futex, syscall)',
      })
      .optional(),
  })
  .strict();

/** A mix's class (absent: kvm). */
export function mixClassOf(mix: Pick<ExitMix, 'class'>): MixClass {
  return mix.class ?? 'kvm';
}

/**
 * The catalogue a mix of `mixClass` runs on, with a workload's user handlers added: the exit catalogue
 * for `kvm`, the process catalogue (the exit catalogue, then the kernel entries) for `user`.
 */
export function catalogueForClass(
  mixClass: MixClass,
  handlers: Parameters<typeof catalogueWith>[0] = [],
): readonly ExitReasonSpec[] {
  return catalogueWith(handlers, mixClass === 'user' ? processCatalogue : exitCatalogue);
}

/** Validates a user mix (from a JSON file): names the bad field and the accepted reasons. */
export function parseUserMix(
  input: unknown,
  field = 'mix',
  catalogue: readonly ExitReasonSpec[] = exitCatalogue,
): ExitMix {
  const parsed = userMixSchema.safeParse(input);
  if (!parsed.success) throw configErrorFromZod(parsed.error, field);
  resolveMix(parsed.data, field, catalogue);
  return parsed.data;
}

/** A mix against a catalogue (the built-in one, or one with user handlers: `REASON:name` names them). */
export function resolveMix(
  mix: ExitMix,
  field = 'mix',
  catalogue: readonly ExitReasonSpec[] = exitCatalogue,
): ResolvedMix {
  const entries = Object.entries(mix.weights).filter(([, weight]) => weight > 0);
  checkKeysOfClass(mix, field);
  if (entries.length === 0)
    throw new ConfigError(`${field}.weights`, 'at least one exit reason with a weight > 0', mix.weights);
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  // Each weight is bounded by the schema; a mix built in code is checked here too.
  if (!Number.isFinite(total))
    throw new ConfigError(
      `${field}.weights`,
      `weights of a finite sum (each 0..${inputLimits.mixWeightMax})`,
      mix.weights,
    );
  const cumulative = new Float64Array(entries.length);
  const reasons = new Int32Array(entries.length);
  const variants = new Int32Array(entries.length);
  let running = 0;
  entries.forEach(([key, weight], i) => {
    const [reasonName, variantName] = (exitKeyAliases[key] ?? key).split(':');
    const reason = catalogue.findIndex((spec) => spec.name === reasonName);
    if (reason < 0) {
      throw new ConfigError(
        `${field}.weights.${key}`,
        `an exit reason: ${catalogue.map((spec) => spec.name).join(', ')} (or a workload.handlers entry that names it)`,
      );
    }
    if (reasonName === kickKey[0] && variantName === kickKey[1]) {
      // A kick exit is caused by a sibling's kick (the policy decides when), not drawn from a mix:
      // drawn, it would be counted as a received kick that no sibling sent.
      throw new ConfigError(
        `${field}.weights.${key}`,
        'no weight: kick exits are caused by sibling kicks, never drawn from a mix (use EXTERNAL_INTERRUPT:device for device interrupts)',
        weight,
      );
    }
    let variant = -1;
    if (variantName !== undefined) {
      variant = catalogue[reason].variants.findIndex((candidate) => candidate.name === variantName);
      if (variant < 0) {
        throw new ConfigError(
          `${field}.weights.${key}`,
          `a variant of ${reasonName}: ${catalogue[reason].variants.map((candidate) => candidate.name).join(', ')}`,
        );
      }
    }
    running += weight / total;
    cumulative[i] = running;
    reasons[i] = reason;
    variants[i] = variant;
  });
  cumulative[entries.length - 1] = 1;
  return { name: mix.name, cumulative, reasons, variants };
}

/**
 * A user mix names only kernel entries (and new reasons of the workload's handlers); a kvm mix never
 * names a kernel entry: a VM does not exit with `read`, and a host process does not exit with `HLT`.
 */
function checkKeysOfClass(mix: ExitMix, field: string): void {
  const userMix = mixClassOf(mix) === 'user';
  for (const key of Object.keys(mix.weights)) {
    const reason = (exitKeyAliases[key] ?? key).split(':')[0];
    const kernelEntry = kernelEntryReasonNames.includes(reason);
    const vmExit = exitCatalogue.some((spec) => spec.name === reason);
    if (userMix && vmExit) {
      throw new ConfigError(
        `${field}.weights.${key}`,
        `a kernel entry of a host process (${kernelEntryReasonNames.join(', ')}): this mix has class user; VM exit reasons belong to class kvm mixes`,
      );
    }
    if (!userMix && kernelEntry) {
      throw new ConfigError(
        `${field}.class`,
        `user, for a mix of kernel entries (${key}): a host process's mix; VM exit mixes (class kvm) name VM exit reasons`,
        mix.class ?? 'kvm (the default)',
      );
    }
  }
}

export function builtinMix(name: string, field = '--mix'): ExitMix {
  const mix = builtinMixes.find((candidate) => candidate.name === name);
  if (!mix)
    throw new ConfigError(
      field,
      `one of ${builtinMixes.map((candidate) => candidate.name).join(', ')}`,
      name,
    );
  return mix;
}
