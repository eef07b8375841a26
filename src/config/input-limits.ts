import { closeSync, openSync, readSync } from 'node:fs';
import { assert } from '../assert.js';

/**
 * Limits on what a user's file or flag may hand us (issue 18), in one place with why. Config files,
 * replay files and fuzz summaries are data from outside: a device (`/dev/zero`), an endless pipe or a
 * tampered file must get a one-line refusal, never a hang, a GB of memory or a stack trace.
 */
export const inputLimits = {
  /**
   * Largest config, replay or summary file read, in bytes. The largest legitimate one is a fuzz summary
   * of a long campaign (~400 bytes per failure listed: 64 MiB holds ~150,000 failures); a config or a
   * replay file is a few KiB. Reading stops at the cap, so a device or an endless stream stops there too.
   */
  fileBytesMax: 64 * 1024 * 1024,
  /** Bytes read per call: large enough that a 64 MiB file takes ~1,000 reads. */
  readChunkBytes: 64 * 1024,
  /**
   * Deepest JSON nesting (objects and arrays) accepted in a file or a `--set` value. Our deepest
   * legitimate document is a replay file at 6 levels; 64 leaves room for hand-made configs and stays
   * far below what recursive code (structuredClone, zod, JSON.stringify) survives (~10,000 levels).
   */
  jsonDepthMax: 64,
  /**
   * Largest weight of one entry of an exit mix (a mix's or a handler's `weight`). Weights are relative:
   * percentages, or raw counts from a `perf kvm stat` trace; 1e12 exits is more than any trace holds,
   * and a sum of a few hundred such weights stays finite and exact to far below one exit in a million.
   */
  mixWeightMax: 1e12,
  /**
   * Largest policy module file, in bytes. A policy is a few hooks: the examples in docs/ and
   * test/fixtures/ are under 2 KiB, and a module bundled with helpers of its own stays in the tens of
   * KiB; 4 MiB leaves room for a bundler's output and stops a device or an endless stream named by
   * mistake before it is hashed or imported.
   */
  policyModuleBytesMax: 4 * 1024 * 1024,
} as const;

assert(inputLimits.readChunkBytes <= inputLimits.fileBytesMax, 'one read never passes the cap');
assert(inputLimits.policyModuleBytesMax <= inputLimits.fileBytesMax, 'a module is read like any file');
assert(inputLimits.jsonDepthMax >= 8, 'a replay file (6 levels deep) fits the depth limit');

/** Builds the typed error a reader throws: the caller knows which flag or field the input came from. */
export type RefuseInput = (accepted: string, got: unknown) => Error;

export function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/**
 * Reads a file of at most `bytesMax` bytes as UTF-8 text (`readBoundedBytes`).
 */
export function readBoundedText(
  path: string,
  what: string,
  refuse: RefuseInput,
  bytesMax: number = inputLimits.fileBytesMax,
): string {
  return readBoundedBytes(path, what, refuse, bytesMax).toString('utf8');
}

/**
 * Reads a file of at most `bytesMax` bytes, in a bounded loop: a file, a device or a FIFO that has
 * more is refused as soon as the cap is passed, without reading the rest.
 */
export function readBoundedBytes(
  path: string,
  what: string,
  refuse: RefuseInput,
  bytesMax: number = inputLimits.fileBytesMax,
): Buffer {
  assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, `readBoundedText: bad bytesMax ${bytesMax}`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw refuse(`a readable ${what}`, `${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    // One more byte than the cap tells "exactly the cap" from "more than the cap".
    const chunk = Buffer.allocUnsafe(Math.min(inputLimits.readChunkBytes, bytesMax + 1));
    for (;;) {
      let read: number;
      try {
        read = readSync(fd, chunk, 0, Math.min(chunk.length, bytesMax + 1 - total), null);
      } catch (error) {
        throw refuse(
          `a readable ${what}`,
          `${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
        );
      }
      if (read === 0) break;
      total += read;
      if (total > bytesMax) {
        throw refuse(
          `a ${what} of at most ${formatBytes(bytesMax)} (the input size limit)`,
          `${path}: more than ${formatBytes(bytesMax)}`,
        );
      }
      chunks.push(Buffer.from(chunk.subarray(0, read)));
    }
  } finally {
    closeSync(fd);
  }
  assert(total <= bytesMax, 'the loop stops at the cap');
  return Buffer.concat(chunks, total);
}

/**
 * The deepest nesting of objects and arrays in JSON `text`, counted by one pass over the characters
 * (iterative: a document nested 100,000 deep cannot overflow the stack here). Strings are skipped,
 * escapes included; invalid JSON may give any depth and is left to JSON.parse to refuse.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c /* \ */) i++;
      else if (char === 0x22 /* " */) inString = false;
      continue;
    }
    if (char === 0x22) inString = true;
    else if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) depth--;
  }
  return deepest;
}

/** JSON.parse after the depth check; a bad document is refused through `refuse` with where it broke. */
export function parseBoundedJson(text: string, what: string, refuse: RefuseInput, source: string): unknown {
  const depth = jsonDepth(text);
  if (depth > inputLimits.jsonDepthMax) {
    throw refuse(
      `a ${what} nested at most ${inputLimits.jsonDepthMax} levels deep (the input depth limit)`,
      `${source}: ${depth} levels`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw refuse(`a ${what} of valid JSON`, `${source}: ${(error as Error).message}`);
  }
}

/**
 * A JSON file from outside: size capped while reading, depth checked before parsing. `what` names the
 * kind of file in the refusal ("config file", "replay file").
 */
export function readJsonInput(path: string, what: string, refuse: RefuseInput, bytesMax?: number): unknown {
  return parseBoundedJson(readBoundedText(path, what, refuse, bytesMax), what, refuse, path);
}
