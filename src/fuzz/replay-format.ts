import { z } from 'zod';
import { interruptNames } from '../backend/sim/stepped-sim.js';
import { readJsonInput } from '../config/input-limits.js';
import { configErrorFromZod } from '../config/schema-error.js';
import { mixClasses } from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
import { invariantIds, type Violation } from '../invariants/violation.js';
import { parseLinuxAsiSettingsInput } from '../linux-asi/settings-input.js';
import { namedPolicy, namedPolicyNames } from '../policy/policy-module.js';
import { writeFileAtomic } from '../report/atomic-write.js';
import { type CaseSize, type FailureKind, type FuzzCase, failureKinds, runConfigOf } from './fuzz-case.js';
import { fuzzLimits } from './limits.js';
import { policyForCase } from './linux-asi-draws.js';
import type { PolicySpec } from './policy-spec.js';
import { asiEmuVersion, type ToolIdentity } from './version.js';

/**
 * The replay file: one failing (usually shrunk) fuzz case with everything needed to rerun it
 * deterministically, versioned. Schema version history:
 *   1 — first version: policy, origin, shrink, size, case (run config + choices), expected.
 *       Later, without a bump because every addition is optional and every file written before still
 *       reads the same: policy.moduleSha256, expected.hook, and the failure kind `hang` (issue 18);
 *       `tool` ({ name, version }, issue 20: every result document asi-emu writes carries it).
 *   2 — issue 19's time model: a guest stretch between two events is one step (it was one step per
 *       `guestQuantumCycles`), `guestQuantumCycles` sets the density of guest accesses, `costs.guestQuantum`
 *       is gone, and INV-1 is also seen by the sibling that starts holding secrets. The same case runs
 *       another trace, so a version-1 file no longer reproduces: it is refused, naming the version.
 *   3 — issue 22 item 6: `case.linuxAsi`, today's Linux ASI settings drawn for a linux-asi policy
 *       (sibling protocol, exitOn, class taint policies by name; fuzz/linux-asi-draws.ts). A case
 *       without it runs as before, so version-2 files are still read (and replay the same trace); a
 *       reader of version 2 refuses a version-3 file by its version, not by the new field.
 *       Also in version 3 (optional, absent in the fuzzer's cases): case.schedule, the scheduler as data
 *       (issue 23, an explorer's counterexample; run-sim.ts SimOptions.schedule).
 *       Also in version 3 (optional, absent in files written before: no bump, version 3 came in the same
 *       release): case.workload.mix.class, `user` for a user-class case (host processes, kernel-entry
 *       weights: fuzz/linux-asi-draws.ts `withUserClass`); absent or `kvm`: a VM's exits, as before.
 * A reader refuses any other version with a message that says which one it reads; bump the version
 * (and say what changed above) whenever a field changes meaning, appears or goes.
 */
export const replayFormat = 'asi-emu-replay';
export const replaySchemaVersion = 3;
/** Versions this reader reads: 2 files hold the same cases without `case.linuxAsi`. */
export const replaySchemaVersionsRead: readonly number[] = [2, 3];

export interface ReplayDocument {
  format: typeof replayFormat;
  /** `replaySchemaVersion` when written; a file read may be of any of `replaySchemaVersionsRead`. */
  schemaVersion: number;
  /** Who wrote it (absent in files written before issue 20); its version is `asiEmuVersion`. */
  tool?: ToolIdentity;
  /** The version that wrote it: the same version replays the identical trace (same trace hash). */
  asiEmuVersion: string;
  policy: PolicySpec;
  /** Where the case came from: a campaign's seed and case index (null for a hand-made case). */
  origin: { campaignSeed: number; caseIndex: number; caseSeed: number } | null;
  shrink: { shrunk: boolean; runs: number; steps: number; budgetSpent: boolean; originalSize: CaseSize };
  size: CaseSize;
  case: FuzzCase;
  expected: {
    /** The invariant the case breaks, `error` (the model or a hook threw), or `hang` (no progress in time). */
    failure: FailureKind;
    traceHash: string;
    exits: number;
    steps: number;
    violation: Violation | null;
    error: string | null;
    /** The policy hook that threw or hung (absent: none, or a file written before it was recorded). */
    hook?: string | null;
  };
}

