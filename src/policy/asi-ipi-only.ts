import { definePolicy, flushIfForeign, noSiblingHoldsSecrets } from './policy.js';

/**
 * Peter Zijlstra's suggestion in the RFC thread: sending the IPI should suffice; the kicker need not
 * wait for the sibling's exit. The sibling keeps running guest code until the IPI lands, while the
 * kicker already runs with secrets mapped: the emulator measures that window (INV-1 records and the
 * exposure window in the results) instead of assuming it away.
 */
export const asiIpiOnly = definePolicy({
  name: 'asi-ipi-only',
  description: 'asi, but send the kick and go on without waiting (measures the exposure window; unsafe)',
  usesAsi: true,
  kickBeforeFull: () => true,
  waitForSiblingsOut: () => false,
  flushBeforeEntry: flushIfForeign,
  mayEnter: noSiblingHoldsSecrets,
});
