import { createHash } from 'node:crypto';
import { type Stats, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inputLimits, readBoundedBytes } from '../config/input-limits.js';
import { ConfigError } from '../errors.js';
import { parseLinuxAsiSettingsInput } from '../linux-asi/settings-input.js';
import { policies } from './index.js';
import { plantedBugs } from './planted.js';
import {
  definePolicy,
  type PlantedBugSwitches,
  type Policy,
  type PolicyDefinition,
  type PolicyHookName,
  plantedBugSwitchNames,
  policyHookNames,
  policyHookReturns,
  refuseTopLevelPlantedBugSwitches,
} from './policy.js';

/**
 * The one loader of a policy (issues 18 and 21), for every command and backend: `fuzz`, `replay` and
 * `bench` on the sim (in pool workers), and the workers backend (in each hyperthread's worker). It owns
 * the rules: where a policy comes from (`PolicySource`: a built-in or planted-bug name, or a module),
 * what a module file may be (`readModuleFile`), what it must export, and every refusal's text. A module is
 * imported only here, and this runs only off the CLI's main thread (`probePolicyModule` in
 * backend/workers/policy-probe.ts loads it in a worker under a time limit first), because a module's
 * top-level code may loop forever or do anything at all.
 *
 * What a module must export is checked as data before it is used: every key is known, every setting
 * has an accepted value, every hook is a function. A plain object and one made with `definePolicy`
 * then both go through `definePolicy`, so one module behaves the same everywhere. Its hooks are
 * wrapped (`checkedPolicy`): a return value of the wrong type, or a throw, is a `PolicyHookError`
 * naming the hook, and the hook running now is published for a watchdog (`trackHooks`).
 */

/** The settings a definition may carry, with their accepted values. */
const settingValues = {
  usesAsi: [true, false],
  smt: [true, false],
  stun: [true, false],
  safe: [true, false],
} as const;

/** The planted-bug switches (policy.ts `PlantedBugSwitches`), under `plantedBugs`, with their accepted values. */
const plantedBugValues: { [K in keyof PlantedBugSwitches]: readonly PlantedBugSwitches[K][] } = {
  atomicEntry: [true, false],
  waitFor: ['mode', 'ack'],
  flushPoint: ['after-barrier', 'before-barrier'],
};

const knownKeys = [
  'name',
  'description',
  ...Object.keys(settingValues),
  'plantedBugs',
  'linuxAsi',
  ...policyHookNames,
];

/** Policy names become file names and table cells: short, printable, no path separators. */
const policyNameMaxChars = 64;
const policyNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A policy hook threw, or returned a value of the wrong type: the user's policy is broken. */
export class PolicyHookError extends Error {
  override name = 'PolicyHookError';
  constructor(
    readonly policy: string,
    readonly hook: PolicyHookName,
    readonly problem: string,
    /** The hook's own error (its stack says where in the module), when it threw. */
    override readonly cause?: unknown,
  ) {
    super(`policy ${policy}: hook ${hook} ${problem}`);
  }
}

