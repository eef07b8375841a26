import { isStunned } from '../cpu/modes.js';
import { definePolicy, flushIfForeign, noSiblingHoldsSecrets } from './policy.js';

/**
 * Google's later ASI design: a core "stun" state. A thread that needs the full address space stuns
 * the core (a bit in the core-state word) before kicking; every VM entry checks it atomically with
 * the entry, so no sibling can slip back into the guest between the kick and the switch; the stunner
 * clears it after flushing on its way back in.
 */
export const asiStun = definePolicy({
  name: 'asi-stun',
  description: 'asi with a core stun state checked atomically before every entry, cleared after the flush',
  usesAsi: true,
  stun: true,
  kickBeforeFull: () => true,
  waitForSiblingsOut: () => true,
  flushBeforeEntry: flushIfForeign,
  mayEnter: (word, view) => !isStunned(word) && noSiblingHoldsSecrets(word, view),
});
