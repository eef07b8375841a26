import { describe, expect, it } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import type { Hyperthread } from '../../src/cpu/hyperthread.js';
import { Mode } from '../../src/cpu/modes.js';
import { EventLog } from '../../src/invariants/event-log.js';
import { Monitor } from '../../src/invariants/monitor.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { privateDomain } from '../../src/memory/domains.js';
import { kvmSpace } from '../../src/paging/address-space.js';
import { MapFlag } from '../../src/paging/entry-format.js';
import { policies } from '../../src/policy/index.js';
import { mapHostMemoryGlobal } from '../helpers/machines.js';
import { testConfig } from '../sim/helpers.js';

/**
 * The checkers that the planted-bug policies cannot reach (a policy cannot make the state machine
 * serve an unmapped access or handle an interrupt in isolation): each is shown to fire on a planted
 * machine bug, and to stay quiet on the same run without it.
 */

/**
 * A monitor driven directly, and the thread it watches: thread 0 of VM 0, isolated (both siblings'
 * fields read isolated), at cycle 5 and step 9.
 */
function checkerOnIsolatedThread(): { machine: Machine; monitor: Monitor; thread: Hyperthread } {
  const machine = createMachine(testConfig().machine, { concurrent: false, access: acceleratedAccess });
  const monitor = new Monitor(machine, new EventLog());
  const thread = {
    thread: 0,
    core: 0,
    sibling: 0,
    vmId: 0,
    mode: Mode.isolated,
    clockCycles: 5,
    steps: 9,
    coreWord: () => 0x22,
  } as unknown as Hyperthread;
  return { machine, monitor, thread };
}

describe('INV-7: an access in isolation to an address kvm:N does not map is never served silently', () => {
  it('fires when the kernel maps host memory global (a TLB entry survives the switch into kvm:N)', () => {
    const config = testConfig({ workload: { mix: 'all-slow' }, run: { exits: 400, seed: 3 } });
    const clean = runSim(config, policies.asi);
    expect(clean.violations['INV-7']).toBe(0);

    const machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    // Planted bug: the page cache and the per-CPU area mapped with G in the kernel's direct map.
    mapHostMemoryGlobal(machine);
    const planted = runSim(config, policies.asi, { machine });
    expect(planted.violations['INV-7']).toBeGreaterThan(0);
    const record = planted.violationRecords.find((violation) => violation.id === 'INV-7');
    expect(record?.address).toMatch(/^0xffff888/);
    expect(record?.detail).toMatch(/served silently/);
  });

  it('its answers follow kvm:N: a page kvm:N stops mapping is caught at the next access, again once remapped (checker driven directly)', () => {
    const { machine, monitor, thread } = checkerOnIsolatedThread();
    const range = machine.pageTables.listMapped(kvmSpace(0)).find((r) => r.leafBytes === 4096);
    if (range === undefined) throw new Error('kvm:0 maps no 4 KiB page');
    const va = range.vaStart;
    const pfn = range.pfnStart;
    // Mapped: quiet, twice (the second answer from the monitor's cache).
    monitor.onAccess(thread, va, kvmSpace(0), pfn);
    monitor.onAccess(thread, va + 64, kvmSpace(0), pfn);
    expect(monitor.counts['INV-7']).toBe(0);
    // Unmapped under the cached answer: the next access is caught, and every one after it.
    machine.pageTables.unmap(kvmSpace(0), va);
    monitor.onAccess(thread, va, kvmSpace(0), pfn);
    monitor.onAccess(thread, va + 128, kvmSpace(0), pfn);
    expect(monitor.counts['INV-7']).toBe(2);
    // Mapped again (no shootdown, so kvm:N's TLB generation stays): quiet again.
    machine.pageTables.map(kvmSpace(0), va, pfn, MapFlag.write);
    monitor.onAccess(thread, va, kvmSpace(0), pfn);
    expect(monitor.counts['INV-7']).toBe(2);
    // A page that shares the monitor's front slot with it (256 pages on) is answered for itself.
    const neighbour = va + 256 * 4096;
    monitor.onAccess(thread, neighbour, kvmSpace(0), pfn);
    expect(monitor.counts['INV-7']).toBe(
      machine.pageTables.walk(kvmSpace(0), neighbour, 0, false) >= 0 ? 2 : 3,
    );
  });

  it('every fault in isolation is reported with its handler and address', () => {
    const result = runSim(testConfig({ workload: { mix: 'all-slow' }, run: { exits: 300 } }), policies.asi);
    expect(result.faultReports.length).toBeGreaterThan(0);
    for (const fault of result.faultReports) {
      expect(fault.handler).toMatch(/^(EPT_VIOLATION|EXTERNAL_INTERRUPT|PAUSE|EXCEPTION_NMI|MACHINE_CHECK):/);
      expect(fault.va).toMatch(/^0xffff/);
    }
  });
});

