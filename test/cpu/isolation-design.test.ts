import { describe, expect, it } from 'vitest';
import { defaultCostModel } from '../../src/cpu/costs.js';
import type { CompiledVariant } from '../../src/cpu/handler-program.js';
import { type IsolationHost, isolationDesignOf } from '../../src/cpu/isolation-design.js';
import { LinuxAsiIsolation } from '../../src/cpu/linux-asi-isolation.js';
import { Mode, modeNames } from '../../src/cpu/modes.js';
import { Rfc2019Isolation } from '../../src/cpu/rfc2019-isolation.js';
import type { Machine } from '../../src/machine.js';
import { ThreadStat } from '../../src/memory/layout.js';
import { kernelSpace, kvmSpace } from '../../src/paging/address-space.js';
import { directMapVa } from '../../src/paging/va-layout.js';
import { policies } from '../../src/policy/index.js';
import { Flush, type Policy } from '../../src/policy/policy.js';
import { smallMachine } from '../helpers/machines.js';

/**
 * The isolation design seam (cpu/isolation-design.ts): which design a policy gets, and each design's
 * moves at the hyperthread's points, driven directly through a host that records what it is asked to do
 * (the hyperthread's own runs are pinned by test/sim/golden-traces.test.ts).
 */
class RecordingHost implements IsolationHost {
  mode: number = Mode.offline;
  stunHeld = false;
  cycles = 0;
  readonly calls: string[] = [];
  readonly counts = new Map<number, number>();

  spend(cycles: number): void {
    this.cycles += cycles;
  }
  count(stat: number): void {
    this.counts.set(stat, (this.counts.get(stat) ?? 0) + 1);
  }
  setMode(to: number): void {
    this.mode = to;
    this.calls.push(`mode ${modeNames[to]}`);
  }
  setStun(on: boolean): void {
    this.stunHeld = on;
    this.calls.push(`stun ${on}`);
  }
  flush(bits: number): void {
    this.calls.push(`flush ${bits}`);
  }
  flushBeforeEntry(): void {
    this.calls.push('entry flush');
  }
  cr3WriteCycles(): number {
    return 100;
  }
  userRunStarts(): void {
    this.calls.push('user runs');
  }
}

const thread = 0;
const vmId = 0;

function designFor(machine: Machine, policy: Policy, host = new RecordingHost(), process = false) {
  const design = isolationDesignOf(policy, {
    host,
    machine,
    tlb: machine.tlbs[thread],
    core: 0,
    sibling: 0,
    vmId,
    process,
    costs: defaultCostModel,
  });
  return { design, host, tlb: machine.tlbs[thread] };
}

/** The kernel's direct-map VA of region `name`'s first frame. */
function directMapVaOf(machine: Machine, name: string): number {
  return directMapVa + machine.region(name).firstPfn * 4096;
}

/** An exit that is no interrupt (MSR_WRITE), as `exited` reads it. */
const msrWrite = { reasonName: 'MSR_WRITE', isKick: false } as CompiledVariant;

describe('the isolation design a policy gets', () => {
  it("today's Linux ASI for every policy that carries linuxAsi (the user class for a host process), the 2019 RFC's for the rest", () => {
    const machine = smallMachine();
    for (const policy of Object.values(policies)) {
      const { design } = designFor(machine, policy);
      if (policy.linuxAsi === undefined) {
        expect(design, policy.name).toBeInstanceOf(Rfc2019Isolation);
        expect([design.linuxAsi, design.hotPath], policy.name).toEqual([null, null]);
        expect([design.interruptsInHost, design.entersBeforeEveryEntry], policy.name).toEqual([false, false]);
      } else {
        expect(design, policy.name).toBeInstanceOf(LinuxAsiIsolation);
        expect(design.hotPath, policy.name).toBe(design);
        expect(design.linuxAsi?.asiClass, policy.name).toBe('kvm');
        expect([design.interruptsInHost, design.entersBeforeEveryEntry], policy.name).toEqual([true, true]);
      }
    }
    const { design } = designFor(machine, policies['linux-asi'], new RecordingHost(), true);
    expect(design.linuxAsi?.asiClass).toBe('user');
  });
});

