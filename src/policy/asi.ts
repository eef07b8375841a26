import { definePolicy, flushIfForeign, noSiblingHoldsSecrets } from './policy.js';

/**
 * The 2019 KVM ASI RFC: exits are handled in kvm:N; only before switching to the full kernel address
 * space does a thread kick its siblings out of the guest and wait until they are out; a sibling
 * re-enters only when no thread of the core holds secrets (every one is back in isolation, held, idle
 * or in the guest), and the core's L1D is flushed first when it holds lines foreign to the VM.
 */
export const asi = definePolicy({
  name: 'asi',
  description:
    'the RFC: kick and wait before switching to full; re-enter when no sibling holds secrets; flush foreign lines',
  usesAsi: true,
  kickBeforeFull: () => true,
  waitForSiblingsOut: () => true,
  flushBeforeEntry: flushIfForeign,
  mayEnter: noSiblingHoldsSecrets,
});
