import { ConfigError } from '../errors.js';
import { asi } from './asi.js';
import { asiIpiOnly } from './asi-ipi-only.js';
import { asiStun } from './asi-stun.js';
import { coschedule } from './coschedule.js';
import { l1dFlush, l1dFlushCond } from './l1d-flush.js';
import { none } from './none.js';
import { nosmt } from './nosmt.js';
import type { Policy } from './policy.js';

export type { Policy, PolicyDefinition, PolicyView } from './policy.js';
export { definePolicy, Flush, flushIfForeign, noSiblingHoldsSecrets, siblingsInGuest } from './policy.js';

/** The built-in policies, by name (DESIGN.md "Policies"). `safe` is what the tests hold them to. */
export const policies: Record<string, Policy> = {
  none,
  nosmt,
  'l1d-flush': l1dFlush,
  'l1d-flush-cond': l1dFlushCond,
  coschedule: coschedule(),
  'coschedule-nohlt': coschedule({ holdOnHlt: false }),
  asi,
  'asi-ipi-only': asiIpiOnly,
  'asi-stun': asiStun,
};

/**
 * Policies expected to hold every invariant; the others are unsafe on purpose. `coschedule-nohlt` is
 * not among them: without ASI its HLT exit runs in the full kernel (kvm_emulate_halt, the halt-poll and
 * schedule() path) while the sibling it did not kick runs guest code, which INV-1 reports (issue 19).
 */
export const safePolicyNames = ['nosmt', 'coschedule', 'asi', 'asi-stun'] as const;

export function policyByName(name: string, field = '--policies'): Policy {
  const policy = policies[name];
  if (!policy) throw new ConfigError(field, `one of ${Object.keys(policies).join(', ')}`, name);
  return policy;
}
