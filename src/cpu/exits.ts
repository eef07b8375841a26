import { assert } from '../assert.js';
import type { RegionKind } from '../memory/regions.js';

/**
 * The exit catalogue: each VM exit reason with its handler program(s), following KVM's VMX handlers
 * (arch/x86/kvm/vmx/vmx.c `kvm_vmx_exit_handlers`, the fastpath handlers, and arch/x86/kvm/x86.c).
 * Exit reason numbers are VMX basic exit reasons (arch/x86/include/uapi/asm/vmx.h).
 *
 * A handler program is memory accesses to named regions, compute, and one action at the end. Whether
 * a handler needs the full kernel address space is NOT declared anywhere: it follows from the page
 * tables, when one of its accesses misses in kvm:N (DESIGN.md "Exits"). Regions are resolved for the
 * exiting vCPU: per-VM regions to its VM, per-vCPU regions to itself, per-thread regions to its
 * hyperthread.
 *
 * Where a handler has several paths (EPT violation fast path vs. page allocation), `variants` carry
 * weights; the weights are assumptions of this model, stated with each, and overridable in a mix by
 * naming the variant (`EPT_VIOLATION:alloc`).
 */
export type HandlerOp =
  | { op: 'access'; region: RegionKind; offsetBytes: number; bytes: number; write: boolean }
  | { op: 'compute'; cycles: number };

/**
 * What the handler ends with:
 * - `resume`: back into the guest;
 * - `vmm`: exit to the VMM in userspace (KVM_RUN returns), which handles it and calls KVM_RUN again;
 * - `halt`: the vCPU blocks until a timer or an IPI wakes it;
 * - `ipi`: send an IPI to another vCPU of the VM (waking it if halted), then resume.
 */
export type HandlerAction = 'resume' | 'vmm' | 'halt' | 'ipi';

export interface HandlerVariant {
  name: string;
  weight: number;
  ops: HandlerOp[];
  action: HandlerAction;
  /** Cycles spent in the VMM for `vmm` actions. */
  vmmCycles?: number;
  /** The KVM function this path follows. */
  kvmPath: string;
  /**
   * Confidential VMs only: the memory operation the exit carries out — a private/shared conversion of
   * a guest range done by the VMM (`map-gpa-range`, `psc`), or a lazy accept (`accept`).
   */
  conversion?: 'map-gpa-range' | 'psc' | 'accept';
}

export interface ExitReasonSpec {
  name: string;
  /** VMX basic exit reason number. */
  vmxCode: number;
  variants: HandlerVariant[];
  /** Why the variants and their weights are what they are. */
  note?: string;
}

const access = (region: RegionKind, offsetBytes = 0, bytes = 64, write = false): HandlerOp => ({
  op: 'access',
  region,
  offsetBytes,
  bytes,
  write,
});
const compute = (cycles: number): HandlerOp => ({ op: 'compute', cycles });

/** The loaded VMCS and the vCPU's register file: every handler reads them. */
const vcpuState = [access('vcpu-struct', 0, 256), access('percpu-kvm', 0, 64)];

