import { z } from 'zod';
import { configErrorFromZod } from '../config/schema-error.js';
import { ConfigError } from '../errors.js';

/**
 * The cost model, in virtual cycles of a ~3 GHz server core. Every default carries its source; every
 * value can be overridden from a config file (`costs`) or `--cost name=value`.
 */
/** costs.ephmap's default: fitted (docs/calibration.md), set once the fit is run. */
const ephmapCyclesDefault = 425;

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
     * L1D flush itself (the refill of the guest's lines after it is `l1dRefillLine`). No published
     * measurement of the MSR_IA32_FLUSH_CMD write was found (an Intel forum thread, "L1D flush overhead",
     * community.intel.com 2022, asks for one and gets an estimate: 512-768 cycles to write back a fully
     * dirty 32-48 KiB L1D to L2 at one line per cycle). KVM's software fallback gives the arithmetic
     * (`vmx_l1d_flush`, arch/x86/kvm/vmx/vmx.c): one load per 4 KiB page of a 64 KiB buffer to fill the
     * TLB, a serialising CPUID, then 1,024 line loads of the 64 KiB (`PAGE_SIZE << L1D_CACHE_ORDER`),
     * at ~2 cycles per line from L2 = ~2,000-2,500 cycles. 2,500: the fallback's figure, an upper end
     * for the MSR (docs/calibration.md lists it as derived, not measured).
     */
    l1dFlush: z.number().min(0).default(2500),
    /**
     * Refilling one line of the guest's working set after an L1D flush: the flush empties only the L1D
     * (MSR_IA32_FLUSH_CMD is defined on the L1D alone, Intel SDM Vol. 4 "IA32_FLUSH_CMD"), so the line
     * comes back from L2: 14 cycles, Skylake-SP's L2 latency (Intel 64 and IA-32 Architectures
     * Optimization Reference Manual, Skylake Server cache parameters: L1D 4-5, L2 14, L3 50-70). Serial
     * latency: overlapping misses would make it cheaper. After a flush the guest refills
     * min(its working set, the L1D) lines (hyperthread.ts `refillLinesAfterFlush`): l1tf.rst, "Flushing
     * the L1D has a performance impact as the processor has to bring the flushed guest data back into
     * the L1D".
     */
    l1dRefillLine: z.number().min(0).default(14),
    /** VERW buffer clearing (MDS mitigation, X86_FEATURE_CLEAR_CPU_BUF): ~500 cycles (Intel MDS guidance). */
    bufferClear: z.number().min(0).default(500),
    /**
     * IBPB (`wrmsr(MSR_IA32_PRED_CMD, PRED_CMD_IBPB)`), charged by today's Linux ASI (`linux-asi`) when a
     * control taint calls for it (RFC v2 patch 27/29). Issue 22's text says "≈ thousands of cycles on
     * recent Intel"; no published measurement was found (docs/linux-asi.md "Cost figures"): 4,000 is an
     * ASSUMPTION within that range (docs/calibration.md).
     */
    ibpb: z.number().min(0).default(4000),
    /**
     * RSB fill after an IBPB (`fill_return_buffer()`, RSB_CLEAR_LOOPS = 32 calls in 16 loop iterations
     * plus an lfence, arch/x86/include/asm/nospec-branch.h). No cycle count was found: 32 calls at ~2
     * cycles plus a serialising lfence, ~100, is an ASSUMPTION derived from the instruction count
     * (docs/calibration.md).
     */
    rsbFill: z.number().min(0).default(100),
    /**
     * A host process's kernel entry and return with an empty handler (a syscall: SYSCALL, the entry
     * code, SYSRET; a page fault's #PF entry and IRET alike), charged in place of `exitRoundTrip` when a
     * run's mix is a user mix (issue 22 item 4). ASSUMPTION: 250 cycles, ~80 ns at 3 GHz, the order of
     * a null syscall on recent x86 without KPTI; no measurement was read in this session
     * (docs/calibration.md).
     */
    syscallRoundTrip: z.number().min(0).default(250),
    /**
     * The ephmap (today's ASI, "ASI is fast again" <20250812173109.295750-1-jackmanb@google.com>), per
     * page: map a sensitive page-cache page CPU-locally (a PTE write), use it, tear it down with a local
     * INVLPG and the remote TLB flush the posting says vulnerability mitigation needs. No cost is
     * published: FITTED to the "FIO randread on tmpfs with ephmap: -13.1%" row (docs/calibration.md
     * `fast-again-fio-ephmap`); charged only by linux-asi policies with `ephmap` on.
     */
    ephmap: z.number().min(0).default(ephmapCyclesDefault),
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
