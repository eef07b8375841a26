import { assert } from '../assert.js';

/**
 * The errors of the emulated KVM memory API (memslots, guest_memfd, memory attributes). They carry the
 * errno KVM itself returns for the same input, so a test written against the kernel's selftests can
 * assert the same errno here. `argument` names the field of the ioctl (or syscall) that was refused.
 *
 * An invalid request from the user of the API is a `KvmError`; a broken internal rule is an assert.
 */
export type KvmErrno =
  | 'EINVAL'
  | 'EEXIST'
  | 'EFAULT'
  | 'EBADF'
  | 'ENODEV'
  | 'EOPNOTSUPP'
  | 'ENOMEM'
  | 'ENOSPC'
  | 'EPERM'
  | 'EIO';

/** The numeric values of include/uapi/asm-generic/errno-base.h and errno.h (x86-64). */
export const errnoNumbers: Readonly<Record<KvmErrno, number>> = {
  EPERM: 1,
  EIO: 5,
  EBADF: 9,
  ENOMEM: 12,
  EFAULT: 14,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EOPNOTSUPP: 95,
};

export class KvmError extends Error {
  override name = 'KvmError';
  /**
   * @param errno the errno KVM returns for this input
   * @param argument the refused field, e.g. `size`, `guest_phys_addr`, `flags`
   * @param detail what is wrong with it, in words; the errno is appended
   */
  constructor(
    readonly errno: KvmErrno,
    readonly argument: string,
    detail: string,
  ) {
    super(`${detail} (${errno})`);
  }
}

/** Whether `error` is a `KvmError` with this errno (for tests and VMM callbacks). */
export function isKvmError(error: unknown, errno?: KvmErrno): error is KvmError {
  return error instanceof KvmError && (errno === undefined || error.errno === errno);
}

/**
 * A u64 or s64 field crossing the emulated ioctl boundary. Callers may pass a `number` (a safe integer)
 * or a `bigint` (for values only a 64-bit register can hold, e.g. a range that wraps past 2^64).
 */
export type U64 = number | bigint;

const u64Limit = 1n << 64n;
const s64Min = -(1n << 63n);
const s64Limit = 1n << 63n;

/** Converts an unsigned 64-bit field. A value outside u64 cannot be encoded in the ABI: a caller bug. */
export function toU64(value: U64, argument: string): bigint {
  const big = toBigInt(value, argument);
  assert(big >= 0n && big < u64Limit, `${argument} must fit in a u64, got ${big}`);
  return big;
}

/** Converts a signed 64-bit field (loff_t). */
export function toS64(value: U64, argument: string): bigint {
  const big = toBigInt(value, argument);
  assert(big >= s64Min && big < s64Limit, `${argument} must fit in an s64, got ${big}`);
  return big;
}

/** Back to a number once a value is known to be small (asserted: the callers have bounded it). */
export function toSafeNumber(value: bigint, argument: string): number {
  assert(value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER), `${argument} ${value} exceeds 2^53`);
  return Number(value);
}

function toBigInt(value: U64, argument: string): bigint {
  if (typeof value === 'bigint') return value;
  assert(Number.isSafeInteger(value), `${argument} must be a safe integer, got ${value}`);
  return BigInt(value);
}
