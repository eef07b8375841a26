/**
 * The two ASI designs asi-emu models, side by side (`asi-emu policies --compare`, the README): the 2019
 * KVM ASI RFC (`asi`) and today's Linux ASI (`linux-asi`). Each row is one design question with the
 * answer each policy gives in the model; the sources are in docs/model.md (2019) and docs/linux-asi.md
 * (today), rule by rule.
 */
export interface DesignRow {
  readonly aspect: string;
  readonly asi: string;
  readonly linuxAsi: string;
}

export const designSources = {
  asi: 'Chartre, "[RFC KVM 00/27] KVM Address Space Isolation", <1557758315-12667-1-git-send-email-alexandre.chartre@oracle.com> (May 2019)',
  linuxAsi:
    'Jackman, "[PATCH RFC v2 00/29] Address Space Isolation (ASI)", <20250110-asi-rfc-v2-v2-0-8419288bc805@google.com>; "ASI is fast again" <20250812173109.295750-1-jackmanb@google.com>',
} as const;

export const designComparison: readonly DesignRow[] = [
  {
    aspect: 'restricted space',
    asi: 'kvm:N, an allowlist: an empty table plus the ranges KVM needs (copied)',
    linuxAsi: 'a denylist: everything not allocated sensitive (__GFP_SENSITIVE / GFP_USER)',
  },
  {
    aspect: 'what it leaves out',
    asi: 'kernel data, per-CPU data, keys, page cache, other processes; guest RAM is mapped',
    linuxAsi: 'page cache, other processes, user memory, guest RAM; kernel data and keys are mapped',
  },
  {
    aspect: 'classes',
    asi: 'KVM only',
    linuxAsi: 'kvm (vCPUs) and user (host processes), one restricted space per mm and class',
  },
  {
    aspect: 'entering',
    asi: 'back to kvm:N before VM entry; flush the L1D when it holds lines foreign to the VM',
    linuxAsi: 'asi_enter before VM entry: taints decide IBPB + RSB fill and L1D flush + buffer clear',
  },
  {
    aspect: 'leaving',
    asi: 'a fault in kvm:N switches to full after the siblings are kicked and out',
    linuxAsi: 'asi_relax after the exit (no switch); a fault on an unmapped page is asi_exit, then retry',
  },
  {
    aspect: 'interrupts',
    asi: 'leave isolation first (INV-8)',
    linuxAsi: 'run in the restricted space; fault out if needed; the outermost return re-enters',
  },
  {
    aspect: 'context switches',
    asi: 'not modelled (the vCPU thread stays)',
    linuxAsi: 'exit ASI on every switch (upstream) or on an mm switch only (exitOn)',
  },
  {
    aspect: 'branch predictor',
    asi: 'not modelled',
    linuxAsi: 'per-core table tagged by training domain; IBPB per thread; STIBP a setting',
  },
  {
    aspect: 'SMT siblings',
    asi: 'kick and wait before full; enter only when no sibling holds secrets',
    linuxAsi: 'none upstream (linux-asi-upstream, unsafe); linux-asi composes the 2019 protocol',
  },
];