export const exitCatalogue: readonly ExitReasonSpec[] = [
  {
    name: 'EXCEPTION_NMI',
    vmxCode: 0,
    variants: [
      {
        name: 'host-nmi',
        weight: 1,
        // A host NMI (perf sampling) taken while in the guest: the NMI handler reads perf's per-CPU
        // state, which is host data.
        ops: [
          ...vcpuState,
          access('irq-stack', 0, 256, true),
          access('percpu', 512, 256, true),
          compute(800),
        ],
        action: 'resume',
        kvmPath: 'handle_exception_nmi_irqoff -> exc_nmi -> perf_event_nmi_handler',
      },
    ],
  },
  {
    name: 'EXTERNAL_INTERRUPT',
    vmxCode: 1,
    variants: [
      {
        name: 'device',
        weight: 1,
        // A host device interrupt: the driver's handler touches host data (network buffers in the page
        // cache, the per-CPU softirq state).
        ops: [
          ...vcpuState,
          access('irq-stack', 0, 256, true),
          access('percpu', 0, 256, true),
          access('page-cache', 0, 512),
          compute(1500),
        ],
        action: 'resume',
        kvmPath: 'handle_external_interrupt_irqoff -> common_interrupt -> driver',
      },
      {
        name: 'kick',
        weight: 0,
        // The ASI sibling kick: its vector only makes the vCPU exit; the handler touches nothing secret.
        ops: [...vcpuState, access('irq-stack', 0, 64, true), compute(100)],
        action: 'resume',
        kvmPath: 'handle_external_interrupt_irqoff -> reschedule-like kick vector',
      },
    ],
    note: "'kick' is the exit a sibling kick causes; mixes draw 'device'.",
  },
  {
    name: 'PENDING_INTERRUPT',
    vmxCode: 7,
    variants: [
      {
        name: 'window',
        weight: 1,
        ops: [...vcpuState, compute(150)],
        action: 'resume',
        kvmPath: 'handle_interrupt_window',
      },
    ],
  },
  {
    name: 'CPUID',
    vmxCode: 10,
    variants: [
      {
        name: 'emulate',
        weight: 1,
        ops: [...vcpuState, access('vm-struct', 1024, 256), compute(300)],
        action: 'resume',
        kvmPath: 'kvm_emulate_cpuid -> kvm_cpuid (vcpu->arch.cpuid_entries)',
      },
    ],
  },
  {
    name: 'HLT',
    vmxCode: 12,
    variants: [
      {
        name: 'halt',
        weight: 1,
        ops: [...vcpuState, access('vcpu-struct', 4096, 128, true), compute(200)],
        action: 'halt',
        kvmPath: 'kvm_emulate_halt -> kvm_vcpu_halt (halt-polling, then block)',
      },
    ],
    note: 'The blocked vCPU is modelled as the idle loop, which touches no secrets; the wake path re-enters through isolation.',
  },
  {
    name: 'VMCALL',
    vmxCode: 18,
    variants: [
      {
        name: 'send-ipi',
        weight: 1,
        // KVM_HC_SEND_IPI / KVM_HC_KICK_CPU: PV IPIs between vCPUs of this VM.
        ops: [
          ...vcpuState,
          access('vm-struct', 2048, 128),
          access('vcpu-struct', 4096, 64, true),
          compute(400),
        ],
        action: 'ipi',
        kvmPath: 'kvm_emulate_hypercall -> kvm_pv_send_ipi / kvm_pv_kick_cpu_op',
      },
      {
        name: 'map-gpa-range',
        weight: 0,
        // KVM_HC_MAP_GPA_RANGE: the guest asks for a range to become private or shared; KVM exits to
        // the VMM (KVM_EXIT_HYPERCALL), which converts it with KVM_SET_MEMORY_ATTRIBUTES.
        ops: [...vcpuState, access('vm-struct', 2048, 128), compute(300)],
        action: 'vmm',
        vmmCycles: 15000,
        conversion: 'map-gpa-range',
        kvmPath: 'kvm_emulate_hypercall -> KVM_HC_MAP_GPA_RANGE -> KVM_EXIT_HYPERCALL to the VMM',
      },
    ],
  },
  {
    name: 'IO_INSTRUCTION',
    vmxCode: 30,
    variants: [
      {
        name: 'in-kernel',
        weight: 0.3,
        ops: [...vcpuState, access('io-bus', 0, 128), compute(600)],
        action: 'resume',
        kvmPath: 'handle_io -> kernel_pio -> kvm_io_bus_read (PIT, PIC)',
      },
      {
        name: 'userspace',
        weight: 0.7,
        ops: [...vcpuState, access('io-bus', 0, 128), compute(300)],
        action: 'vmm',
        vmmCycles: 20000,
        kvmPath: 'handle_io -> KVM_EXIT_IO to the VMM (serial, virtio legacy PIO)',
      },
    ],
    note: 'Assumption: 70% of port I/O reaches userspace devices (serial console, legacy virtio).',
  },
  {
    name: 'MSR_WRITE',
    vmxCode: 32,
    variants: [
      {
        name: 'fastpath',
        weight: 1,
        // TSC deadline timer and x2APIC ICR writes: handled with IRQs off in the fast path.
        ops: [...vcpuState, access('vcpu-struct', 8192, 128, true), compute(250)],
        action: 'resume',
        kvmPath: 'handle_fastpath_set_msr_irqoff (MSR_IA32_TSC_DEADLINE, X2APIC_ICR)',
      },
      {
        name: 'common',
        weight: 0,
        // Any other MSR: handle_wrmsr -> kvm_emulate_wrmsr -> kvm_set_msr_with_filter -> vmx_set_msr ->
        // kvm_set_msr_common (arch/x86/kvm/x86.c). Most of its cases write vcpu->arch; the kvmclock MSRs
        // (MSR_KVM_SYSTEM_TIME_NEW -> kvm_write_system_time) also read struct kvm's clock state.
        ops: [
          ...vcpuState,
          access('vcpu-struct', 8192, 256, true),
          access('vm-struct', 5120, 128),
          compute(600),
        ],
        action: 'resume',
        kvmPath: 'handle_wrmsr -> kvm_emulate_wrmsr -> vmx_set_msr -> kvm_set_msr_common',
      },
      {
        name: 'pmu',
        weight: 0,
        // A vPMU event-select or counter write: kvm_pmu_set_msr -> reprogram_counter ->
        // pmc_reprogram_counter -> perf_event_create_kernel_counter (arch/x86/kvm/pmu.c). The perf event
        // is host data: perf's per-CPU context and the host allocator's per-CPU lists.
        ops: [
          ...vcpuState,
          access('vcpu-struct', 8192, 256, true),
          access('percpu', 5120, 256, true),
          compute(3000),
        ],
        action: 'resume',
        kvmPath:
          'kvm_set_msr_common -> kvm_pmu_set_msr -> reprogram_counter -> perf_event_create_kernel_counter',
      },
      {
        name: 'userspace',
        weight: 0,
        // An MSR the VMM filters (KVM_X86_SET_MSR_FILTER) or KVM does not know, with
        // KVM_CAP_X86_USER_SPACE_MSR enabled: kvm_emulate_wrmsr -> kvm_msr_user_space exits with
        // KVM_EXIT_X86_WRMSR and the VMM completes it (arch/x86/kvm/x86.c).
        ops: [...vcpuState, access('vm-struct', 5120, 64), compute(300)],
        action: 'vmm',
        vmmCycles: 15000,
        kvmPath: 'kvm_emulate_wrmsr -> kvm_msr_user_space -> KVM_EXIT_X86_WRMSR to the VMM',
      },
    ],
    note: "Assumption: the built-in mixes' MSR_WRITE exits take the fast path (timer-heavy guests writing MSR_IA32_TSC_DEADLINE and the x2APIC ICR), so the slow paths have weight 0 and are drawn only when a mix names them (MSR_WRITE:common, MSR_WRITE:pmu, MSR_WRITE:userspace).",
  },
  {
    name: 'PAUSE',
    vmxCode: 40,
    variants: [
      {
        name: 'yield',
        weight: 1,
        // Pause-loop exiting: look for a preempted vCPU and yield to it; yield_to takes the runqueue
        // locks, which are host per-CPU data.
        ops: [...vcpuState, access('vm-struct', 3072, 128), access('percpu', 1024, 128, true), compute(1500)],
        action: 'resume',
        kvmPath: 'handle_pause -> kvm_vcpu_on_spin -> kvm_vcpu_yield_to -> yield_to',
      },
    ],
  },
  {
    name: 'EOI_INDUCED',
    vmxCode: 45,
    variants: [
      {
        name: 'eoi',
        weight: 1,
        ops: [...vcpuState, access('vcpu-struct', 8192, 64, true), compute(150)],
        action: 'resume',
        kvmPath: 'handle_apic_eoi_induced -> kvm_apic_set_eoi_accelerated',
      },
    ],
  },
  {
    name: 'EPT_VIOLATION',
    vmxCode: 48,
    variants: [
      {
        name: 'fast',
        weight: 0.8,
        // The page is present in the memslot; only the SPTE is missing or write-protected.
        ops: [...vcpuState, access('memslots', 0, 256), access('vm-struct', 4096, 256, true), compute(1200)],
        action: 'resume',
        kvmPath: 'handle_ept_violation -> kvm_mmu_page_fault -> fast_page_fault / kvm_tdp_mmu_map',
      },
      {
        name: 'alloc',
        weight: 0.2,
        // First touch: allocate a page (per-CPU free lists) and fault it in through the VMM's mapping.
        ops: [
          ...vcpuState,
          access('memslots', 0, 256),
          access('percpu', 2048, 256, true),
          access('vmm-heap', 0, 128),
          access('page-cache', 4096, 256),
          compute(4000),
        ],
        action: 'resume',
        kvmPath: 'kvm_faultin_pfn -> hva_to_pfn -> get_user_pages -> __alloc_pages',
      },
    ],
    note: 'Assumption: 20% of EPT violations allocate (first touch); the rest are fixed up from existing memory.',
  },
  {
    name: 'VMGEXIT',
    // SVM exit code 0x403 (SVM_EXIT_VMGEXIT, arch/x86/include/uapi/asm/svm.h); not a VMX reason.
    vmxCode: 0x403,
    variants: [
      {
        name: 'psc',
        weight: 1,
        // An SNP guest's Page State Change request through the GHCB. Since Linux 6.11 KVM forwards it
        // to the VMM as KVM_HC_MAP_GPA_RANGE (snp_begin_psc in arch/x86/kvm/svm/sev.c).
        ops: [...vcpuState, access('vcpu-struct', 12288, 256), access('memslots', 0, 128), compute(500)],
        action: 'vmm',
        vmmCycles: 15000,
        conversion: 'psc',
        kvmPath: 'sev_handle_vmgexit -> snp_begin_psc -> KVM_EXIT_HYPERCALL (MAP_GPA_RANGE) to the VMM',
      },
      {
        name: 'private-accept',
        weight: 0,
        // First touch of unaccepted private memory: the guest takes #VC (#VE on TDX) and accepts the
        // page; KVM faults the guest_memfd folio in (host page allocation) before the guest validates it.
        ops: [...vcpuState, access('memslots', 0, 128), access('percpu', 2048, 128, true), compute(2000)],
        action: 'resume',
        conversion: 'accept',
        kvmPath: 'kvm_mmu_page_fault -> kvm_gmem_get_pfn; guest: PVALIDATE / TDG.MEM.PAGE.ACCEPT',
      },
    ],
    note: 'Confidential VMs only.',
  },
  {
    name: 'EPT_MISCONFIG',
    vmxCode: 49,
    variants: [
      {
        name: 'ioeventfd',
        weight: 0.6,
        // Fast MMIO to an ioeventfd (virtio notify): signalling the eventfd wakes a host thread.
        ops: [...vcpuState, access('io-bus', 512, 128), access('percpu', 3072, 128, true), compute(900)],
        action: 'resume',
        kvmPath: 'handle_ept_misconfig -> kvm_io_bus_write -> ioeventfd_write -> eventfd_signal',
      },
      {
        name: 'userspace',
        weight: 0.4,
        ops: [...vcpuState, access('io-bus', 512, 128), compute(400)],
        action: 'vmm',
        vmmCycles: 25000,
        kvmPath: 'handle_ept_misconfig -> emulate MMIO -> KVM_EXIT_MMIO to the VMM',
      },
    ],
    note: 'Assumption: 60% of MMIO exits are virtio notifications to an ioeventfd.',
  },
  {
    name: 'PREEMPTION_TIMER',
    vmxCode: 52,
    variants: [
      {
        name: 'fastpath',
        weight: 1,
        ops: [...vcpuState, access('vcpu-struct', 8192, 128, true), compute(200)],
        action: 'resume',
        kvmPath: 'handle_fastpath_preemption_timer -> kvm_lapic_expired_hv_timer',
      },
    ],
  },
  {
    name: 'APIC_WRITE',
    vmxCode: 56,
    variants: [
      {
        name: 'apic',
        weight: 1,
        ops: [...vcpuState, access('vcpu-struct', 8192, 128, true), compute(300)],
        action: 'resume',
        kvmPath: 'handle_apic_write -> kvm_apic_write_nodecode',
      },
    ],
  },
  {
    name: 'MACHINE_CHECK',
    vmxCode: 41,
    variants: [
      {
        name: 'mce',
        weight: 1,
        ops: [
          ...vcpuState,
          access('irq-stack', 0, 256, true),
          access('percpu', 4096, 512, true),
          access('keys', 0, 64),
          compute(5000),
        ],
        action: 'resume',
        kvmPath: 'handle_machine_check -> kvm_machine_check -> do_machine_check',
      },
    ],
    note: 'Injected #MC only; never drawn by a mix.',
  },
  // Reasons added in issue 19, after the earlier ones so that the indices traces and fault counters
  // use for those stay the same.
  {
    name: 'DR_ACCESS',
    vmxCode: 29,
    variants: [
      {
        name: 'lazy-switch',
        weight: 0.9,
        // handle_dr (arch/x86/kvm/vmx/vmx.c): with no host debugger attached (guest_debug clear), KVM
        // stops intercepting MOV DR (exec_controls_clearbit CPU_BASED_MOV_DR_EXITING), sets
        // KVM_DEBUGREG_WONT_EXIT and lets the guest own the debug registers until the next exit, where
        // vmx_sync_dirty_debug_regs saves them into vcpu->arch.db / dr6 / dr7.
        ops: [...vcpuState, access('vcpu-struct', 12288, 128, true), compute(300)],
        action: 'resume',
        kvmPath: 'handle_dr -> exec_controls_clearbit(MOV_DR_EXITING) -> KVM_DEBUGREG_WONT_EXIT',
      },
      {
        name: 'host-breakpoints',
        weight: 0.1,
        // After a run with the guest's debug registers live, vcpu_enter_guest (arch/x86/kvm/x86.c) puts
        // the host's back: hw_breakpoint_restore (arch/x86/kernel/hw_breakpoint.c) reads the per-CPU
        // cpu_debugreg[] and cpu_dr7 of the host's own breakpoints (perf, ptrace), host per-CPU data.
        ops: [
          ...vcpuState,
          access('vcpu-struct', 12288, 128, true),
          access('percpu', 6144, 128),
          compute(600),
        ],
        action: 'resume',
        kvmPath:
          'handle_dr -> kvm_get_dr / kvm_set_dr; vcpu_enter_guest -> hw_breakpoint_restore (per-CPU cpu_debugreg)',
      },
    ],
    note: 'Assumption: 10% of debug-register exits find host breakpoints active (perf or ptrace on the host) and restore them; the rest touch only the vCPU. Issue 19 reports ~10% DR_ACCESS in Windows-guest mixes.',
  },
  {
    name: 'MSR_READ',
    vmxCode: 31,
    variants: [
      {
        name: 'common',
        weight: 0.9,
        // handle_rdmsr is kvm_emulate_rdmsr -> kvm_get_msr_with_filter -> vmx_get_msr ->
        // kvm_get_msr_common (arch/x86/kvm/x86.c): the value comes from vcpu->arch or the VMCS.
        ops: [...vcpuState, access('vcpu-struct', 8192, 128), compute(300)],
        action: 'resume',
        kvmPath: 'kvm_emulate_rdmsr -> kvm_get_msr_with_filter -> vmx_get_msr -> kvm_get_msr_common',
      },
      {
        name: 'pmu',
        weight: 0.05,
        // A vPMU counter read: kvm_pmu_get_msr -> pmc_read_counter -> perf_event_read_value
        // (arch/x86/kvm/pmu.c) reads the host perf event behind the counter.
        ops: [...vcpuState, access('vcpu-struct', 8192, 128), access('percpu', 5120, 128), compute(1200)],
        action: 'resume',
        kvmPath: 'kvm_get_msr_common -> kvm_pmu_get_msr -> pmc_read_counter -> perf_event_read_value',
      },
      {
        name: 'userspace',
        weight: 0.05,
        // A filtered or unknown MSR with KVM_CAP_X86_USER_SPACE_MSR: kvm_emulate_rdmsr ->
        // kvm_msr_user_space exits with KVM_EXIT_X86_RDMSR (arch/x86/kvm/x86.c).
        ops: [...vcpuState, access('vm-struct', 5120, 64), compute(300)],
        action: 'vmm',
        vmmCycles: 15000,
        kvmPath: 'kvm_emulate_rdmsr -> kvm_msr_user_space -> KVM_EXIT_X86_RDMSR to the VMM',
      },
    ],
    note: 'Assumption: 5% of MSR reads hit a vPMU counter and 5% an MSR the VMM filters; the rest are served from vCPU state.',
  },
  {
    name: 'CR_ACCESS',
    vmxCode: 28,
    variants: [
      {
        name: 'cr8',
        weight: 0.4,
        // MOV to/from CR8 without a TPR shadow: handle_cr -> kvm_set_cr8 -> kvm_lapic_set_tpr
        // (arch/x86/kvm/vmx/vmx.c, lapic.c): the vCPU's local APIC page.
        ops: [...vcpuState, access('vcpu-struct', 8192, 64, true), compute(200)],
        action: 'resume',
        kvmPath: 'handle_cr -> kvm_set_cr8 -> kvm_lapic_set_tpr',
      },
      {
        name: 'cr0-cr4',
        weight: 0.6,
        // A host-owned CR0/CR4 bit (CR0.PG/WP, CR4.PAE/PGE/SMEP...): handle_cr -> handle_set_cr0 /
        // handle_set_cr4 -> kvm_set_cr0 / kvm_set_cr4 -> kvm_post_set_cr0/4 -> kvm_mmu_reset_context
        // (arch/x86/kvm/x86.c): the vCPU's MMU role and roots, and struct kvm's MMU state.
        ops: [
          ...vcpuState,
          access('vcpu-struct', 4096, 256, true),
          access('vm-struct', 4096, 128),
          compute(900),
        ],
        action: 'resume',
        kvmPath: 'handle_cr -> kvm_set_cr0 / kvm_set_cr4 -> kvm_mmu_reset_context',
      },
    ],
    note: 'With EPT, MOV to CR3 does not exit. Assumption: 40% of CR exits are CR8 (TPR) writes of guests without a TPR shadow, 60% CR0/CR4 writes.',
  },
  {
    name: 'INVLPG',
    vmxCode: 14,
    variants: [
      {
        name: 'shadow',
        weight: 1,
        // handle_invlpg -> kvm_mmu_invlpg -> kvm_mmu_invalidate_addr (arch/x86/kvm/mmu/mmu.c): walks the
        // vCPU's shadow page table and zaps the SPTE. Only with shadow paging (ept=0) or for a nested guest.
        ops: [
          ...vcpuState,
          access('vcpu-struct', 4096, 128),
          access('vm-struct', 4096, 256, true),
          compute(800),
        ],
        action: 'resume',
        kvmPath: 'handle_invlpg -> kvm_mmu_invlpg -> kvm_mmu_invalidate_addr',
      },
    ],
    note: 'INVLPG exits only under shadow paging (ept=0) or nested; with EPT a mix should not draw it.',
  },
  {
    name: 'XSETBV',
    vmxCode: 55,
    variants: [
      {
        name: 'xcr0',
        weight: 1,
        // handle_xsetbv is kvm_emulate_xsetbv -> __kvm_set_xcr (arch/x86/kvm/x86.c): checks the new XCR0
        // against kvm_caps.supported_xcr0 (KVM module data), writes vcpu->arch.xcr0 and updates the
        // vCPU's CPUID (kvm_update_cpuid_runtime).
        ops: [
          ...vcpuState,
          access('kvm-module', 0, 64),
          access('vcpu-struct', 12288, 64, true),
          compute(400),
        ],
        action: 'resume',
        kvmPath: 'kvm_emulate_xsetbv -> __kvm_set_xcr -> kvm_update_cpuid_runtime',
      },
    ],
  },
];