const sizeSchema = z
  .object({
    exits: z.number().int().min(0),
    hyperthreads: z.number().int().min(0),
    vcpus: z.number().int().min(0),
    injectedEvents: z.number().int().min(0),
    choices: z.number().int().min(0),
  })
  .strict();

/** `tool` as every result document carries it (fuzz/version.ts `toolIdentity`). */
export const toolSchema = z.object({ name: z.literal('asi-emu'), version: z.string() }).strict();

const number = z.number();
const caseSchema = z
  .object({
    machine: z
      .object({
        cores: number,
        smt: number,
        memoryMiB: number,
        pageTablePoolPages: number,
        pcid: z.boolean(),
        fillBufferEntries: number,
        vms: z.array(
          z
            .object({
              vcpus: number,
              guestMemoryMiB: number,
              pin: z.array(number),
              confidential: z.boolean().optional(),
            })
            .strict(),
        ),
      })
      .strict(),
    workload: z
      .object({
        mix: z
          .object({
            name: z.string(),
            class: z.enum(mixClasses).optional(),
            description: z.string(),
            source: z.string(),
            weights: z.record(z.string(), number),
          })
          .strict(),
        exitIntervalCycles: number,
        guestQuantumCycles: number,
        guestAccessesPerQuantum: number,
        idleCycles: number,
        nmiIntervalCycles: number,
        machineCheckIntervalCycles: number,
        irqIntervalCycles: number,
        injections: z.array(
          z.object({ thread: number, atCycles: number, vector: z.enum(['nmi', 'mc', 'irq']) }).strict(),
        ),
        confidential: z
          .object({
            hostileVmm: z.boolean(),
            hostileRemapShare: number,
            guestRevalidates: z.boolean(),
            keepsVmmMapping: z.boolean(),
            conversionPagesMax: number,
          })
          .strict()
          .optional(),
        /** Generated handler programs (workload.ts `handlers`, validated there with named fields). */
        handlers: z.array(z.object({}).passthrough()).optional(),
      })
      .strict(),
    costs: z.record(z.string(), number),
    run: z
      .object({
        exits: number,
        seed: number,
        jitterCycles: number,
        waitBoundCycles: number,
        maxCycles: number,
        stopOnViolation: z.boolean(),
      })
      .strict(),
    choices: z.array(z.number().int().min(0).max(0xffffffff)),
    /** Drawn linux-asi settings (checked with named fields by parseLinuxAsiSettingsInput). */
    linuxAsi: z.object({}).passthrough().optional(),
    schedule: z
      .array(z.object({ thread: number, interrupt: z.enum(interruptNames).optional() }).strict())
      .optional(),
  })
  .strict();

const violationSchema = z
  .object({
    id: z.enum(invariantIds),
    threads: z.array(number),
    modes: z.array(z.string()),
    detail: z.string(),
    address: z.string().optional(),
    line: z.object({ pfn: number, lineInPage: number, domain: z.string() }).strict().optional(),
    timeCycles: number,
    step: number,
    recentEvents: z.array(z.string()).optional(),
  })
  .strict();

const replaySchema = z
  .object({
    format: z.literal(replayFormat),
    schemaVersion: z.union([z.literal(2), z.literal(3)]),
    tool: toolSchema.optional(),
    asiEmuVersion: z.string(),
    policy: z
      .object({ name: z.string().min(1), module: z.string().optional(), moduleSha256: z.string().optional() })
      .strict(),
    origin: z.object({ campaignSeed: number, caseIndex: number, caseSeed: number }).strict().nullable(),
    shrink: z
      .object({
        shrunk: z.boolean(),
        runs: number,
        steps: number,
        budgetSpent: z.boolean(),
        originalSize: sizeSchema,
      })
      .strict(),
    size: sizeSchema,
    case: caseSchema,
    expected: z
      .object({
        failure: z.enum(failureKinds),
        traceHash: z.string(),
        exits: number,
        steps: number,
        violation: violationSchema.nullable(),
        error: z.string().nullable(),
        hook: z.string().nullable().optional(),
      })
      .strict(),
  })
  .strict();

/**
 * A fuzz case alone, as a replay file holds it (the explorer's machine and workload, src/explore/):
 * every field checked by the same schema, so a case that passes replays; `source` names the input.
 */