describe('INV-8: interrupts arriving in isolation are handled in full, after a kick', () => {
  it('safe policies handle injected NMIs, #MCs and IRQs in full', () => {
    const config = testConfig({
      workload: {
        mix: 'all-fast',
        injections: [
          { thread: 0, atCycles: 30_000, vector: 'nmi' },
          { thread: 1, atCycles: 30_500, vector: 'mc' },
          { thread: 0, atCycles: 90_000, vector: 'irq' },
        ],
        nmiIntervalCycles: 25_000,
      },
      run: { exits: 500 },
    });
    for (const name of ['asi', 'asi-stun', 'coschedule']) {
      const result = runSim(config, policies[name]);
      expect(result.violations['INV-8'], name).toBe(0);
      // Under ASI an interrupt switches to full; coschedule (no ASI, issue 19) is in full already.
      if (policies[name].usesAsi) expect(result.switchesToFullPer1kExits, name).toBeGreaterThan(0);
      else expect(result.switchesToFullPer1kExits, name).toBe(0);
    }
  });

  it('the checker fires for an interrupt handled in isolated mode (checker driven directly)', () => {
    const { monitor, thread } = checkerOnIsolatedThread();
    monitor.onInterrupt(thread, 4);
    expect(monitor.counts['INV-8']).toBe(1);
    expect(monitor.records[0]).toMatchObject({
      id: 'INV-8',
      threads: [0],
      modes: ['isolated'],
      timeCycles: 5,
      step: 9,
    });
  });
});

describe('INV-10 in the monitor: no host address space reaches a guest-private frame', () => {
  it('fires when a frame a handler reads has become guest-private', () => {
    const config = testConfig({ workload: { mix: 'all-fast' }, run: { exits: 200 } });
    const machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    const vcpu = machine.region('vcpu-struct:0/0');
    machine.frames.setOwner(vcpu.firstPfn, privateDomain(0)); // planted: converted under KVM's feet
    const result = runSim(config, policies.asi, { machine });
    expect(result.violations['INV-10']).toBeGreaterThan(0);
    expect(result.violationRecords.find((violation) => violation.id === 'INV-10')?.detail).toMatch(
      /private:0/,
    );
  });
});

describe('violation records', () => {
  it('carry id, threads, modes, address or line, time, step and the events before them', () => {
    const result = runSim(testConfig({ run: { exits: 500, seed: 2 } }), policies.none);
    const inv2 = result.violationRecords.find((violation) => violation.id === 'INV-2');
    expect(inv2).toBeDefined();
    expect(inv2?.line?.domain).toMatch(/^(host|vm:\d+|private:\d+)$/);
    expect(inv2?.timeCycles).toBeGreaterThan(0);
    expect(inv2?.step).toBeGreaterThan(0);
    expect(inv2?.recentEvents?.length).toBeGreaterThan(3);
    const inv1 = result.violationRecords.find((violation) => violation.id === 'INV-1');
    expect(inv1?.threads).toHaveLength(2);
    expect(inv1?.modes[1]).toMatch(/full|vmm/);
  });
});
