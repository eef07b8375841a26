import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { assert } from '../assert.js';
import { OutputError, UsageError } from '../errors.js';

/**
 * A command's output files as one transaction (issue 18: nothing half-written, nothing lost).
 *
 * Where an output goes follows from what its path names, symlinks followed (a chain too):
 * - `-`, or a path that is this process's standard output (`/dev/stdout`, `/proc/self/fd/1`, or the
 *   very file stdout is redirected to): written to standard output;
 * - a regular file, or a path that does not exist yet (a dangling link's target included): replaced
 *   atomically, by a temporary file in the *target's* directory renamed over it, so a link stays a
 *   link and a reader never sees half a file;
 * - a character device or a FIFO: written in place (a file cannot replace them, and a rename would
 *   turn `/dev/full` into a regular file).
 *
 * `writeOutputs` writes every regular file to its temporary first, then the devices and FIFOs, then
 * standard output, and only then renames the temporaries: any failure before the renames removes
 * every temporary and leaves no output file behind. A device already written cannot be unwritten:
 * that is why devices come after every temporary has been written whole.
 */

/** What a flag asked for: `flag` names it in errors ("--json"), `path` as the user typed it. */
export interface OutputRequest {
  flag: string;
  path: string;
}

/** An output with its contents; a function renders them when the transaction reaches this output. */
export interface OutputFile extends OutputRequest {
  contents: string | Uint8Array | (() => string | Uint8Array);
}

export type OutputTarget =
  | { kind: 'standard-output' }
  /** `path`: the real path to replace (links followed); `exists`: whether something is there now. */
  | { kind: 'file'; path: string; exists: boolean }
  /** `path`: as given (opening it follows links, the kernel's magic links of /proc included). */
  | { kind: 'device' | 'fifo'; path: string };

/** The writes the transaction makes, injectable so a test can fail any one of them (a full disk). */
export interface OutputFileSystem {
  openSync(path: string, flags: number, mode?: number): number;
  writeSync(descriptor: number, buffer: Uint8Array, offset: number, length: number): number;
  closeSync(descriptor: number): void;
  renameSync(from: string, to: string): void;
  /** A hard link: fails with EEXIST if `to` exists (a write that must not replace a file). */
  linkSync(from: string, to: string): void;
  rmSync(path: string): void;
  mkdirSync(path: string): void;
}

export const nodeOutputFileSystem: OutputFileSystem = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  writeSync: (descriptor, buffer, offset, length) => fs.writeSync(descriptor, buffer, offset, length),
  closeSync: (descriptor) => fs.closeSync(descriptor),
  renameSync: (from, to) => fs.renameSync(from, to),
  linkSync: (from, to) => fs.linkSync(from, to),
  rmSync: (path) => fs.rmSync(path, { force: true }),
  mkdirSync: (path) => makeDirectories(path),
};

/**
 * `mkdir -p`, one level at a time. Not `fs.mkdirSync(path, { recursive: true })`: under /proc, where
 * a mkdir fails with ENOENT below a directory that exists, Node 20's recursive mkdir retries forever
 * (a hang, found by `--json /proc/missing/o.json`). Bounded by the path's depth; the first mkdir that
 * fails (other than on a directory made meanwhile) throws its error.
 */
export function makeDirectories(path: string): void {
  const missing: string[] = [];
  for (let current = resolve(path); ; current = dirname(current)) {
    if (fs.existsSync(current)) break;
    missing.push(current);
    if (dirname(current) === current) break;
  }
  for (const directory of missing.reverse()) {
    try {
      fs.mkdirSync(directory);
    } catch (error) {
      if (!isSystemError(error) || error.code !== 'EEXIST') throw error;
    }
  }
}

export interface WriteOutputsOptions {
  fileSystem?: OutputFileSystem;
  /** Writes to standard output; resolves once written. Default: process.stdout. */
  standardOutput?: (contents: string | Uint8Array) => Promise<void>;
  /** Told when a FIFO has no reader yet and the write waits for one. Default: a line on stderr. */
  onWaitForReader?: (request: OutputRequest) => void;
}

/** Linux and macOS give up on a chain of more links than this (ELOOP); so do we. */
const symlinkHopsMax = 40;
/** A temporary file's name keeps this much of its target's name: the whole could pass NAME_MAX. */
const temporaryNameStemLengthMax = 100;

/** Meanings of the errno codes an output meets most, for errors that carry only the code. */
const errnoMeanings: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
  EFBIG: 'file too large',
  EEXIST: 'file exists',
};