export function parseFuzzCase(input: unknown, source: string): FuzzCase {
  const parsed = caseSchema.safeParse(input);
  if (!parsed.success) throw configErrorFromZod(parsed.error, source);
  const fuzzCase = parsed.data as FuzzCase;
  checkCaseLimits(fuzzCase, source);
  return fuzzCase;
}

/**
 * Checks the envelope first, so a file of another version is refused with what this version reads
 * rather than with the first field that moved; then the whole document. `source` names the file.
 */
export function parseReplay(input: unknown, source = 'replay file'): ReplayDocument {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(source, `an asi-emu replay file (a JSON object with "format": "${replayFormat}")`);
  }
  const envelope = input as Record<string, unknown>;
  if (envelope.format !== replayFormat) {
    throw new ConfigError(
      `${source}: format`,
      `"${replayFormat}" (this is not an asi-emu replay file)`,
      envelope.format,
    );
  }
  const version = envelope.schemaVersion;
  const writer =
    typeof envelope.asiEmuVersion === 'string' ? `asi-emu ${envelope.asiEmuVersion}` : 'an unknown asi-emu';
  if (!replaySchemaVersionsRead.includes(version as number)) {
    const older = typeof version === 'number' && Number.isInteger(version) && version < replaySchemaVersion;
    const which = older
      ? `an older replay schema version, written by ${writer}`
      : typeof version === 'number'
        ? `an unknown replay schema version, written by ${writer} (newer than this asi-emu ${asiEmuVersion()})`
        : 'no replay schema version';
    throw new ConfigError(
      `${source}: schemaVersion`,
      `replay schema version ${replaySchemaVersionsRead.join(' or ')} (asi-emu ${asiEmuVersion()}); this file has ${which}: ` +
        're-run its campaign with this version, or replay it with the version that wrote it',
      version,
    );
  }
  const parsed = replaySchema.safeParse(input);
  if (!parsed.success) throw configErrorFromZod(parsed.error, source);
  const document = parsed.data as ReplayDocument;
  if (document.case.linuxAsi !== undefined) {
    if (version === 2) {
      throw new ConfigError(
        `${source}: case.linuxAsi`,
        'absent in a replay schema version 2 file (drawn linux-asi settings came with version 3)',
      );
    }
    parseLinuxAsiSettingsInput(document.case.linuxAsi, `${source}: case.linuxAsi`);
  }
  if (
    version === 2 &&
    (document.case.schedule !== undefined || document.case.workload.mix.class !== undefined)
  ) {
    throw new ConfigError(
      `${source}: case.${document.case.schedule !== undefined ? 'schedule' : 'workload.mix.class'}`,
      'absent in a replay schema version 2 file (it came with version 3)',
    );
  }
  checkCaseLimits(document.case, source);
  // What the run would refuse, refused here, before any worker starts: a mix whose keys are not of its
  // class, and drawn linux-asi settings on a built-in policy that is not today's ASI (bad input, exit 2;
  // inside a replay worker it would lose its kind). A module's policy is checked where it loads.
  withSource(source, () => runConfigOf(document.case));
  if (document.policy.module === undefined && namedPolicyNames().includes(document.policy.name)) {
    policyForCase(namedPolicy(document.policy.name), document.case, `${source}: case`);
  }
  return document;
}

/** Runs `check`; a ConfigError it throws names the file too. */
function withSource(source: string, check: () => unknown): void {
  try {
    check();
  } catch (error) {
    if (!(error instanceof ConfigError) || error.field.startsWith(source)) throw error;
    throw new ConfigError(`${source}: case.${error.field}`, error.accepted, error.got);
  }
}

/**
 * The fuzzer never writes a case beyond its own limits (limits.ts; arbitraries.ts draws inside them and
 * shrinking only makes a case smaller), so a replay file past one was made or edited by hand: refused,
 * naming the field and the limit, before it runs for minutes (100 M exits) or builds a large machine.
 */