/**
 * The userspace class's "exits" (issue 22 item 4): a host process's kernel entries, for the mixes of
 * class `user` (cpu/mixes.ts). When a run's mix is a user mix, each vCPU thread of the config runs a
 * host process instead: its "guest" stretches are user-mode work, its "guest memory" its own anonymous
 * memory, and these are its syscalls, page faults and the context switches of a syscall that blocks.
 * Same shape as the exit catalogue (accesses to regions, compute, one action); `kvmPath` holds the
 * kernel function path each follows. The regions stand for:
 * - `vmm-heap` (own VM): the process's user buffers, reached through its own user mapping
 *   (copy_to_user / copy_from_user). The user class's restricted space maps the whole user range
 *   (RFC v2 patch 25/29), so these never fault.
 * - `guest-memory` (own VM): the process's anonymous pages reached through the kernel's direct map
 *   (zeroing a fresh page, copy-on-write): "the task's own memory is still missing from the direct map"
 *   (RFC v2 patch 25/29), so under linux-asi these fault out of the restricted space, which is the
 *   "unnecessary ASI exits ... when zeroing sensitive pages" of Jackman's "ASI is fast again".
 * - `page-cache`: file data (shmem / tmpfs and regular files), allocated GFP_HIGHUSER_MOVABLE: not in
 *   the restricted physmap (linux-asi/sensitivity.ts), unless mapped through the ephmap.
 * - `percpu`: the kernel's own data the path touches (the task, the runqueue, the page allocator's
 *   per-CPU lists, the xarray walk of the mapping), nonsensitive under the denylist.
 * - `page-tables`: the process's page-table pages a fault fills in (GFP_PGTABLE_USER, nonsensitive).
 *
 * Cycle counts of the compute ops are ASSUMPTIONS of this model (no per-path measurement was found),
 * stated at each; docs/calibration.md says which calibration row holds them to a published figure.
 * The 4 KiB copies are 64 line accesses each, plus a compute op for what the line costs leave out (a
 * copy from L3 / memory runs at ~10-20 GB/s, ~200-400 ns for 4 KiB: `copyPageCycles`).
 */
