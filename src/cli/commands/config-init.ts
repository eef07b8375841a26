import { type Command, Option } from 'commander';
import { machineConfigSchema } from '../../config/machine-config.js';
import { runSchema } from '../../config/run-config.js';
import { workloadSchema } from '../../config/workload.js';
import { costModelSchema } from '../../cpu/costs.js';
import { builtinMixes, defaultExitsPerSecond } from '../../cpu/mixes.js';
import { UsageError } from '../../errors.js';
import { writeFileAtomic, writeNewFileAtomic } from '../../report/atomic-write.js';
import { checkOutputPath } from '../outputs.js';

/**
 * `asi-emu config init [FILE]`: writes an example config a user can edit and load back with
 * `--config FILE`. JSON has no comments, so the explanations live in one top-level `"$comment"`
 * object, one entry per field of each section; the loaders read only `machine`, `workload`, `costs`
 * and `run`, so it loads as is. The values are the schemas' own defaults (parsed from `{}`), so the
 * file always matches what a run would use without it.
 */
export const defaultConfigFile = 'asi-emu.config.json';

/** One line per field, by section. A test holds these to the schemas: no field undocumented. */
export const configFieldComments: Record<'machine' | 'workload' | 'costs' | 'run', Record<string, string>> = {
  machine: {
    cores: 'physical cores, 1..256',
    smt: 'hyperthreads per core, 1..4',
    vms: 'VMs: { vcpus, guestMemoryMiB, pin (hyperthread per vCPU, optional), confidential }; vCPUs go to the next free hyperthreads unless pinned',
    memoryMiB: 'physical memory of the machine in MiB',
    hostSecretsMiB: 'host-secret memory (page cache, keys, other processes) in MiB',
    l1d: 'per-core L1D: sets (power of two) x ways of 64-byte lines; replacement lru or plru (plru needs power-of-two ways)',
    fillBufferEntries: 'line fill buffers per core (MDS), 0..32; Skylake has 10',
    tlbEntries: 'TLB entries per hyperthread (power of two)',
    tlbWays: 'TLB associativity (power of two)',
    pcid: 'tag TLB entries by address space, so a CR3 switch keeps them',
    kpti: 'kernel page-table isolation: a CR3 write to the VMM and back, for every policy (off: Meltdown-immune parts)',
    ghz: 'core clock in GHz: turns modelled cycles into seconds (exit rates), 0.1..10',
    directMapLargePages: 'map the kernel direct map with 2 MiB pages where aligned, as Linux does',
    pageTablePoolPages: 'page-table pages available to all address spaces',
  },
  workload: {
    mix: `exit mix: a built-in name (${builtinMixes.map((mix) => mix.name).join(', ')}; see "asi-emu mixes") or an object { name, description, source, weights }`,
    guestQuantumCycles:
      'guest cycles per guestAccessesPerQuantum guest accesses (the workers backend steps the guest in quanta)',
    guestAccessesPerQuantum: 'guest memory lines touched per guest quantum, 0..64',
    guestAccessesPerStretchMax:
      'most guest memory lines one guest stretch touches (the sim runs the guest between two events as one stretch)',
    guestWorkingSetPages: 'guest pages each vCPU touches (its hot working set)',
    idleCycles: 'mean cycles a halted vCPU stays idle before its timer fires',
    nmiIntervalCycles: 'mean cycles between host NMIs per hyperthread (0: none)',
    machineCheckIntervalCycles: 'mean cycles between machine checks per hyperthread (0: none)',
    irqIntervalCycles: 'mean cycles between host device interrupts per hyperthread (0: none)',
    injections: 'exact events: [{ thread, atCycles, vector: "nmi" | "mc" | "irq" }]',
    handlers:
      'user handler programs, added to an exit reason: [{ reason, name, weight, ops: [{ op: "access", region, offsetBytes, bytes, write } | { op: "compute", cycles }], action: resume | vmm | halt | ipi, vmmCycles }]; a mix names one as REASON:name',
    confidential:
      'for VMs with machine.vms[].confidential: { hostileVmm, hostileRemapShare (0..1), guestRevalidates and keepsVmmMapping (planted bugs), conversionPagesMax, rangesMax and nodesMax (tracker bounds, optional) }',
  },
  costs: {
    exitRoundTrip: 'VM exit + entry with an empty handler (kvm-unit-tests vmexit, Skylake-SP)',
    ipiDelivery: 'IPI from send to the handler running on the target',
    ipiSend: 'sending an IPI (one x2APIC ICR write)',
    cr3WithPcid: 'CR3 write with PCID and the no-flush bit',
    cr3WithoutPcid: 'CR3 write without PCID, with the TLB refill after it',
    l1dFlush: 'L1D flush (MSR_IA32_FLUSH_CMD or the software fallback)',
    l1dRefillLine: "refilling one line of the guest's working set from L2 after an L1D flush",
    bufferClear: 'VERW buffer clearing (MDS)',
    ibpb: "IBPB (today's Linux ASI, when a control taint calls for it; an assumption, docs/calibration.md)",
    rsbFill: "RSB fill with each IBPB (today's Linux ASI; an assumption derived from RSB_CLEAR_LOOPS)",
    syscallRoundTrip:
      "a host process's kernel entry and return with an empty handler, in place of exitRoundTrip for a user mix (an assumption, docs/calibration.md)",
    ephmap:
      "mapping a page-cache page through the ephmap and tearing it down with its remote TLB flush (today's Linux ASI with ephmap; fitted, docs/calibration.md)",
    cacheHit: 'L1D hit',
    cacheMiss: 'L1D miss served by L2/L3',
    pageWalk: 'page walk after a TLB miss',
    pageFault: 'taking a host page fault (entry and exit)',
  },
  run: {
    exits: 'stop after this many workload exits (kick exits not counted)',
    seed: 'seed of every random choice: the same seed gives the same sim trace',
    maxCycles: 'stop at this virtual time whatever the exits (0: no limit)',
    waitBoundCycles: 'INV-9: a wait longer than this many virtual cycles is a liveness violation',
    jitterCycles: 'random extra cycles (0..jitter) after each step, so interleavings differ by seed',
    stopOnViolation: 'stop at the first violation',
    repeats:
      'bench: runs of each policy on each mix, each with its own seed (all policies share a repeat’s seed), for means and 95% CIs; the workers backend runs 1 unless this or --repeats says more',
  },
};

