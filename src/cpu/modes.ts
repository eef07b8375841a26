import { assert } from '../assert.js';
import { smtMax } from '../constants.js';

/**
 * Hyperthread modes (DESIGN.md "Hyperthread modes") and the core-state word that holds them.
 *
 * One Int32 word per core holds every sibling's mode, 4 bits each (bits 4s..4s+3 for sibling s), and
 * the asi-stun flags (bit 16 + s: sibling s has stunned the core). Every mode change is a
 * compare-and-swap of the whole word, so a transition and the condition it depends on ("no sibling is
 * in the guest", "no sibling holds secrets") are one atomic step: no sibling can slip in between the
 * check and the change. A sibling's mode is therefore always read atomically, as the design requires.
 */
export const Mode = {
  /** No vCPU on this hyperthread (or nosmt took it offline). */
  offline: 0,
  guest: 1,
  /** Host, in the isolated KVM address space kvm:N. */
  isolated: 2,
  /** Host, in the full kernel address space: secrets mapped. */
  full: 3,
  /** Kicked, or waiting at the entry barrier to be allowed back into the guest. */
  held: 4,
  /** Halted vCPU: the idle loop, which touches no secrets. */
  idle: 5,
  /** In the VMM's userspace: counts as holding secrets. */
  vmm: 6,
} as const;
export type ModeCode = (typeof Mode)[keyof typeof Mode];

export const modeNames = ['offline', 'guest', 'isolated', 'full', 'held', 'idle', 'vmm'] as const;
export type ModeName = (typeof modeNames)[number];

const modeBits = 4;
const modeMask = 0xf;
const stunShift = 16;

assert(smtMax * modeBits <= stunShift, 'modes of every sibling fit below the stun bits');
assert(stunShift + smtMax <= 31, 'stun bits fit in an Int32 word');

export function modeOf(word: number, sibling: number): number {
  return (word >>> (sibling * modeBits)) & modeMask;
}

export function withMode(word: number, sibling: number, mode: number): number {
  const shift = sibling * modeBits;
  return (word & ~(modeMask << shift)) | (mode << shift);
}

export function stunBit(sibling: number): number {
  return 1 << (stunShift + sibling);
}

export function isStunned(word: number): boolean {
  return word >>> stunShift !== 0;
}

/** Whether `mode` means secrets may be in the core's caches being loaded: full kernel or the VMM. */
export function holdsSecrets(mode: number): boolean {
  return mode === Mode.full || mode === Mode.vmm;
}

/** Every mode field of the word (smtMax x 4 bits: asserted in constants.ts) holding `mode`. */
const everyField = (mode: number) => mode * 0x1111;
const fullEverywhere = everyField(Mode.full);
const vmmEverywhere = everyField(Mode.vmm);

/**
 * Whether any 4-bit field of the 16-bit `fields` is zero: exact (the borrow of x - 1 in a field reaches
 * bit 3 of a field that was 0 below bit 3 only where the field, or one below it, was zero; the lowest zero
 * field always shows).
 */
function anyFieldZero(fields: number): boolean {
  return ((fields - 0x1111) & ~fields & 0x8888) !== 0;
}

/**
 * Whether any sibling of `self` is in full or vmm, without a loop over the siblings: the guest step asks it
 * (INV-1) at every step (docs/perf-log.md). The other siblings' fields are kept and the rest zeroed (an
 * offline mode, neither full nor vmm); a field equals full (vmm) where its XOR with full (vmm) is zero.
 */
export function anySiblingHoldsSecrets(word: number, self: number, smt: number): boolean {
  return siblingsHoldSecrets(word, siblingFieldsMask(self, smt));
}

/** The mode fields of the siblings of `self` in a core of `smt` threads, as a mask of the core word. */
export function siblingFieldsMask(self: number, smt: number): number {
  return ((1 << (smt * modeBits)) - 1) & ~(modeMask << (self * modeBits));
}

/**
 * `anySiblingHoldsSecrets` with the siblings' fields worked out once (`siblingFieldsMask`): the monitor
 * asks it at every guest step.
 */
export function siblingsHoldSecrets(word: number, siblingFields: number): boolean {
  const modes = word & siblingFields;
  return anyFieldZero(modes ^ fullEverywhere) || anyFieldZero(modes ^ vmmEverywhere);
}

/** `guest,held` style description of a core word, for violation records and traces. */
export function describeCoreWord(word: number, smt: number): string {
  const modes: string[] = [];
  for (let sibling = 0; sibling < smt; sibling++) modes.push(modeNames[modeOf(word, sibling)] ?? '?');
  return `${modes.join(',')}${isStunned(word) ? ' (stunned)' : ''}`;
}