const copyPageCycles = 900;
/** The process's kernel state: the task and this CPU's runqueue (per-CPU data, nonsensitive). */
const taskState = [access('percpu', 0, 128)];

export const kernelEntryCatalogue: readonly ExitReasonSpec[] = [
  {
    name: 'read',
    vmxCode: userReasonVmxCodeOf(0),
    variants: [
      {
        name: 'tmpfs-page-cache',
        weight: 1,
        // pread(2) of 4 KiB from a tmpfs file: ksys_pread64 -> vfs_read -> shmem_file_read_iter
        // (mm/shmem.c), which looks the folio up in the mapping (shmem_get_folio), then copy_folio_to_iter
        // -> copy_page_to_iter (lib/iov_iter.c) copies the page-cache page into the user buffer. FIO's
        // psync engine issues one such pread per I/O.
        ops: [
          ...taskState,
          access('percpu', 1024, 128),
          access('page-cache', 0, 4096),
          access('vmm-heap', 0, 4096, true),
          compute(copyPageCycles + 300),
        ],
        action: 'resume',
        kvmPath:
          'ksys_pread64 -> vfs_read -> shmem_file_read_iter (mm/shmem.c) -> shmem_get_folio + copy_folio_to_iter (lib/iov_iter.c)',
      },
      {
        name: 'page-cache',
        weight: 0,
        // read(2) of a cached regular file (a header the compiler opens): vfs_read -> filemap_read
        // (mm/filemap.c) -> filemap_get_pages, then copy_folio_to_iter for each folio.
        ops: [
          ...taskState,
          access('percpu', 1024, 128),
          access('page-cache', 8192, 4096),
          access('vmm-heap', 4096, 4096, true),
          compute(copyPageCycles + 500),
        ],
        action: 'resume',
        kvmPath:
          'ksys_read -> vfs_read -> filemap_read (mm/filemap.c) -> filemap_get_pages + copy_folio_to_iter',
      },
    ],
  },
  {
    name: 'write',
    vmxCode: userReasonVmxCodeOf(1),
    variants: [
      {
        name: 'page-cache',
        weight: 1,
        // write(2) to a file (an object file, a pipe's page): vfs_write -> generic_perform_write
        // (mm/filemap.c) -> write_begin, copy_folio_from_iter_atomic from the user buffer into the
        // page-cache folio, write_end.
        ops: [
          ...taskState,
          access('percpu', 1024, 128, true),
          access('vmm-heap', 8192, 4096),
          access('page-cache', 16384, 4096, true),
          compute(copyPageCycles + 600),
        ],
        action: 'resume',
        kvmPath:
          'ksys_write -> vfs_write -> generic_perform_write (mm/filemap.c) -> copy_folio_from_iter_atomic',
      },
    ],
  },
  {
    name: 'page-fault',
    vmxCode: userReasonVmxCodeOf(2),
    variants: [
      {
        name: 'anon-zero',
        weight: 1,
        // First touch of anonymous memory: handle_mm_fault -> do_anonymous_page (mm/memory.c) ->
        // vma_alloc_zeroed_movable_folio (GFP_HIGHUSER_MOVABLE | __GFP_ZERO: a sensitive page) ->
        // clear_user_highpage through the direct map, then set_pte_at in the process's page table.
        ops: [
          ...taskState,
          access('percpu', 2048, 256, true),
          access('guest-memory', 0, 4096, true),
          access('page-tables', 0, 64, true),
          compute(800),
        ],
        action: 'resume',
        kvmPath:
          'exc_page_fault -> handle_mm_fault -> do_anonymous_page (mm/memory.c) -> vma_alloc_zeroed_movable_folio -> clear_user_highpage',
      },
      {
        name: 'file-map',
        weight: 0,
        // A fault on a mapped file already in the page cache (the compiler's mmapped input, shared
        // libraries): do_read_fault -> filemap_map_pages (mm/filemap.c) maps cached folios around the
        // address; no data is copied, only the folio and the page table are touched.
        ops: [
          ...taskState,
          access('percpu', 2048, 256, true),
          access('page-tables', 0, 64, true),
          compute(600),
        ],
        action: 'resume',
        kvmPath: 'exc_page_fault -> handle_mm_fault -> do_read_fault -> filemap_map_pages (mm/filemap.c)',
      },
      {
        name: 'cow',
        weight: 0,
        // A write to a page shared after fork (make forking a shell): do_wp_page -> wp_page_copy
        // (mm/memory.c) allocates a page and copies the old one into it (__wp_page_copy_user ->
        // copy_mc_user_highpage), both through the direct map.
        ops: [
          ...taskState,
          access('percpu', 2048, 256, true),
          access('guest-memory', 8192, 4096),
          access('guest-memory', 16384, 4096, true),
          access('page-tables', 0, 64, true),
          compute(copyPageCycles + 600),
        ],
        action: 'resume',
        kvmPath: 'exc_page_fault -> handle_mm_fault -> do_wp_page -> wp_page_copy (mm/memory.c)',
      },
    ],
  },
  {
    name: 'futex',
    vmxCode: userReasonVmxCodeOf(3),
    variants: [
      {
        name: 'block',
        weight: 1,
        // A syscall that blocks (futex wait; for make, wait4 and a read of an empty pipe block the same
        // way): futex_wait (kernel/futex/waitwake.c) -> futex_wait_queue -> schedule() (kernel/sched/core.c):
        // a context switch away, and another when it is woken.
        ops: [...taskState, access('percpu', 3072, 256, true), compute(600)],
        action: 'halt',
        kvmPath: 'futex_wait (kernel/futex/waitwake.c) -> futex_wait_queue -> schedule -> context_switch',
      },
    ],
  },
  {
    name: 'syscall',
    vmxCode: userReasonVmxCodeOf(4),
    variants: [
      {
        name: 'light',
        weight: 1,
        // A syscall that touches only the task and kernel data (fstat of a cached inode, close,
        // rt_sigaction, brk without a fault): do_syscall_64 -> the handler -> syscall_exit_to_user_mode.
        ops: [...taskState, access('percpu', 4096, 256), compute(400)],
        action: 'resume',
        kvmPath: 'entry_SYSCALL_64 -> do_syscall_64 -> (fstat, close, brk ...) -> syscall_exit_to_user_mode',
      },
    ],
  },
];