/** "ENOSPC (no space left on device)": the code a script can grep and the meaning a person reads. */
export function describeSystemError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return error instanceof Error ? error.message : String(error);
  // Node's messages read "ENOSPC: no space left on device, write": take the meaning from there.
  const message = error instanceof Error ? error.message : '';
  const fromMessage = message.startsWith(`${code}: `) ? message.slice(code.length + 2).split(',')[0] : '';
  const meaning = fromMessage || errnoMeanings[code];
  return meaning ? `${code} (${meaning})` : code;
}

function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

function statOrNull(path: string): fs.Stats | null {
  try {
    return fs.statSync(path);
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return null;
    throw error;
  }
}

/** The file standard output is, or null where there is none (a closed descriptor). */
function standardOutputStats(): fs.Stats | null {
  try {
    return fs.fstatSync(1);
  } catch {
    return null;
  }
}

function sameFile(a: fs.Stats, b: fs.Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Where a path that does not exist leads: through a chain of dangling links to the name to create,
 * each link's target read relative to the real directory the link lies in (as the kernel reads it).
 */
function followDanglingLinks(path: string): string {
  let current = resolve(path);
  for (let hop = 0; hop <= symlinkHopsMax; hop++) {
    let stats: fs.Stats;
    try {
      stats = fs.lstatSync(current);
    } catch (error) {
      if (isSystemError(error) && error.code === 'ENOENT') return realDirectoryPath(current);
      throw error;
    }
    if (!stats.isSymbolicLink()) return realDirectoryPath(current);
    current = resolve(realDirectoryPath(dirname(current)), fs.readlinkSync(current));
  }
  throw Object.assign(new Error(`ELOOP: too many levels of symbolic links, open '${path}'`), {
    code: 'ELOOP',
  });
}

/** `path` with its directory made real (links resolved) as far as it exists: one name per place. */
function realDirectoryPath(path: string): string {
  const directory = dirname(path);
  if (directory === path) return path;
  try {
    return join(fs.realpathSync(directory), basename(path));
  } catch {
    return join(realDirectoryPath(directory), basename(path));
  }
}

/**
 * Where an output goes (see the module comment). An OutputError naming the flag when the path can
 * hold no output: a directory, a socket, a block device, a link loop, a path it may not look at.
 */
export function resolveOutputTarget(request: OutputRequest): OutputTarget {
  if (request.path === '-') return { kind: 'standard-output' };
  assert(request.path.length > 0, 'an output path is not empty');
  try {
    const stats = statOrNull(request.path);
    if (stats === null) return { kind: 'file', path: followDanglingLinks(request.path), exists: false };
    const standardOutput = standardOutputStats();
    if (standardOutput !== null && sameFile(stats, standardOutput)) return { kind: 'standard-output' };
    if (stats.isFile()) return { kind: 'file', path: fs.realpathSync(request.path), exists: true };
    if (stats.isCharacterDevice()) return { kind: 'device', path: request.path };
    if (stats.isFIFO()) return { kind: 'fifo', path: request.path };
    if (stats.isDirectory())
      throw new UsageError(request.flag, 'a file path (it names a directory)', request.path);
    const what = stats.isSocket() ? 'a socket' : 'a block device';
    throw new OutputError(
      request.flag,
      request.path,
      `it is ${what} (a file, a character device, a FIFO or - for standard output)`,
    );
  } catch (error) {
    if (error instanceof OutputError || error instanceof UsageError) throw error;
    if (isSystemError(error)) throw new OutputError(request.flag, request.path, describeSystemError(error));
    throw error;
  }
}

/** What two outputs are the same place by: the file (device and inode) if it exists, else its path. */
function targetIdentity(target: OutputTarget): string {
  if (target.kind === 'standard-output') return 'standard output';
  if (target.kind === 'file' && !target.exists) return `path ${target.path}`;
  const stats = fs.statSync(target.path);
  return `file ${stats.dev}:${stats.ino}`;
}

/**
 * Refuses two outputs that would land in one place (issue 18: one would silently replace the other):
 * the same path, a link and its target, a hard link, `-` and `/dev/stdout`. A UsageError naming both
 * flags. Returns each request's target, in order.
 */
export function checkOutputCollisions(requests: readonly OutputRequest[]): OutputTarget[] {
  const owners = new Map<string, OutputRequest>();
  return requests.map((request) => {
    const target = resolveOutputTarget(request);
    const identity = targetIdentity(target);
    const earlier = owners.get(identity);
    if (earlier !== undefined) {
      const same = earlier.flag === request.flag ? `another ${request.flag} output` : earlier.flag;
      const place = target.kind === 'standard-output' ? 'standard output' : 'one file';
      throw new UsageError(
        request.flag,
        `an output apart from ${same} (${JSON.stringify(earlier.path)} and this are ${place})`,
        request.path,
      );
    }
    owners.set(identity, request);
    return target;
  });
}

/** Temporary files not yet renamed: removed if the process exits first (EPIPE, a second Ctrl-C). */
const pendingTemporaries = new Set<string>();
let exitCleanupRegistered = false;

function registerTemporary(path: string): void {
  if (!exitCleanupRegistered) {
    exitCleanupRegistered = true;
    process.on('exit', () => {
      for (const temporary of pendingTemporaries) fs.rmSync(temporary, { force: true });
    });
  }
  pendingTemporaries.add(path);
}

function temporaryPathFor(target: string): string {
  const stem = basename(target).slice(0, temporaryNameStemLengthMax);
  return join(dirname(target), `.${stem}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function contentsOf(file: OutputFile): Uint8Array {
  const contents = typeof file.contents === 'function' ? file.contents() : file.contents;
  return typeof contents === 'string' ? Buffer.from(contents, 'utf8') : contents;
}

function writeAll(fileSystem: OutputFileSystem, descriptor: number, bytes: Uint8Array): void {
  let offset = 0;
  // Bounded: every pass writes at least one byte (a write of none would be an endless loop).
  while (offset < bytes.length) {
    const written = fileSystem.writeSync(descriptor, bytes, offset, bytes.length - offset);
    assert(written > 0 && written <= bytes.length - offset, 'a write makes progress');
    offset += written;
  }
}

/** Writes `bytes` to a new file at `path` (which must not exist) and closes it, whatever happens. */
function writeNewFile(fileSystem: OutputFileSystem, path: string, bytes: Uint8Array): void {
  const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
  const descriptor = fileSystem.openSync(path, O_WRONLY | O_CREAT | O_EXCL, 0o666);
  try {
    writeAll(fileSystem, descriptor, bytes);
  } finally {
    fileSystem.closeSync(descriptor);
  }
}

/**
 * Opens a FIFO for writing without hanging silently: a non-blocking open fails with ENXIO while no
 * process reads it; then we say so on stderr and wait (a blocking open) for one. Where a reader is
 * there, the blocking open returns at once; the probe stays open until then so the reader never sees
 * the writer gone (an end of file) in between.
 */
function openFifo(
  fileSystem: OutputFileSystem,
  request: OutputRequest,
  onWaitForReader: (request: OutputRequest) => void,
): number {
  const { O_WRONLY, O_NONBLOCK } = fs.constants;
  let probe: number | null = null;
  try {
    probe = fileSystem.openSync(request.path, O_WRONLY | O_NONBLOCK);
  } catch (error) {
    if (!isSystemError(error) || error.code !== 'ENXIO') throw error;
    onWaitForReader(request);
  }
  try {
    return fileSystem.openSync(request.path, O_WRONLY);
  } finally {
    if (probe !== null) fileSystem.closeSync(probe);
  }
}

function writeInPlace(
  fileSystem: OutputFileSystem,
  request: OutputRequest,
  kind: 'device' | 'fifo',
  bytes: Uint8Array,
  onWaitForReader: (request: OutputRequest) => void,
): void {
  // No O_CREAT, no O_TRUNC: a device is written as it is, never created or replaced.
  const descriptor =
    kind === 'fifo'
      ? openFifo(fileSystem, request, onWaitForReader)
      : fileSystem.openSync(request.path, fs.constants.O_WRONLY);
  try {
    writeAll(fileSystem, descriptor, bytes);
  } finally {
    fileSystem.closeSync(descriptor);
  }
}

function writeProcessStandardOutput(contents: string | Uint8Array): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    process.stdout.write(contents, (error) => {
      // A reader that closed the pipe (`| head`) chose to read no more: not a failed output.
      const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
      if (error && code !== 'EPIPE' && code !== 'ERR_STREAM_DESTROYED') reject(error);
      else resolvePromise();
    });
  });
}

function defaultWaitForReader(request: OutputRequest): void {
  process.stderr.write(`asi-emu: ${request.flag}: waiting for a reader on the FIFO ${request.path}\n`);
}

/**
 * Writes every output or none (see the module comment): an OutputError naming the flag and the path
 * of the first that failed, with every temporary file removed. Outputs must not collide (checked
 * here again: the caller checked before any work ran, when a refusal cost nothing).
 */
export async function writeOutputs(
  files: readonly OutputFile[],
  options: WriteOutputsOptions = {},
): Promise<void> {
  const fileSystem = options.fileSystem ?? nodeOutputFileSystem;
  const standardOutput = options.standardOutput ?? writeProcessStandardOutput;
  const onWaitForReader = options.onWaitForReader ?? defaultWaitForReader;
  const targets = checkOutputCollisions(files);
  assert(targets.length === files.length, 'one target per output');
  const temporaries: { file: OutputFile; temporary: string; target: string }[] = [];
  let current: OutputFile | null = null;
  try {
    // 1. Every regular file to its temporary, in the target's directory (a rename stays in one file
    //    system, and a link stays a link).
    files.forEach((file, index) => {
      const target = targets[index];
      if (target.kind !== 'file') return;
      current = file;
      fileSystem.mkdirSync(dirname(target.path));
      const temporary = temporaryPathFor(target.path);
      registerTemporary(temporary);
      temporaries.push({ file, temporary, target: target.path });
      writeNewFile(fileSystem, temporary, contentsOf(file));
    });
    // 2. Devices and FIFOs, once every temporary is whole: they cannot be taken back.
    files.forEach((file, index) => {
      const target = targets[index];
      if (target.kind !== 'device' && target.kind !== 'fifo') return;
      current = file;
      writeInPlace(fileSystem, file, target.kind, contentsOf(file), onWaitForReader);
    });
    // 3. Standard output.
    for (const [index, file] of files.entries()) {
      if (targets[index].kind !== 'standard-output') continue;
      current = file;
      await standardOutput(contentsOf(file));
    }
    // 4. The renames: each atomic; after the first, the others follow it at once.
    while (temporaries.length > 0) {
      const next = temporaries[0];
      current = next.file;
      fileSystem.renameSync(next.temporary, next.target);
      pendingTemporaries.delete(next.temporary);
      temporaries.shift();
    }
  } catch (error) {
    for (const { temporary } of temporaries) {
      try {
        fileSystem.rmSync(temporary);
      } finally {
        pendingTemporaries.delete(temporary);
      }
    }
    const failed = current as OutputFile | null;
    if (failed !== null && isSystemError(error)) {
      throw new OutputError(failed.flag, failed.path, describeSystemError(error));
    }
    throw error;
  }
  assert(temporaries.length === 0, 'every temporary renamed');
}

/**
 * Writes one regular file atomically, synchronously (a fuzz campaign's replay files and rolling
 * summary, written as it runs): links followed, a temporary in the target's directory renamed over
 * it. An OutputError naming `flag` on failure, with the temporary removed. Not for devices or FIFOs:
 * a campaign rewrites its files, and a stream cannot be rewritten.
 *
 * With `refuseExisting` the file must not exist yet: the temporary is hard-linked to the name, which
 * fails if the name exists (no check-then-write race), and `refuseExisting()` is thrown then.
 */
export function writeFileAtomicSync(
  request: OutputRequest,
  contents: string | Uint8Array,
  fileSystem: OutputFileSystem = nodeOutputFileSystem,
  refuseExisting?: () => Error,
): void {
  const target = resolveOutputTarget(request);
  if (refuseExisting !== undefined && (target.kind !== 'file' || target.exists)) throw refuseExisting();
  if (target.kind !== 'file') {
    throw new OutputError(
      request.flag,
      request.path,
      'a regular file here (it is rewritten as the run goes)',
    );
  }
  const temporary = temporaryPathFor(target.path);
  try {
    fileSystem.mkdirSync(dirname(target.path));
    registerTemporary(temporary);
    writeNewFile(
      fileSystem,
      temporary,
      typeof contents === 'string' ? Buffer.from(contents, 'utf8') : contents,
    );
    if (refuseExisting === undefined) {
      fileSystem.renameSync(temporary, target.path);
    } else {
      fileSystem.linkSync(temporary, target.path);
      fileSystem.rmSync(temporary);
    }
  } catch (error) {
    fileSystem.rmSync(temporary);
    if (refuseExisting !== undefined && isSystemError(error) && error.code === 'EEXIST') {
      throw refuseExisting();
    }
    if (isSystemError(error)) throw new OutputError(request.flag, request.path, describeSystemError(error));
    throw error;
  } finally {
    pendingTemporaries.delete(temporary);
  }
}