/** A value as a ConfigError's `got` (which quotes strings itself). */
function gotOf(value: unknown): unknown {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? value
    : describe(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/**
 * Checks a module's export as a policy definition; a ConfigError names the key (`field.key`) and what
 * it accepts. Returns the definition, its `linuxAsi` settings (today's Linux ASI: sibling protocol,
 * exitOn, STIBP, class taint policies by name or mask) checked and in the form definePolicy takes.
 */
export function checkPolicyDefinition(value: unknown, field: string): PolicyDefinition {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(
      field,
      'a policy object: { name, description, ...hooks } (see definePolicy)',
      gotOf(value),
    );
  }
  const definition = value as Record<string, unknown>;
  refuseTopLevelPlantedBugSwitches(definition, field);
  for (const key of Object.keys(definition)) {
    if (!knownKeys.includes(key)) {
      throw new ConfigError(`${field}.${key}`, `a known policy key: one of ${knownKeys.join(', ')}`, key);
    }
  }
  const { name, description } = definition;
  if (typeof name !== 'string' || name.length > policyNameMaxChars || !policyNamePattern.test(name)) {
    throw new ConfigError(
      `${field}.name`,
      `a name of 1..${policyNameMaxChars} letters, digits, '.', '_' or '-', starting with a letter or digit`,
      typeof name === 'string' ? name : gotOf(name),
    );
  }
  if (typeof description !== 'string') {
    throw new ConfigError(
      `${field}.description`,
      'a string (one line for `asi-emu policies`)',
      gotOf(description),
    );
  }
  checkSettings(definition, settingValues, field);
  checkPlantedBugs(definition.plantedBugs, `${field}.plantedBugs`);
  const linuxAsi =
    definition.linuxAsi === undefined
      ? undefined
      : parseLinuxAsiSettingsInput(definition.linuxAsi, `${field}.linuxAsi`);
  if (linuxAsi !== undefined && definition.usesAsi === false) {
    throw new ConfigError(
      `${field}.usesAsi`,
      "true (or unset) with linuxAsi: today's Linux ASI is ASI",
      definition.usesAsi,
    );
  }
  for (const hook of policyHookNames) {
    const hookValue = definition[hook];
    if (hookValue !== undefined && typeof hookValue !== 'function') {
      throw new ConfigError(
        `${field}.${hook}`,
        `a function (view) => ${policyHookReturns[hook]}`,
        gotOf(hookValue),
      );
    }
  }
  return (linuxAsi === undefined ? definition : { ...definition, linuxAsi }) as unknown as PolicyDefinition;
}

function checkPlantedBugs(value: unknown, field: string): void {
  if (value === undefined) return;
  const accepted = `an object of planted-bug switches: ${plantedBugSwitchNames.join(', ')}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, accepted, gotOf(value));
  }
  const switches = value as Record<string, unknown>;
  for (const key of Object.keys(switches)) {
    if (!(plantedBugSwitchNames as readonly string[]).includes(key)) {
      throw new ConfigError(
        `${field}.${key}`,
        `a planted-bug switch: one of ${plantedBugSwitchNames.join(', ')}`,
        key,
      );
    }
  }
  checkSettings(switches, plantedBugValues, field);
}

/** Each setting of `values` that is set must be one of its accepted values in `table`. */
function checkSettings(
  values: Record<string, unknown>,
  table: Record<string, readonly unknown[]>,
  field: string,
): void {
  for (const [key, accepted] of Object.entries(table)) {
    const setting = values[key];
    if (setting !== undefined && !accepted.includes(setting)) {
      throw new ConfigError(
        `${field}.${key}`,
        `one of ${accepted.map((choice) => JSON.stringify(choice)).join(', ')}`,
        gotOf(setting),
      );
    }
  }
}

// ---- which hook runs now, for a watchdog in another thread --------------------------------------------

let hookSlot: Int32Array | null = null;
let hookSlotIndex = 0;

/**
 * Publishes the id of the user hook running now (0: none) into `slot[index]` of a shared array, so
 * a watchdog in another thread can name the hook a stuck case is in (`hookNameOf`). Null: stop.
 */
export function trackHooks(slot: Int32Array | null, index = 0): void {
  hookSlot = slot;
  hookSlotIndex = index;
}

/** The hook a published id names; `null` for 0 (no hook was running: the model or the module's import). */
export function hookNameOf(id: number): PolicyHookName | null {
  return policyHookNames[id - 1] ?? null;
}

function publishHook(id: number): void {
  if (hookSlot !== null) Atomics.store(hookSlot, hookSlotIndex, id);
}

function checkedHook(
  policyName: string,
  hook: PolicyHookName,
  fn: (...args: unknown[]) => unknown,
): (...args: unknown[]) => unknown {
  const id = policyHookNames.indexOf(hook) + 1;
  const returns = policyHookReturns[hook];
  return (...args: unknown[]) => {
    publishHook(id);
    let value: unknown;
    try {
      value = fn(...args);
    } catch (error) {
      publishHook(0);
      const message = error instanceof Error ? error.message : String(error);
      throw new PolicyHookError(policyName, hook, `threw: ${message}`, error);
    }
    publishHook(0);
    const ok =
      returns === 'boolean' ? typeof value === 'boolean' : Number.isInteger(value) && (value as number) >= 0;
    if (!ok) {
      throw new PolicyHookError(
        policyName,
        hook,
        `returned ${describe(value)}; it must return ${returns === 'boolean' ? 'true or false' : 'a non-negative integer bit mask'}`,
      );
    }
    return value;
  };
}

/** Policies `checkedPolicy` made: a user's, whose hooks are the user's code. */
const userPolicies = new WeakSet<Policy>();

/** `policy` with every hook checked (see the file comment). For user policies: built-ins need none. */
export function checkedPolicy(policy: Policy): Policy {
  const checked: Record<string, unknown> = { ...policy };
  for (const hook of policyHookNames) {
    checked[hook] = checkedHook(policy.name, hook, policy[hook] as (...args: unknown[]) => unknown);
  }
  userPolicies.add(checked as unknown as Policy);
  return checked as unknown as Policy;
}

/**
 * Whether a policy is a user's (loaded from a module, its hooks checked): the fuzzer then fuzzes its
 * settings as given, where it draws variants of a built-in's (fuzz/linux-asi-draws.ts).
 */
export function isUserPolicy(policy: Policy): boolean {
  return userPolicies.has(policy);
}

// ---- loading --------------------------------------------------------------------------------------------

/** The file names a module may have: Node imports both as ES modules (`.js` in a `"type": "module"` package). */
const policyModuleExtensions = ['.js', '.mjs'] as const;

export const policyModuleAccepted =
  'an ES module (.js or .mjs) exporting a policy ({ name, description, ...hooks }, see definePolicy) as its default export, as `policy`, or as its only export';

export interface LoadedPolicyModule {
  policy: Policy;
  /** Absolute path. */
  path: string;
  /** SHA-256 of the module file's bytes (a replay tells a changed module from a determinism bug). */
  sha256: string;
}

/**
 * The bytes of a module file, read under the same rules everywhere: a `.js` or `.mjs` name, a regular
 * file, at most `inputLimits.policyModuleBytesMax` bytes. A ConfigError naming `field` otherwise.
 */
function readModuleFile(path: string, absolute: string, field: string): Buffer {
  if (!policyModuleExtensions.some((extension) => absolute.endsWith(extension))) {
    throw new ConfigError(field, policyModuleAccepted, `${path} (not a .js or .mjs file)`);
  }
  let stats: Stats;
  try {
    stats = statSync(absolute);
  } catch (error) {
    throw new ConfigError(
      field,
      policyModuleAccepted,
      `${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
  if (!stats.isFile()) {
    throw new ConfigError(field, policyModuleAccepted, `${path} (not a regular file)`);
  }
  return readBoundedBytes(
    absolute,
    'policy module',
    (accepted, got) => new ConfigError(field, `${policyModuleAccepted}: ${accepted}`, got),
    inputLimits.policyModuleBytesMax,
  );
}

/** SHA-256 of a module file's bytes, read under the module rules (`readModuleFile`). */
export function moduleSha256(path: string, field = policyModuleField): string {
  return createHash('sha256')
    .update(readModuleFile(path, resolve(path), field))
    .digest('hex');
}

/** The chosen export and its key. */
function chooseExport(
  loaded: Record<string, unknown>,
  name: string | undefined,
): { key: string; value: unknown } | undefined {
  const looksLikePolicy = (value: unknown) =>
    typeof value === 'object' && value !== null && typeof (value as { name?: unknown }).name === 'string';
  const entries = Object.entries(loaded);
  if (name !== undefined) {
    const found = entries.find(
      ([key, value]) => looksLikePolicy(value) && (key === name || (value as { name: string }).name === name),
    );
    return found && { key: found[0], value: found[1] };
  }
  if (loaded.default !== undefined) return { key: 'default', value: loaded.default };
  if (loaded.policy !== undefined) return { key: 'policy', value: loaded.policy };
  const candidates = entries.filter(([, value]) => looksLikePolicy(value));
  return candidates.length === 1 ? { key: candidates[0][0], value: candidates[0][1] } : undefined;
}

/**
 * Imports a user policy module and checks it (the file comment). `name` picks a named export (or the
 * export whose policy has that name) in a module with several. Runs the module's code: call it only
 * off the main thread.
 */
export async function loadPolicyModule(
  path: string,
  options: { field?: string; name?: string } = {},
): Promise<LoadedPolicyModule> {
  const field = options.field ?? policyModuleField;
  const absolute = resolve(path);
  const sha256 = createHash('sha256')
    .update(readModuleFile(path, absolute, field))
    .digest('hex');
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(field, policyModuleAccepted, `${path} (importing it threw: ${message})`);
  }
  const chosen = chooseExport(loaded, options.name);
  if (chosen === undefined) {
    throw new ConfigError(
      field,
      policyModuleAccepted,
      `${path} (${options.name === undefined ? 'no policy exported' : `no policy named ${options.name}`})`,
    );
  }
  const definition = checkPolicyDefinition(chosen.value, `${field} ${path}: policy`);
  return { policy: checkedPolicy(definePolicy(definition)), path: absolute, sha256 };
}

// ---- where a policy comes from: one set of rules for fuzz, replay, bench and the workers backend -------

/** The flag every command names a module with, and so the field of every refusal of one. */
export const policyModuleField = '--policy-module';

/**
 * Which policy a run uses, as data: it crosses to pool and hyperthread workers (functions do not survive
 * structured clone) and is recorded in replay and summary files. A built-in or planted-bug policy by
 * name; a user's module by absolute path, which each worker imports itself through `loadPolicyModule`.
 */
export interface PolicySource {
  /** The policy's name (for a module: the name its Policy carries, or the key of its export). */
  name: string;
  /** Absolute path of an ES module exporting the policy. */
  module?: string;
  /**
   * SHA-256 of the module's bytes when the campaign started: a replay whose module differs says so,
   * instead of calling a changed trace a determinism bug. Absent in files written before it existed.
   */
  moduleSha256?: string;
}

/** The policies a name can choose: the built-ins, then the planted bugs. */
export function namedPolicies(): ReadonlyMap<string, Policy> {
  const byName = new Map<string, Policy>(Object.entries(policies));
  for (const bug of plantedBugs) byName.set(bug.policy.name, bug.policy);
  return byName;
}

/** Every name `namedPolicy` accepts: the built-ins, then the planted bugs. */
export function namedPolicyNames(): string[] {
  return [...namedPolicies().keys()];
}

/** A built-in or planted-bug policy by its name; a ConfigError naming `field` and every name otherwise. */
export function namedPolicy(name: string, field = '--policy'): Policy {
  const policy = namedPolicies().get(name);
  if (policy === undefined) throw new ConfigError(field, `one of ${namedPolicyNames().join(', ')}`, name);
  return policy;
}

/** Modules this thread has loaded, by absolute path: a worker imports each once. */
const loadedModules = new Map<string, Promise<LoadedPolicyModule>>();

/**
 * The policy a source names. A module is loaded once per thread (`loadPolicyModule`) and must hold the
 * policy the source names. Call it only off the CLI's main thread for a module (pool and hyperthread
 * workers do): importing runs the module's code.
 */
export async function resolvePolicySource(source: PolicySource): Promise<Policy> {
  if (source.module === undefined) return namedPolicy(source.name);
  const module = source.module;
  const key = `${module}\0${source.name}`;
  let loading = loadedModules.get(key);
  if (!loading) {
    loading = loadPolicyModule(module, { name: source.name });
    loadedModules.set(key, loading);
    // A failed load is not cached: the next call reports the error again.
    loading.catch(() => loadedModules.delete(key));
  }
  return (await loading).policy;
}
