import { assert } from '../assert.js';
import { UsageError } from '../errors.js';

/**
 * How one campaign's seed space is split (DESIGN.md "Scale"). A campaign is its seed S and the case
 * indices 0, 1, 2, ...; case i is drawn from `caseSeedOf(S, i)` alone, so any machine can run any
 * case. Shard k of n (1-based, as `--shard 2/3`, like Jest's, vitest's and Playwright's) runs the
 * indices i with i mod n = k - 1: the shards of a `--cases N` campaign are disjoint and their union is
 * the unsharded campaign, whatever machine or pool size runs each.
 */
export interface Shard {
  /** 1..count. */
  index: number;
  count: number;
}

export const wholeCampaign: Shard = { index: 1, count: 1 };

/** Shards a campaign may be split into (a CI matrix or a batch of indexed jobs). */
export const shardCountMax = 65_536;

export function parseShard(text: string, flag = '--shard'): Shard {
  const accepted = `i/n with 1 <= i <= n <= ${shardCountMax} (e.g. 2/4: the second of four shards)`;
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new UsageError(flag, accepted, text);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || count > shardCountMax || index < 1 || index > count)
    throw new UsageError(flag, accepted, text);
  return { index, count };
}

export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/** Case indices of `shard`, in order: below `cases`, or without end when `cases` is undefined. */
export function* shardCaseIndices(shard: Shard, cases?: number): Generator<number> {
  assert(shard.index >= 1 && shard.index <= shard.count, 'shard index in 1..count');
  for (let index = shard.index - 1; cases === undefined || index < cases; index += shard.count) yield index;
}

/** How many of a `--cases N` campaign's cases fall in `shard`. */
export function shardCaseCount(shard: Shard, cases: number): number {
  return Math.max(0, Math.ceil((cases - (shard.index - 1)) / shard.count));
}

/**
 * The seed fast-check draws case `index` of campaign `seed` from: a 32-bit mix of both (splitmix32
 * steps), so neighbouring cases and campaigns get unrelated cases.
 */
export function caseSeedOf(seed: number, index: number): number {
  assert(Number.isSafeInteger(seed) && seed >= 0, 'campaign seed is a non-negative safe integer');
  assert(Number.isSafeInteger(index) && index >= 0, 'case index is a non-negative safe integer');
  let hash = mix32((seed >>> 0) ^ 0x9e3779b9);
  hash = mix32(hash ^ Math.floor(seed / 4294967296));
  hash = mix32(hash ^ (index >>> 0));
  hash = mix32(hash ^ Math.floor(index / 4294967296));
  return hash | 0;
}

function mix32(value: number): number {
  let z = (value + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}