export function checkCaseLimits(fuzzCase: FuzzCase, source: string): void {
  const { machine, workload, run } = fuzzCase;
  const bounds: [field: string, value: number, max: number][] = [
    ['run.exits', run.exits, fuzzLimits.exitsMax],
    ['run.maxCycles', run.maxCycles, fuzzLimits.maxCycles],
    ['run.waitBoundCycles', run.waitBoundCycles, fuzzLimits.waitBoundCycles],
    ['machine.cores', machine.cores, fuzzLimits.coresMax],
    ['machine.smt', machine.smt, fuzzLimits.smtMax],
    ['machine.memoryMiB', machine.memoryMiB, fuzzLimits.memoryMiB],
    ['machine.pageTablePoolPages', machine.pageTablePoolPages, fuzzLimits.pageTablePoolPages],
    ['machine.vms (count)', machine.vms.length, fuzzLimits.vmsMax],
    ['workload.idleCycles', workload.idleCycles, fuzzLimits.idleCyclesMax],
    [
      'workload.injections (count)',
      workload.injections.length,
      fuzzLimits.injectionsMax + 2 * fuzzLimits.nestedInjectionPairsMax,
    ],
    ['workload.handlers (count)', workload.handlers?.length ?? 0, fuzzLimits.handlersMax],
    [
      'choices (count)',
      fuzzCase.choices.length,
      fuzzCase.schedule === undefined ? fuzzLimits.choicesMax : fuzzLimits.scheduleChoicesMax,
    ],
    ['schedule (count)', fuzzCase.schedule?.length ?? 0, fuzzLimits.scheduleStepsMax],
  ];
  machine.vms.forEach((vm, vmId) => {
    bounds.push([`machine.vms[${vmId}].vcpus`, vm.vcpus, fuzzLimits.vcpusPerVmMax]);
    bounds.push([`machine.vms[${vmId}].guestMemoryMiB`, vm.guestMemoryMiB, fuzzLimits.guestMemoryMiBMax]);
  });
  workload.injections.forEach((injection, i) => {
    bounds.push([`workload.injections[${i}].atCycles`, injection.atCycles, fuzzLimits.injectionAtCyclesMax]);
  });
  (workload.handlers ?? []).forEach((handler, i) => {
    const ops = (handler as { ops?: unknown }).ops;
    bounds.push([
      `workload.handlers[${i}].ops (count)`,
      Array.isArray(ops) ? ops.length : 0,
      fuzzLimits.handlerOpsMax,
    ]);
  });
  for (const [field, value, max] of bounds) {
    if (!(value <= max)) {
      throw new ConfigError(
        `${source}: case.${field}`,
        `at most ${max}, the fuzzer's own limit (fuzz cases never pass it: this file was edited by hand)`,
        value,
      );
    }
  }
  // A schedule names hyperthreads that run a vCPU of the case's machine (bad input, not a finding).
  const vcpuThreads = new Set(machine.vms.flatMap((vm) => vm.pin));
  fuzzCase.schedule?.forEach((step, i) => {
    if (!vcpuThreads.has(step.thread))
      throw new ConfigError(
        `${source}: case.schedule[${i}].thread`,
        `a hyperthread that runs a vCPU of this machine: one of ${[...vcpuThreads].sort((a, b) => a - b).join(', ')}`,
        step.thread,
      );
  });
  // maxCycles 0 means no cap: a fuzz case always has one (limits.ts maxCycles), so a run always ends.
  if (run.maxCycles <= 0)
    throw new ConfigError(
      `${source}: case.run.maxCycles`,
      `1..${fuzzLimits.maxCycles} (a fuzz case always has a cap)`,
      run.maxCycles,
    );
  if (!Number.isSafeInteger(run.seed) || run.seed < 0)
    throw new ConfigError(`${source}: case.run.seed`, 'an integer 0..2^53-1', run.seed);
}

/**
 * Reads a replay file through the one bounded reader (config/input-limits.ts): size and depth capped,
 * then the schema, then the fuzzer's own limits (`checkCaseLimits`).
 */
export function readReplayFile(path: string): ReplayDocument {
  const json = readJsonInput(path, 'replay file', (accepted, got) => new ConfigError(path, accepted, got));
  return parseReplay(json, path);
}

/** Writes a replay file atomically (write, then rename): a reader never sees half of one. */
export function writeReplayFile(path: string, document: ReplayDocument, flag = '--out'): void {
  writeFileAtomic(path, `${JSON.stringify(document, null, 2)}\n`, flag);
}
