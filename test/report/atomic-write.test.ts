import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputError } from '../../src/errors.js';
import { writeFileAtomic, writeNewFileAtomic } from '../../src/report/atomic-write.js';

/** The one atomic writer (issue 21 item 7: `config init` uses it too, for a file that must be new). */
const root = mkdtempSync(join(tmpdir(), 'asi-emu-atomic-write-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class Exists extends Error {}
const refuse = () => new Exists('exists');

describe('writeNewFileAtomic', () => {
  it('writes a file that does not exist yet, directories included, and leaves no temporary', () => {
    const path = join(root, 'new', 'deeper', 'a.json');
    writeNewFileAtomic(path, 'one\n', '--out', refuse);
    expect(readFileSync(path, 'utf8')).toBe('one\n');
    expect(readdirSync(join(root, 'new', 'deeper'))).toEqual(['a.json']);
  });

  it('refuses an existing file with the caller’s error, leaving it unchanged and no temporary', () => {
    const directory = join(root, 'exists');
    const path = join(directory, 'b.json');
    writeNewFileAtomic(path, 'first\n', '--out', refuse);
    expect(() => writeNewFileAtomic(path, 'second\n', '--out', refuse)).toThrow(Exists);
    expect(readFileSync(path, 'utf8')).toBe('first\n');
    expect(readdirSync(directory)).toEqual(['b.json']);
  });

  it('refuses a link to an existing file (the link followed), and a device', () => {
    const target = join(root, 'target.json');
    writeFileSync(target, 'kept\n');
    const link = join(root, 'link.json');
    symlinkSync(target, link);
    expect(() => writeNewFileAtomic(link, 'x', '--out', refuse)).toThrow(Exists);
    expect(readFileSync(target, 'utf8')).toBe('kept\n');
    expect(() => writeNewFileAtomic('/dev/null', 'x', '--out', refuse)).toThrow(Exists);
  });

  it('writeFileAtomic replaces an existing file; a failure is an OutputError naming the flag', () => {
    const path = join(root, 'replace.json');
    writeFileAtomic(path, 'old');
    writeFileAtomic(path, 'new');
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(() => writeFileAtomic(join(path, 'under-a-file.json'), 'x', '--json')).toThrow(OutputError);
    expect(() => writeNewFileAtomic(join(path, 'under-a-file.json'), 'x', '--json', refuse)).toThrow(
      /^--json: cannot write/,
    );
  });
});
