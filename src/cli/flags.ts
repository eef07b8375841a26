import { UsageError } from '../errors.js';

/** commander argument parsers that throw a UsageError naming the flag and what it accepts. */
export function integerFlag(flag: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new UsageError(flag, `an integer ${min}..${max}`, value);
    }
    return parsed;
  };
}

export function listFlag(flag: string, accepted: readonly string[]) {
  return (value: string): string[] => {
    const items = value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
    if (items.length === 0)
      throw new UsageError(flag, `a comma-separated list of ${accepted.join(', ')}`, value);
    for (const item of items) {
      if (!accepted.includes(item))
        throw new UsageError(flag, `a comma-separated list of ${accepted.join(', ')}`, item);
    }
    return items;
  };
}
