import { describe, expect, it, vi } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { CompiledVariant } from '../../src/cpu/handler-program.js';
import type { Hyperthread } from '../../src/cpu/hyperthread.js';
import { Mode, stunBit } from '../../src/cpu/modes.js';
import { EventKind, EventLog } from '../../src/invariants/event-log.js';
import { Monitor } from '../../src/invariants/monitor.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { kernelSpace, kvmSpace } from '../../src/paging/address-space.js';
import { formatVa } from '../../src/paging/va-layout.js';
import { type DrivenThreadSpec, drivenMonitor, drivenThread, othersThan } from '../helpers/driven-monitor.js';
import { twoVmMachine } from '../helpers/machines.js';

/**
 * The invariant monitor's machinery around the checks, where mutation testing found it unpinned
 * (docs/testing.md): the checks read the modes and never the stun bits above them, INV-7's walk neither
 * misreads frame 0 nor sets accessed bits, INV-5's walk is cached until kvm:N changes, every observer
 * works without an event log, trace samples, record bounds and the events kept with a record.
 */

/** A driven thread whose core word also carries these siblings' stun bits. */
function stunned(machine: Machine, spec: DrivenThreadSpec, stunners: number[]): Hyperthread {
  const thread = drivenThread(machine, spec);
  const word = stunners.reduce((built, sibling) => built | stunBit(sibling), thread.coreWord());
  return { ...thread, coreWord: () => word } as Hyperthread;
}

/** A handler variant as the observers see it (only the fields they read). */
const hlt = { name: 'HLT', reason: 12, reasonName: 'HLT', variant: 0, isKick: false } as CompiledVariant;
const kickExit = { ...hlt, name: 'EXTERNAL_INTERRUPT:kick', isKick: true } as CompiledVariant;

/** Every kept event of a log as [thread, kind, a, b]. */
function kept(log: EventLog): number[][] {
  const all = log.all ?? [];
  const events: number[][] = [];
  for (let at = 0; at < all.length; at += 5) events.push(all.slice(at + 1, at + 5));
  return events;
}

describe('on a core of four, the checks read the sibling modes, never the stun bits above them', () => {
  // Modes take 4 bits per sibling and the stun bits start at bit 16: with smt 4 the stun bits of
  // siblings 0 and 1 read as a fifth "mode" 3 (full), those of 1 and 2 as 6 (vmm), sibling 0's as 1 (guest).
  const machineConfig = { cores: 2, smt: 4, vms: [{ vcpus: 8, guestMemoryMiB: 1 }] };
  const at = { core: 0, vmId: 0, clockCycles: 50, steps: 3 };

  it('INV-1: a guest step on a stunned core whose siblings hold no secrets is no exposure', () => {
    const { machine, monitor } = drivenMonitor(machineConfig);
    const modes = [Mode.guest, Mode.guest, Mode.isolated, Mode.isolated];
    monitor.onGuestStep(stunned(machine, { ...at, sibling: 0, modes }, [0, 1]));
    monitor.onGuestStep(stunned(machine, { ...at, sibling: 1, modes }, [1, 2]));
    expect(monitor.counts['INV-1']).toBe(0);
    expect(monitor.exposureGuestSteps).toBe(0);
    // With a sibling really in full, one exposure: the stun bits add none.
    monitor.onGuestStep(
      stunned(
        machine,
        { ...at, sibling: 0, modes: [Mode.guest, Mode.full, Mode.isolated, Mode.isolated] },
        [0, 1],
      ),
    );
    expect(monitor.counts['INV-1']).toBe(1);
    expect(monitor.records.map((record) => record.threads)).toEqual([[0, 1]]);
  });

  it('INV-3: an entry beside isolated siblings of a stunned core is not an entry beside full or vmm', () => {
    const { machine, monitor } = drivenMonitor(machineConfig);
    const modes = [Mode.isolated, Mode.isolated, Mode.guest, Mode.isolated];
    monitor.onEnter(stunned(machine, { ...at, sibling: 2, modes }, [0, 1]));
    monitor.onEnter(stunned(machine, { ...at, sibling: 2, modes }, [1, 2]));
    expect(othersThan(monitor.counts, [])).toEqual({});
  });

  it('INV-4: a switch to full on a core stunned by sibling 0 has no fifth sibling in the guest to kick', () => {
    const { machine, monitor } = drivenMonitor(machineConfig);
    const modes = [Mode.isolated, Mode.full, Mode.isolated, Mode.isolated];
    monitor.onSwitchToFull(stunned(machine, { ...at, sibling: 1, modes }, [0]), Mode.full);
    expect(othersThan(monitor.counts, [])).toEqual({});
  });
});

