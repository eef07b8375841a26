import { readJsonInput } from '../config/input-limits.js';
import { configFileFields } from '../config/run-config.js';
import { ConfigError, UsageError } from '../errors.js';

/**
 * Reads a JSON config file through the one bounded reader (config/input-limits.ts: size and depth
 * capped); a missing, oversize, too deep or invalid file is a UsageError naming the flag.
 */
export function readJsonFile(path: string, flag: string): unknown {
  return readJsonInput(path, 'config file', (accepted, got) => new UsageError(flag, accepted, got));
}

/**
 * A config file's top level: a JSON object whose fields are all config sections. `bench` and
 * `machine` both check through here, so a misspelt section is refused by either, never ignored.
 */
export function configObject(config: unknown, flag = '--config'): Record<string, unknown> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new UsageError(
      flag,
      `a JSON object with optional fields ${configFileFields.join(', ')}`,
      Array.isArray(config) ? 'an array' : config === null ? null : typeof config,
    );
  }
  for (const key of Object.keys(config)) {
    if (!(configFileFields as readonly string[]).includes(key)) {
      throw new ConfigError(key, `not a config field; the fields are ${configFileFields.join(', ')}`);
    }
  }
  return config as Record<string, unknown>;
}

/** The `machine` part of a config file (`{ "machine": { ... }, ... }`). */
export function machineSection(config: unknown): unknown {
  if (config === undefined) return {};
  return configObject(config).machine ?? {};
}
