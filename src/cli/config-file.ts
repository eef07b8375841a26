import { readFileSync } from 'node:fs';
import { ConfigError, UsageError } from '../errors.js';

/** Reads a JSON config file; a missing file or bad JSON is a UsageError naming the flag. */
export function readJsonFile(path: string, flag: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      flag,
      'a readable JSON file',
      `${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(flag, 'a file of valid JSON', `${path}: ${(error as Error).message}`);
  }
}

/** The `machine` part of a config file (`{ "machine": { ... }, ... }`). */
export function machineSection(config: unknown): unknown {
  if (config === undefined) return {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(
      'config',
      'a JSON object with optional "machine", "workload", "costs", "run" and "policies" fields',
      config,
    );
  }
  return (config as Record<string, unknown>).machine ?? {};
}
