import { z } from 'zod';
import { configErrorFromZod } from '../config/schema-error.js';
import { ConfigError } from '../errors.js';

/**
 * The cost model, in virtual cycles of a ~3 GHz server core. Every default carries its source; every
 * value can be overridden from a config file (`costs`) or `--cost name=value`.
 */
export const costModelSchema = z
  .object({
    /**
     * VM exit + VM entry round trip with an empty handler. kvm-unit-tests `vmexit` (cpuid test) on
     * Skylake-SP measures ~1,500-1,600 cycles per round trip with current KVM.
     */
    exitRoundTrip: z.number().min(0).default(1550),
    /**
     * IPI from send (x2APIC ICR write) to the handler running on the target: ~4,300 cycles measured by
     * kvm-unit-tests `vmexit` ipi tests and the 2019 RFC thread's numbers for a sibling kick.
     */
    ipiDelivery: z.number().min(0).default(4300),
    /** Sending an IPI: one x2APIC ICR MSR write in the host, ~100-200 cycles. */
    ipiSend: z.number().min(0).default(150),
    /**
     * CR3 write with PCID and the no-flush bit: ~100 cycles (LWN "KAISER: hiding the kernel from user
     * space" and the KPTI measurements that followed, 2017-2018).
     */
    cr3WithPcid: z.number().min(0).default(100),
    /** CR3 write without PCID: the write plus refilling the TLB afterwards, ~500-1,000 cycles (ibid.). */
    cr3WithoutPcid: z.number().min(0).default(800),
    /**
     * L1D flush. With MSR_IA32_FLUSH_CMD (L1D_FLUSH) ~1,000 cycles plus refills afterwards; KVM's
     * software fallback reads 64 KiB (vmx_l1d_flush in arch/x86/kvm/vmx/vmx.c: two passes over a 64 KiB
     * buffer, 1,024 lines each). Assumption: ~2,500 cycles for the flush itself, refills come from the
     * cache model.
     */
    l1dFlush: z.number().min(0).default(2500),
    /** VERW buffer clearing (MDS mitigation, X86_FEATURE_CLEAR_CPU_BUF): ~500 cycles (Intel MDS guidance). */
    bufferClear: z.number().min(0).default(500),
    /** L1D hit: 4-5 cycles (Intel Optimization Reference Manual, Skylake). */
    cacheHit: z.number().min(0).default(5),
    /** L1D miss served by L2/L3: ~14 (L2) to ~50-70 (L3) cycles; a blended 40. */
    cacheMiss: z.number().min(0).default(40),
    /** A page walk after a TLB miss (PML4..PT, mostly cache hits): ~30 cycles. */
    pageWalk: z.number().min(0).default(30),
    /** Taking a page fault in the host (#PF entry and exit): ~1,000 cycles. */
    pageFault: z.number().min(0).default(1000),
  })
  .strict();

export type CostModel = z.output<typeof costModelSchema>;
export type CostModelInput = z.input<typeof costModelSchema>;

/**
 * Cost fields that existed and went, with what took their place: an old config names them, and gets
 * this instead of "unrecognized key".
 */
const removedCosts: Record<string, string> = {
  guestQuantum:
    'removed (it changed nothing): how often a vCPU exits is workload.exitsPerSecond (or workload.exitIntervalCycles)',
};

export function parseCostModel(input: unknown): CostModel {
  if (typeof input === 'object' && input !== null) {
    for (const key of Object.keys(input)) {
      if (Object.hasOwn(removedCosts, key)) throw new ConfigError(`costs.${key}`, removedCosts[key]);
    }
  }
  const parsed = costModelSchema.safeParse(input ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'costs');
  return parsed.data;
}

export const defaultCostModel: CostModel = parseCostModel({});