describe("the 2019 RFC's kvm:N (rfc2019-isolation.ts)", () => {
  it('asi: starts in kvm:N, isolated; leaving writes CR3 once (asi_exit); the return writes it again, and under the stun bit flushes before letting the siblings back in; interrupts in full, then back', () => {
    const { design, host, tlb } = designFor(smallMachine(), policies.asi);
    design.start();
    expect([host.mode, tlb.cr3]).toEqual([Mode.isolated, kvmSpace(vmId)]);
    host.mode = Mode.full;
    design.left(false);
    expect([tlb.cr3, host.cycles]).toEqual([kernelSpace, 100]);
    host.stunHeld = true;
    expect(design.returnToIsolation()).toBe(true);
    expect([host.mode, tlb.cr3, host.cycles]).toEqual([Mode.isolated, kvmSpace(vmId), 200]);
    expect(host.calls).toEqual(['mode isolated', 'mode isolated', 'entry flush', 'stun false']);
    expect([design.interruptArrives(1), design.interruptReturns()]).toEqual([false, true]);
    expect(design.wakes()).toBe(false);
    expect(host.mode).toBe(Mode.isolated);
  });

  it('none (KVM without ASI): the kernel table and full throughout; leaving writes no CR3', () => {
    const { design, host, tlb } = designFor(smallMachine(), policies.none);
    design.start();
    expect([host.mode, tlb.cr3]).toEqual([Mode.full, kernelSpace]);
    design.left(false);
    expect(design.returnToIsolation()).toBe(true);
    expect([host.mode, tlb.cr3, host.cycles]).toEqual([Mode.full, kernelSpace, 0]);
    expect(design.wakes()).toBe(false);
    expect(host.mode).toBe(Mode.full);
  });
});

describe("today's Linux ASI (linux-asi-isolation.ts): the events raised at the hyperthread's points", () => {
  it('start: enter kvm (critical, CR3 kvm:N, isolated); exit: relax; a page-cache access faults, the leave raises page-fault (unrestricted, counted); the return is enter kvm, with the KERNEL_DATA flush, and the mode in a step of its own', () => {
    const machine = smallMachine();
    const { design, host, tlb } = designFor(machine, policies['linux-asi']);
    const { linuxAsi: asi, hotPath } = design;
    if (asi === null || hotPath === null) throw new Error('linux-asi has a state and a hot path');
    design.start();
    expect([asi.stateName, host.mode, tlb.cr3]).toEqual(['critical', Mode.isolated, kvmSpace(vmId)]);
    hotPath.exited(0, msrWrite);
    expect(asi.stateName).toBe('restricted-relaxed');
    // The denylist: keys are mapped (nonsensitive), the page cache is not (and no ephmap here).
    expect(hotPath.handlerAccessSpace(directMapVaOf(machine, 'keys'), 1)).toBe(kernelSpace);
    expect(hotPath.handlerAccessSpace(directMapVaOf(machine, 'page-cache'), 1)).toBe(-1);
    design.faulted();
    host.mode = Mode.full; // the sibling protocol let it out
    design.left(false);
    expect([asi.stateName, tlb.cr3]).toEqual(['unrestricted', kernelSpace]);
    expect(host.counts.get(ThreadStat.asiExitsPageFault)).toBe(1);
    expect(hotPath.handlerEnds()).toBe(true);
    host.calls.length = 0;
    expect(design.returnToIsolation()).toBe(false);
    expect(asi.stateName).toBe('critical');
    expect(host.calls).toEqual([`flush ${Flush.l1d}`, `flush ${Flush.buffers}`]);
    expect(host.mode).toBe(Mode.full);
    expect(design.returnToIsolation()).toBe(true);
    expect(host.mode).toBe(Mode.isolated);
  });

  it('the ephmap serves a page-cache access in the restricted space (costs.ephmap a page, no fault); the VMM return is enter user, heard by the observer; KVM_RUN relaxes', () => {
    const machine = smallMachine();
    const { design, host } = designFor(machine, policies['linux-asi-ephmap']);
    const { linuxAsi: asi, hotPath } = design;
    if (asi === null || hotPath === null) throw new Error('linux-asi-ephmap has a state and a hot path');
    design.start();
    hotPath.exited(0, msrWrite);
    const cycles = host.cycles;
    expect(hotPath.handlerAccessSpace(directMapVaOf(machine, 'page-cache'), 1)).toBe(kernelSpace);
    expect([asi.ephmaps, host.cycles - cycles]).toEqual([1, defaultCostModel.ephmap]);
    host.mode = Mode.vmm;
    design.left(true);
    expect(asi.stateName).toBe('critical');
    expect(host.calls).toContain('user runs');
    design.kvmRun();
    expect(asi.stateName).toBe('restricted-relaxed');
  });
});
