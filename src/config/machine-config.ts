import { z } from 'zod';
import {
  coresMax,
  framesMax,
  memoryMiBMax,
  pageBytes,
  pageTablePoolPagesMax,
  smtMax,
  tlbEntriesMax,
  vcpusPerVmMax,
  vmsMax,
} from '../constants.js';
import { ConfigError } from '../errors.js';
import { configErrorFromZod } from './schema-error.js';

/** Page-table pool pages when the config gives none. */
export const pageTablePoolPagesDefault = 1024;

/**
 * The machine: cores x smt hyperthreads, VMs with vCPUs pinned to hyperthreads, physical memory, and
 * the geometry of each core's L1D, fill buffers and each hyperthread's TLB.
 *
 * Defaults follow a Skylake-SP class server core: L1D 32 KiB = 64 sets x 8 ways on Skylake, 48 KiB =
 * 64 sets x 12 ways on Ice Lake and later (Intel 64 and IA-32 Optimization Reference Manual, ch. 2);
 * 10 line fill buffers on Skylake (ibid.); 64-entry L1 DTLB for 4 KiB pages.
 */
const powerOfTwo = (what: string) =>
  z
    .number()
    .int(`${what} must be an integer`)
    .refine(
      (value) => value > 0 && (value & (value - 1)) === 0,
      `${what} must be a power of two (1, 2, 4, ...)`,
    );

const vmSchema = z
  .object({
    vcpus: z.number().int().min(1, 'vcpus must be at least 1').max(vcpusPerVmMax).default(2),
    guestMemoryMiB: z
      .number()
      .int()
      .min(1, 'guestMemoryMiB must be at least 1')
      .max(memoryMiBMax, `guestMemoryMiB must be at most ${memoryMiBMax} (machine.memoryMiB's maximum)`)
      .default(8),
    /** Hyperthread index each vCPU is pinned to; default: the next free hyperthreads in order. */
    pin: z.array(z.number().int().min(0)).optional(),
    /** A confidential VM (SEV-SNP / TDX style): its memory may be converted to guest-private. */
    confidential: z.boolean().default(false),
  })
  .strict();

export const machineConfigSchema = z
  .object({
    cores: z
      .number()
      .int('cores must be an integer')
      .min(1, 'cores must be 1..256')
      .max(coresMax, 'cores must be 1..256')
      .default(2),
    smt: z
      .number()
      .int('smt must be an integer')
      .min(1, 'smt must be 1..4')
      .max(smtMax, 'smt must be 1..4')
      .default(2),
    vms: z
      .array(vmSchema)
      .min(1, 'at least one VM (a machine without vCPUs runs nothing)')
      .max(vmsMax, `at most ${vmsMax} VMs`)
      .default(() => [{ vcpus: 4, guestMemoryMiB: 8, confidential: false }]),
    memoryMiB: z
      .number()
      .int()
      .min(1, `memoryMiB must be 1..${memoryMiBMax}`)
      .max(memoryMiBMax, `memoryMiB must be 1..${memoryMiBMax} (512 GiB)`)
      .default(128),
    /** Host secrets: page cache, keys, other processes. */
    hostSecretsMiB: z
      .number()
      .int()
      .min(1, `hostSecretsMiB must be 1..${memoryMiBMax}`)
      .max(memoryMiBMax, `hostSecretsMiB must be 1..${memoryMiBMax} (machine.memoryMiB's maximum)`)
      .default(4),
    l1d: z
      .object({
        // 4096 sets x 32 ways is far past any real L1D (64 sets) and bounds a core's section at 2 MiB.
        sets: powerOfTwo('l1d.sets')
          .refine((sets) => sets <= 4096, 'l1d.sets must be at most 4096')
          .default(64),
        ways: z.number().int().min(1, 'l1d.ways must be 1..32').max(32, 'l1d.ways must be 1..32').default(12),
        replacement: z.enum(['lru', 'plru']).default('lru'),
      })
      .strict()
      .superRefine((l1d, context) => {
        // Tree-PLRU is a binary tree over the ways: it needs a power of two (Intel's 12-way L1D uses
        // another scheme; use 'lru' for it).
        if (l1d.replacement === 'plru' && (l1d.ways & (l1d.ways - 1)) !== 0) {
          context.addIssue({
            code: 'custom',
            path: ['ways'],
            message: "l1d.ways must be a power of two with replacement 'plru'",
            input: l1d.ways,
          });
        }
      })
      .default({ sets: 64, ways: 12, replacement: 'lru' }),
    fillBufferEntries: z
      .number()
      .int()
      .min(0, 'fillBufferEntries must be 0..32')
      .max(32, 'fillBufferEntries must be 0..32')
      .default(10),
    tlbEntries: powerOfTwo('tlbEntries')
      .refine((entries) => entries <= tlbEntriesMax, `tlbEntries must be at most ${tlbEntriesMax}`)
      .default(64),
    tlbWays: powerOfTwo('tlbWays')
      .refine((ways) => ways <= tlbEntriesMax, `tlbWays must be at most ${tlbEntriesMax}`)
      .default(4),
    pcid: z.boolean().default(true),
    /**
     * Kernel page-table isolation (KPTI): a CR3 write on every kernel entry from and exit to user space,
     * so each trip to the VMM and back costs two, whatever the policy. Off by default: parts immune to
     * Meltdown enumerate RDCL_NO in IA32_ARCH_CAPABILITIES (Intel since Cascade Lake; AMD was never
     * affected), Linux then leaves X86_BUG_CPU_MELTDOWN unset (arch/x86/kernel/cpu/common.c,
     * `cpu_set_bug_bits`) and `pti_check_boottime_disable` (arch/x86/mm/pti.c) turns PTI off.
     */
    kpti: z.boolean().default(false),
    /**
     * Core clock in GHz: converts modelled cycles to seconds, so a workload's exits per second
     * (`workload.exitsPerSecond`) become cycles between exits and a run reports the rate it achieved.
     * 3 GHz: the ~3 GHz server core the cost model's cycle counts are measured on (cpu/costs.ts).
     */
    ghz: z.number().min(0.1, 'machine.ghz must be 0.1..10').max(10, 'machine.ghz must be 0.1..10').default(3),
    /** Map the kernel direct map with 2 MiB pages where alignment allows, as Linux does. */
    directMapLargePages: z.boolean().default(true),
    /** Page-table pages available to all address spaces. */
    pageTablePoolPages: z
      .number()
      .int()
      .min(16, `pageTablePoolPages must be 16..${pageTablePoolPagesMax}`)
      .max(pageTablePoolPagesMax, `pageTablePoolPages must be 16..${pageTablePoolPagesMax}`)
      .default(pageTablePoolPagesDefault),
  })
  .strict();