/** The code a kernel entry reason carries where a VMX reason number goes: none, negative. */
function userReasonVmxCodeOf(index: number): number {
  return -100 - index;
}

/** The names of the kernel entries (a user mix's keys name these, a KVM mix's never do). */
export const kernelEntryReasonNames: readonly string[] = kernelEntryCatalogue.map((reason) => reason.name);

/**
 * The catalogue a host process runs on: the exit catalogue (whose interrupt, NMI and #MC programs a
 * process takes as well, and whose indices stay where traces and counters expect them), then the
 * kernel entries.
 */
export const processCatalogue: readonly ExitReasonSpec[] = Object.freeze([
  ...exitCatalogue,
  ...kernelEntryCatalogue,
]);

export const exitReasonNames = exitCatalogue.map((reason) => reason.name);

export function exitReasonIndex(name: string): number {
  return exitCatalogue.findIndex((reason) => reason.name === name);
}

/** A handler variant the user (or the fuzzer) adds to an exit reason of the catalogue, or to a new one. */
export interface UserHandler extends Omit<HandlerVariant, 'conversion'> {
  /**
   * The exit reason it handles: a catalogue name (e.g. EPT_VIOLATION), or a new name for a reason the
   * catalogue lacks (real data may carry one), which the handlers naming it then make up alone.
   */
  reason: string;
}

