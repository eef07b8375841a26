import { Mode, modeOf } from '../cpu/modes.js';
import { definePolicy, flushIfForeign, type Policy, type PolicyView } from './policy.js';

/**
 * Core-wide protection on every VM exit: every exit kicks the siblings out of the guest and holds them
 * until the exit is handled; the core's threads enter the guest together (a gang barrier). Safe, and
 * costly: every exit of one thread costs every sibling an IPI, an exit and held time.
 *
 * This is not Linux core scheduling (which only lets tasks of one trust group share a core, and leaves
 * the kernel itself unprotected). It is closest to Joel Fernandes' core-wide kernel protection, posted
 * with core scheduling v8 (LKML, October 2020, "kernel/entry: Add support for core-wide protection of
 * kernel-mode"): a sibling entering the kernel IPIs the others out of untrusted (user or guest) code
 * and they wait until it leaves. Core scheduling proper needs a host scheduler with several tasks per
 * hyperthread to choose from; the model has one vCPU per hyperthread, so that comes in a later issue.
 *
 * `holdOnHlt: false` is Jan Setje-Eilers' observation in the RFC thread: when the exit is the guest
 * idling (HLT), do not pin the sibling — let it keep running. The halted thread sits in the idle loop,
 * which holds no secrets.
 */
export function coschedule(options: { holdOnHlt?: boolean } = {}): Policy {
  const holdOnHlt = options.holdOnHlt ?? true;
  const kicksOn = (view: PolicyView) => holdOnHlt || view.exitReasonName !== 'HLT';
  return definePolicy({
    name: holdOnHlt ? 'coschedule' : 'coschedule-nohlt',
    description: holdOnHlt
      ? 'core-wide protection (Fernandes 2020): kick and hold siblings on every exit, gang entry, flush foreign lines'
      : 'coschedule, but a HLT exit does not hold the sibling (Setje-Eilers)',
    // Core scheduling is not ASI: exits are handled in the full kernel, after the kick on exit.
    usesAsi: false,
    kickOnExit: kicksOn,
    waitForSiblingsOut: () => true,
    flushBeforeEntry: flushIfForeign,
    mayEnter: (word: number, view: PolicyView) => {
      for (let sibling = 0; sibling < view.smt; sibling++) {
        if (sibling === view.sibling) continue;
        const mode = modeOf(word, sibling);
        // A sibling handling an exit (isolated, full, vmm) holds the whole core out of the guest; so does
        // a halted one, unless HLT exits do not hold.
        if (mode === Mode.isolated || mode === Mode.full || mode === Mode.vmm) return false;
        if (mode === Mode.idle && holdOnHlt) return false;
      }
      return true;
    },
  });
}
