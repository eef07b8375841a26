import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { caseSeedOf, parseShard, shardCaseCount, shardCaseIndices } from '../../src/fuzz/shard.js';

describe('shards of a campaign', () => {
  it('parses i/n (1-based) and refuses anything else naming --shard', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(parseShard('1/1')).toEqual({ index: 1, count: 1 });
    for (const bad of ['0/3', '4/3', '3', '1/0', 'a/b', '-1/2', '1/3/4', '']) {
      expect(() => parseShard(bad)).toThrow(UsageError);
      expect(() => parseShard(bad)).toThrow(/--shard: i\/n with 1 <= i <= n/);
    }
  });

  it('splits the case indices into disjoint shards whose union is the whole campaign', () => {
    for (const cases of [1, 2, 10, 31]) {
      for (const count of [1, 2, 3, 7]) {
        const union: number[] = [];
        for (let index = 1; index <= count; index++) {
          const indices = [...shardCaseIndices({ index, count }, cases)];
          expect(indices.length).toBe(shardCaseCount({ index, count }, cases));
          union.push(...indices);
        }
        expect(union.sort((a, b) => a - b)).toEqual(Array.from({ length: cases }, (_, i) => i));
      }
    }
  });

  it('derives case seeds from the campaign seed and the index alone', () => {
    expect(caseSeedOf(1, 5)).toBe(caseSeedOf(1, 5));
    const seeds = new Set<number>();
    for (let index = 0; index < 1000; index++) seeds.add(caseSeedOf(1, index));
    for (let seed = 0; seed < 1000; seed++) seeds.add(caseSeedOf(seed, 0));
    expect(seeds.size).toBeGreaterThan(1995);
    expect(caseSeedOf(Number.MAX_SAFE_INTEGER, 3)).toBe(caseSeedOf(Number.MAX_SAFE_INTEGER, 3) | 0);
  });
});