/**
 * Fields without a default (left out, something else decides: the mix, another field), explained under
 * "$comment".optional: the example file does not set them.
 */
export const optionalFieldComments: Record<'workload', Record<string, string>> = {
  workload: {
    exitsPerSecond: `exits per second per vCPU in modelled time (guest, host and idle time); left out: the mix's published rate, else ${defaultExitsPerSecond}`,
    exitIntervalCycles:
      'instead of exitsPerSecond: mean guest cycles between two exits of a vCPU, given directly (not with exitsPerSecond)',
    smtSpeedup:
      "combined throughput of a core's busy hyperthreads over one thread alone, 1..4 (clamped to smt); left out: the mix's, else 1.3 (Intel, Marr et al. 2002)",
  },
};

/** The example config: every field at its default, with the explanations under "$comment". */
export function exampleConfig(): Record<string, unknown> {
  return {
    $comment: {
      about: [
        'asi-emu config: load it with --config FILE (asi-emu bench --config FILE, asi-emu machine --config FILE).',
        'Every field is optional; the values below are the defaults. Costs are virtual cycles of a ~3 GHz core.',
        'This "$comment" object is ignored when the file is loaded; sections reject unknown fields.',
      ],
      ...configFieldComments,
      optional: optionalFieldComments,
    },
    machine: machineConfigSchema.parse({}),
    workload: workloadSchema.parse({}),
    costs: costModelSchema.parse({}),
    run: runSchema.parse({}),
  };
}

export function registerConfigInitCommand(program: Command): void {
  const config =
    program.commands.find((command) => command.name() === 'config') ??
    program.command('config').description('work with config files');
  config
    .command('init')
    .description(
      'write an example config file (every field at its default, each one explained) to edit and load with --config',
    )
    .argument('[file]', `where to write it ("-" for standard output)`, defaultConfigFile)
    .addOption(new Option('--force', 'overwrite FILE if it exists'))
    .addHelpText(
      'after',
      [
        '',
        'The file is plain JSON: the explanations are in its top-level "$comment" object, which loading ignores.',
        'It refuses to replace an existing file unless --force; the write is atomic either way.',
        '',
        'Examples:',
        '  asi-emu config init',
        '  asi-emu config init my-machine.json && asi-emu bench --config my-machine.json',
        '  asi-emu config init --force asi-emu.config.json',
        '  asi-emu config init - | jq .costs',
        '',
      ].join('\n'),
    )
    .action((file: string, options: { force?: boolean }) => {
      const text = `${JSON.stringify(exampleConfig(), null, 2)}\n`;
      if (file === '-') {
        process.stdout.write(text);
        return;
      }
      checkOutputPath('config init FILE', file);
      const flag = 'config init FILE';
      if (options.force) writeFileAtomic(file, text, flag);
      else {
        writeNewFileAtomic(
          file,
          text,
          flag,
          () => new UsageError(flag, 'a file that does not exist yet (or --force to overwrite it)', file),
        );
      }
      process.stdout.write(
        `wrote ${file}: every field at its default, explained under "$comment"; load it with --config ${file}\n`,
      );
    });
}
