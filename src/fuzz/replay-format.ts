import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configErrorFromZod } from '../config/schema-error.js';
import { ConfigError } from '../errors.js';
import { type InvariantId, invariantIds, type Violation } from '../invariants/violation.js';
import { writeFileAtomic } from '../report/atomic-write.js';
import type { CaseSize, FuzzCase } from './fuzz-case.js';
import type { PolicySpec } from './policy-spec.js';
import { asiEmuVersion } from './version.js';

/**
 * The replay file: one failing (usually shrunk) fuzz case with everything needed to rerun it
 * deterministically, versioned. Schema version history:
 *   1 — first version: policy, origin, shrink, size, case (run config + choices), expected.
 * A reader refuses any other version with a message that says which one it reads; bump the version
 * (and say what changed above) whenever a field changes meaning, appears or goes.
 */
export const replayFormat = 'asi-emu-replay';
export const replaySchemaVersion = 1;

export interface ReplayDocument {
  format: typeof replayFormat;
  schemaVersion: typeof replaySchemaVersion;
  /** The version that wrote it: the same version replays the identical trace (same trace hash). */
  asiEmuVersion: string;
  policy: PolicySpec;
  /** Where the case came from: a campaign's seed and case index (null for a hand-made case). */
  origin: { campaignSeed: number; caseIndex: number; caseSeed: number } | null;
  shrink: { shrunk: boolean; runs: number; steps: number; budgetSpent: boolean; originalSize: CaseSize };
  size: CaseSize;
  case: FuzzCase;
  expected: {
    /** The invariant the case breaks (or `error`: the model threw). */
    failure: InvariantId | 'error';
    traceHash: string;
    exits: number;
    steps: number;
    violation: Violation | null;
    error: string | null;
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
    schemaVersion: z.literal(replaySchemaVersion),
    asiEmuVersion: z.string(),
    policy: z.object({ name: z.string().min(1), module: z.string().optional() }).strict(),
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
        failure: z.enum([...invariantIds, 'error']),
        traceHash: z.string(),
        exits: number,
        steps: number,
        violation: violationSchema.nullable(),
        error: z.string().nullable(),
      })
      .strict(),
  })
  .strict();

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
  if (version !== replaySchemaVersion) {
    const older = typeof version === 'number' && Number.isInteger(version) && version < replaySchemaVersion;
    const which = older
      ? `an older replay schema version, written by ${writer}`
      : typeof version === 'number'
        ? `an unknown replay schema version, written by ${writer} (newer than this asi-emu ${asiEmuVersion()})`
        : 'no replay schema version';
    throw new ConfigError(
      `${source}: schemaVersion`,
      `replay schema version ${replaySchemaVersion} (asi-emu ${asiEmuVersion()}); this file has ${which}: ` +
        're-run its campaign with this version, or replay it with the version that wrote it',
      version,
    );
  }
  const parsed = replaySchema.safeParse(input);
  if (!parsed.success) throw configErrorFromZod(parsed.error, source);
  return parsed.data as ReplayDocument;
}

export function readReplayFile(path: string): ReplayDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      path,
      'a readable replay file',
      (error as NodeJS.ErrnoException).code ?? 'unreadable',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(path, 'a replay file of valid JSON', (error as Error).message);
  }
  return parseReplay(json, path);
}

/** Writes a replay file atomically (write, then rename): a reader never sees half of one. */
export function writeReplayFile(path: string, document: ReplayDocument, flag = '--out'): void {
  writeFileAtomic(path, `${JSON.stringify(document, null, 2)}\n`, flag);
}