/** The VMX code given to a reason only user handlers define: it has no number in this model. */
export const userReasonVmxCode = -1;

/**
 * Names a mix may use for a catalogue key: the hypercall name the README and KVM use
 * (include/uapi/linux/kvm_para.h KVM_HC_MAP_GPA_RANGE) for the VMCALL variant that carries it.
 */
export const exitKeyAliases: Readonly<Record<string, string>> = {
  KVM_HC_MAP_GPA_RANGE: 'VMCALL:map-gpa-range',
};

/**
 * The catalogue with user handler variants added after the built-in variants of their reasons: a mix
 * names one as `REASON:name`, and a mix that names only the reason draws among all its variants by
 * weight. Handlers of a reason the catalogue lacks make a new reason, after the built-in ones (so
 * built-in indices never move), in the order their reasons first appear. Without user handlers, the
 * built-in catalogue itself (one object, so compiled catalogues are shared).
 */
export function catalogueWith(
  handlers: readonly UserHandler[],
  base: readonly ExitReasonSpec[] = exitCatalogue,
): readonly ExitReasonSpec[] {
  if (handlers.length === 0) return base;
  const variantsOf = (reason: string) =>
    handlers.filter((handler) => handler.reason === reason).map(({ reason: _reason, ...variant }) => variant);
  const extended = base.map((spec) => {
    const added = variantsOf(spec.name);
    if (added.length === 0) return spec;
    return { ...spec, variants: [...spec.variants, ...added] };
  });
  const newReasons = [...new Set(handlers.map((handler) => handler.reason))].filter(
    (reason) => !base.some((spec) => spec.name === reason),
  );
  const added = newReasons.map((reason) => ({
    name: reason,
    vmxCode: userReasonVmxCode,
    variants: variantsOf(reason),
    note: 'A reason only user handlers define.',
  }));
  const result = [...extended, ...added];
  assert(result.length === base.length + newReasons.length, 'every new reason appended once');
  return result;
}