export type MachineConfigInput = z.input<typeof machineConfigSchema>;
export type MachineConfig = z.output<typeof machineConfigSchema>;

/** The hyperthread each vCPU of each VM runs on, after defaults. */
export function vcpuPinning(config: MachineConfig): number[][] {
  const threads = config.cores * config.smt;
  const taken = new Set<number>();
  const pinning: number[][] = [];
  let next = 0;
  config.vms.forEach((vm, vmId) => {
    if (vm.pin) {
      if (vm.pin.length !== vm.vcpus) {
        throw new ConfigError(
          `machine.vms[${vmId}].pin`,
          `one hyperthread per vCPU (${vm.vcpus} entries)`,
          vm.pin,
        );
      }
      for (const thread of vm.pin) {
        if (thread >= threads) {
          throw new ConfigError(`machine.vms[${vmId}].pin`, `hyperthread indices 0..${threads - 1}`, thread);
        }
        if (taken.has(thread)) {
          throw new ConfigError(`machine.vms[${vmId}].pin`, 'each hyperthread runs at most one vCPU', thread);
        }
        taken.add(thread);
      }
      pinning.push([...vm.pin]);
      return;
    }
    const pins: number[] = [];
    for (let vcpu = 0; vcpu < vm.vcpus; vcpu++) {
      while (taken.has(next)) next++;
      if (next >= threads) {
        throw new ConfigError(
          `machine.vms[${vmId}].vcpus`,
          `at most ${threads} vCPUs in all (cores x smt hyperthreads, one vCPU per hyperthread)`,
          vm.vcpus,
        );
      }
      taken.add(next);
      pins.push(next);
    }
    pinning.push(pins);
  });
  return pinning;
}

/**
 * Validates and fills defaults. Throws ConfigError naming the field; nothing is allocated here, so a
 * bad config fails before the machine buffer exists.
 */
export function parseMachineConfig(input: unknown): MachineConfig {
  const parsed = machineConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'machine');
  const config = parsed.data;
  // The default VM takes a vCPU per hyperthread, up to its 4: `--cores 1` alone still builds.
  const givenVms = typeof input === 'object' && input !== null && 'vms' in input;
  if (!givenVms)
    config.vms = [{ ...config.vms[0], vcpus: Math.min(config.vms[0].vcpus, config.cores * config.smt) }];
  vcpuPinning(config);
  if ((config.memoryMiB * (1024 * 1024)) / pageBytes > framesMax) {
    throw new ConfigError('machine.memoryMiB', 'at most 8 TiB of frames', config.memoryMiB);
  }
  return config;
}