describe('INV-7’s walk of kvm:N', () => {
  const isolatedThread = (machine: Machine) =>
    drivenThread(machine, {
      core: 0,
      sibling: 0,
      vmId: 0,
      modes: [Mode.isolated, Mode.guest],
      clockCycles: 1,
      steps: 1,
    });

  it('takes a page mapped to frame 0 as mapped (a frame number, not a fault code)', () => {
    const { machine, monitor } = drivenMonitor({ cores: 1, smt: 2 });
    const frameZero = machine.pageTables.listMapped(kvmSpace(0)).find((range) => range.pfnStart === 0);
    expect(frameZero, 'kvm:0 maps frame 0 (kernel text)').toBeDefined();
    const thread = isolatedThread(machine);
    monitor.onAccess(thread, frameZero?.vaStart ?? 0, kvmSpace(0), 0);
    expect(monitor.counts['INV-7']).toBe(0);
  });

  it('reads the page tables without setting an accessed bit: the machine is byte-identical after it', () => {
    const { machine, monitor } = drivenMonitor({ cores: 1, smt: 2 });
    const vcpu = machine.region('vcpu-struct:0/0');
    const before = Buffer.from(new Uint8Array(machine.i32.buffer).slice());
    const thread = isolatedThread(machine);
    monitor.onAccess(thread, machine.regionVa(vcpu) + 128, kvmSpace(0), vcpu.firstPfn);
    expect(monitor.counts['INV-7']).toBe(0);
    expect(Buffer.from(new Uint8Array(machine.i32.buffer)).equals(before)).toBe(true);
  });
});

describe('INV-5’s walk of kvm:N', () => {
  it('names each offending page at its own address within a range', () => {
    const machine = twoVmMachine();
    const keys = machine.region('keys');
    const keysVa = machine.regionVa(keys);
    machine.pageTables.copyRange(kvmSpace(0), kernelSpace, keysVa + 4096, 2 * 4096);
    const monitor = new Monitor(machine, null);
    monitor.checkIsolatedContents(10, 2);
    expect(
      monitor.records.map((record) => [record.address, record.detail, record.timeCycles, record.step]),
    ).toEqual([
      [formatVa(keysVa + 4096), `kvm:0 maps frame ${keys.firstPfn + 1} of host (keys)`, 10, 2],
      [formatVa(keysVa + 8192), `kvm:0 maps frame ${keys.firstPfn + 2} of host (keys)`, 10, 2],
    ]);
  });

  it('walks a clean kvm:N once until its tables are written again, and a dirty one at every check', () => {
    const machine = twoVmMachine();
    const walks = vi.spyOn(machine.pageTables, 'listMapped');
    const check = () => {
      walks.mockClear();
      const monitor = new Monitor(machine, null);
      monitor.checkIsolatedContents();
      return [walks.mock.calls.map(([space]) => space), monitor.counts['INV-5']];
    };
    expect(check()).toEqual([[kvmSpace(0), kvmSpace(1)], 0]);
    expect(check()).toEqual([[], 0]);
    const keys = machine.region('keys');
    machine.pageTables.copyRange(kvmSpace(0), kernelSpace, machine.regionVa(keys), 4096);
    expect(check()).toEqual([[kvmSpace(0)], 1]);
    expect(check()).toEqual([[kvmSpace(0)], 1]);
    walks.mockRestore();
  });
});

