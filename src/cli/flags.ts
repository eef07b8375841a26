import { inputLimits, jsonDepth } from '../config/input-limits.js';
import { UsageError } from '../errors.js';

/** commander argument parsers that throw a UsageError naming the flag and what it accepts. */
export function integerFlag(flag: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new UsageError(flag, `an integer ${min}..${boundText(max)}`, value);
    }
    return parsed;
  };
}

/** A finite decimal number in min..max (`--exit-rate 1000`, `--exit-rate 1.5e5`). */
export function numberFlag(flag: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^[0-9.eE+-]+$/.test(value) || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new UsageError(flag, `a number ${min}..${boundText(max)}`, value);
    }
    return parsed;
  };
}

/** A bound as a user reads it: 2^53-1 rather than its 16 digits. */
export function boundText(bound: number): string {
  return bound === Number.MAX_SAFE_INTEGER ? '2^53-1' : String(bound);
}

/** A comma-separated list of distinct names from `accepted` (a repeat would run the same thing twice). */
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
    const repeated = items.find((item, index) => items.indexOf(item) !== index);
    if (repeated !== undefined)
      throw new UsageError(flag, 'a list without repeats (each runs once)', repeated);
    return items;
  };
}

/** One `--set PATH=VALUE`: a config field by its dotted path, and its value. */
export interface ConfigSetting {
  path: string[];
  value: unknown;
}

/**
 * `--set PATH=VALUE` (repeatable): any config field as a flag, e.g. `--set machine.cores=4`,
 * `--set costs.ipiDelivery=2000`, `--set workload.mix=idle-tracing`, `--set policies=["asi"]`. VALUE
 * is JSON when it parses as JSON, else a string. The config schema then checks the field as it does in
 * a file, naming it.
 */
export function setFlag(sections: readonly string[]) {
  return (text: string, previous: ConfigSetting[] = []): ConfigSetting[] => {
    const equals = text.indexOf('=');
    const path = equals > 0 ? text.slice(0, equals).split('.') : [];
    // A path is data: `__proto__` and friends would reach Object.prototype through applySettings.
    const unsafe = path.some(
      (part) => part === '__proto__' || part === 'constructor' || part === 'prototype',
    );
    if (equals <= 0 || unsafe || path.some((part) => part.length === 0) || !sections.includes(path[0])) {
      throw new UsageError(
        '--set',
        `PATH=VALUE with PATH a config field under ${sections.join(', ')} (e.g. machine.cores=4)`,
        text,
      );
    }
    const raw = text.slice(equals + 1);
    // The path's parts nest too: the whole setting stays within the depth a config file may have.
    const depth = path.length + jsonDepth(raw);
    if (depth > inputLimits.jsonDepthMax) {
      throw new UsageError(
        '--set',
        `a PATH=VALUE nested at most ${inputLimits.jsonDepthMax} levels deep, path included (the input depth limit)`,
        `${path.slice(0, 3).join('.')}${path.length > 3 ? '...' : ''}: ${depth} levels`,
      );
    }
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // Not JSON: the string itself (a mix name, say).
    }
    return [...previous, { path, value }];
  };
}

/** A config object with the settings applied (a copy: the input is left as it was). */
export function applySettings(
  input: Record<string, unknown>,
  settings: readonly ConfigSetting[],
): Record<string, unknown> {
  const result = structuredClone(input);
  for (const { path, value } of settings) {
    let node: Record<string, unknown> = result;
    for (const key of path.slice(0, -1)) {
      const next = Object.hasOwn(node, key) ? node[key] : undefined;
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
  }
  return result;
}
