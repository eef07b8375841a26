import { anySiblingHoldsSecrets, isStunned } from '../cpu/modes.js';
import type { SiblingProtocol } from '../linux-asi/settings.js';
import type { PolicyView } from './policy.js';

/**
 * The hooks of each sibling protocol today's Linux ASI composes with (issue 22 item 5), as the 2019
 * policies have them (asi, asi-ipi-only, asi-stun). `definePolicy` puts them under a definition that
 * carries `linuxAsi` settings, so the protocol a policy names is the protocol it runs, however it was
 * written (`linuxAsiPolicy`, `definePolicy` or a plain object in a `--policy-module`); hooks the
 * definition writes itself still win. Upstream ASI has none (`none`: the defaults, no kick, no barrier).
 */

/** INV-1 / INV-3's barrier: no sibling holds secrets (full or vmm). policy.ts `noSiblingHoldsSecrets`. */
function noSiblingHoldsSecrets(word: number, view: PolicyView): boolean {
  return !anySiblingHoldsSecrets(word, view.sibling, view.smt);
}

const always = () => true;
const never = () => false;

/** One frozen object per protocol: every policy of a protocol shares its hooks (tests compare them). */
const hooksByProtocol = {
  'kick-and-wait': Object.freeze({
    kickBeforeFull: always,
    waitForSiblingsOut: always,
    mayEnter: noSiblingHoldsSecrets,
  }),
  'ipi-only': Object.freeze({
    kickBeforeFull: always,
    waitForSiblingsOut: never,
    mayEnter: noSiblingHoldsSecrets,
  }),
  stun: Object.freeze({
    stun: true,
    kickBeforeFull: always,
    waitForSiblingsOut: always,
    mayEnter: (word: number, view: PolicyView) => !isStunned(word) && noSiblingHoldsSecrets(word, view),
  }),
  none: Object.freeze({}),
} as const satisfies Record<SiblingProtocol, object>;

export function siblingProtocolHooks(protocol: SiblingProtocol): (typeof hooksByProtocol)[SiblingProtocol] {
  return hooksByProtocol[protocol];
}