describe('the observers', () => {
  const spec = { core: 0, sibling: 0, vmId: 0, clockCycles: 40, steps: 2 };

  it('work without an event log (as the workers backend runs them), counting workload exits only', () => {
    const machine = createMachine(
      { memoryMiB: 48, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
      { concurrent: false, access: acceleratedAccess },
    );
    const monitor = new Monitor(machine, null);
    const guest = drivenThread(machine, { ...spec, modes: [Mode.guest, Mode.isolated] });
    const full = drivenThread(machine, { ...spec, modes: [Mode.full, Mode.isolated] });
    monitor.onModeChange(guest, Mode.isolated, Mode.guest);
    monitor.onGuestStep(guest);
    monitor.onEnter(guest);
    monitor.onExit(full, hlt);
    monitor.onExit(full, kickExit);
    monitor.onKick(full, 1);
    monitor.onSwitchToFull(full, Mode.full);
    monitor.onFault(full, 4096, hlt);
    monitor.onInterrupt(full, 2);
    monitor.onFlush(full, 1, 0);
    // Without a timeline (the workers backend keeps none): a guest stretch's end and the run's end
    // change nothing.
    monitor.onGuestStepEnd(guest);
    monitor.finishTime(1000);
    expect([monitor.exposureGuestSteps, monitor.exposureCycles]).toEqual([0, 0]);
    expect(monitor.workloadExits).toBe(1);
    expect(monitor.faults).toHaveLength(1);
    expect(othersThan(monitor.counts, [])).toEqual({});
  });

  it('keep at most faultsKept faults, the first ones', () => {
    const machine = createMachine(
      { memoryMiB: 48, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
      { concurrent: false, access: acceleratedAccess },
    );
    const monitor = new Monitor(machine, null, undefined, 20, 2);
    const full = drivenThread(machine, { ...spec, modes: [Mode.full, Mode.isolated] });
    for (const va of [4096, 8192, 12288]) monitor.onFault(full, va, hlt);
    expect(monitor.faults).toEqual([
      { thread: 0, handler: 'HLT', va: formatVa(4096), timeCycles: 40 },
      { thread: 0, handler: 'HLT', va: formatVa(8192), timeCycles: 40 },
    ]);
  });

  it('sample a core’s foreign lines into a kept trace when they change, from the first line on', () => {
    const { machine } = drivenMonitor({ cores: 1, smt: 2 });
    const log = new EventLog(64, true);
    const monitor = new Monitor(machine, log);
    const thread = drivenThread(machine, { ...spec, modes: [Mode.isolated, Mode.guest] });
    const samples = () => kept(log).filter(([, kind]) => kind === EventKind.foreignLines);
    monitor.onModeChange(thread, Mode.guest, Mode.isolated);
    expect(samples()).toEqual([[0, EventKind.foreignLines, 0, 0]]);
    const keys = machine.region('keys');
    machine.l1d[0].access(keys.firstPfn, 3, machine.frames.ownerOf(keys.firstPfn));
    monitor.onFlush(thread, 0, 0);
    expect(samples()).toHaveLength(2);
    monitor.onGuestStep(thread);
    monitor.onModeChange(thread, Mode.isolated, Mode.full);
    // One line appeared (sampled once); then nothing changed (no more samples).
    expect(samples()).toEqual([
      [0, EventKind.foreignLines, 0, 0],
      [0, EventKind.foreignLines, 0, 1],
    ]);
  });

  it('start a core’s samples at its first reading, whatever it is', () => {
    const { machine } = drivenMonitor({ cores: 1, smt: 2 });
    const keys = machine.region('keys');
    machine.l1d[0].access(keys.firstPfn, 3, machine.frames.ownerOf(keys.firstPfn));
    const log = new EventLog(64, true);
    new Monitor(machine, log).onGuestStep(
      drivenThread(machine, { ...spec, modes: [Mode.guest, Mode.isolated] }),
    );
    expect(kept(log).filter(([, kind]) => kind === EventKind.foreignLines)).toEqual([
      [0, EventKind.foreignLines, 0, 1],
    ]);
  });

  it('log a violation on its first thread, or on no thread (-1), and keep the events before it with the record', () => {
    const { machine } = drivenMonitor({ cores: 1, smt: 2 });
    const log = new EventLog(64, true);
    const monitor = new Monitor(machine, log);
    const thread = drivenThread(machine, { ...spec, modes: [Mode.guest, Mode.isolated] });
    monitor.onEnter(thread);
    monitor.record({ id: 'INV-9', threads: [1, 0], modes: [], detail: 'x', timeCycles: 5, step: 0 });
    monitor.record({ id: 'INV-12', threads: [], modes: [], detail: 'y', timeCycles: 6, step: 0 });
    const violations = kept(log).filter(([, kind]) => kind === EventKind.violation);
    expect(violations.map(([threadOf, , invariant]) => [threadOf, invariant])).toEqual([
      [1, 9],
      [-1, 12],
    ]);
    const [first, second] = monitor.records;
    expect(first.recentEvents).toHaveLength(2);
    expect(first.recentEvents?.every((event) => typeof event === 'string' && event.length > 0)).toBe(true);
    expect(second.recentEvents).toHaveLength(3);
    // Without a log there is nothing to keep.
    const quiet = new Monitor(machine, null);
    quiet.record({ id: 'INV-9', threads: [0], modes: [], detail: 'x', timeCycles: 5, step: 0 });
    expect(quiet.records[0].recentEvents).toEqual([]);
  });
});
