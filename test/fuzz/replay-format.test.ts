import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assert } from '../../src/assert.js';
import { ConfigError } from '../../src/errors.js';
import { runFuzzCase } from '../../src/fuzz/fuzz-case.js';
import { replayCase, replayDocumentOf } from '../../src/fuzz/replay.js';
import {
  parseReplay,
  type ReplayDocument,
  readReplayFile,
  replaySchemaVersion,
  writeReplayFile,
} from '../../src/fuzz/replay-format.js';
import { caseSeedOf } from '../../src/fuzz/shard.js';
import { generateCase, shrinkCase } from '../../src/fuzz/shrink.js';
import { plantedBug } from '../../src/policy/planted.js';

const seed = 1;
const policyName = 'planted-no-flush-after-nmi';
const directory = mkdtempSync(join(tmpdir(), 'asi-emu-replay-'));
let document: ReplayDocument;

beforeAll(() => {
  const { policy } = plantedBug(policyName);
  for (let caseIndex = 0; caseIndex < 50; caseIndex++) {
    const caseSeed = caseSeedOf(seed, caseIndex);
    const original = generateCase(caseSeed);
    const { verdict } = runFuzzCase(original, policy);
    if (verdict.failure === null) continue;
    const shrunk = shrinkCase(caseSeed, policy, verdict.failure);
    assert(shrunk !== null, 'a built-in policy fails again');
    document = replayDocumentOf(
      { name: policyName },
      { campaignSeed: seed, caseIndex, caseSeed },
      original,
      shrunk,
      shrunk,
    );
    return;
  }
  throw new Error(`${policyName}: no failing case in 50 (seed ${seed})`);
});
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function withVersion(version: unknown): unknown {
  return { ...JSON.parse(JSON.stringify(document)), schemaVersion: version };
}

describe(`replay files (${policyName}, campaign seed ${seed})`, () => {
  it('round trip: written atomically, read back equal, nothing else left in the directory', () => {
    const path = join(directory, 'round-trip.replay.json');
    writeReplayFile(path, document);
    expect(readReplayFile(path)).toEqual(document);
    expect(readdirSync(directory)).toEqual(['round-trip.replay.json']);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({
      format: 'asi-emu-replay',
      schemaVersion: 3,
    });
  });

  it('replaying a file of this version gives the identical trace, every time', async () => {
    const path = join(directory, 'determinism.replay.json');
    writeReplayFile(path, document);
    const first = await replayCase(readReplayFile(path), { keepEvents: true });
    const second = await replayCase(readReplayFile(path), { keepEvents: true });
    expect(first.reproduced).toBe(true);
    expect(first.sameVersion).toBe(true);
    expect(first.traceHashMatches).toBe(true);
    expect(first.verdict.traceHash).toBe(document.expected.traceHash);
    expect(second.verdict.traceHash).toBe(first.verdict.traceHash);
    expect(second.events).toEqual(first.events);
    expect(first.events.length).toBeGreaterThan(0);
    expect(first.verdict.violation?.recentEvents?.length).toBeGreaterThan(0);
  });

  it('refuses an older schema version with a message saying which versions it reads', () => {
    expect(() => parseReplay(withVersion(1), 'old.json')).toThrow(ConfigError);
    expect(() => parseReplay(withVersion(1), 'old.json')).toThrow(
      /old\.json: schemaVersion: replay schema version 2 or 3 .*older replay schema version.*re-run its campaign/,
    );
  });

  it('reads a version-2 file (no drawn linux-asi settings) and replays it to the same trace', async () => {
    expect(replaySchemaVersion).toBe(3);
    const old = parseReplay(withVersion(2), 'v2.json');
    const replayed = await replayCase(old);
    expect(replayed.reproduced).toBe(true);
    expect(replayed.traceHashMatches).toBe(true);
    const withSettings = JSON.parse(JSON.stringify(withVersion(2)));
    withSettings.case.linuxAsi = { exitOn: 'mm-switch' };
    expect(() => parseReplay(withSettings, 'v2.json')).toThrow(
      /v2\.json: case\.linuxAsi: absent in a replay schema version 2 file/,
    );
  });

  it('refuses an unknown (newer) version and a file with no version', () => {
    expect(() => parseReplay(withVersion(99), 'new.json')).toThrow(
      /unknown replay schema version.*\(got 99\)/,
    );
    expect(() => parseReplay(withVersion(undefined), 'none.json')).toThrow(/no replay schema version/);
    expect(() => parseReplay(withVersion('1'), 'text.json')).toThrow(/schemaVersion/);
  });

  it('refuses what is not a replay file, and names a bad field', () => {
    expect(() => parseReplay({ format: 'something-else' }, 'x.json')).toThrow(/not an asi-emu replay file/);
    expect(() => parseReplay([], 'x.json')).toThrow(ConfigError);
    const badChoice = JSON.parse(JSON.stringify(document));
    badChoice.case.choices = [-1];
    expect(() => parseReplay(badChoice, 'x.json')).toThrow(/x\.json\.case\.choices/);
    const path = join(directory, 'broken.replay.json');
    writeFileSync(path, '{"format": "asi-emu-replay", ');
    expect(() => readReplayFile(path)).toThrow(/valid JSON/);
    expect(() => readReplayFile(join(directory, 'missing.json'))).toThrow(/ENOENT/);
  });

  it('a hand-edited case that is no valid machine is refused on reading, naming the field', () => {
    const edited = JSON.parse(JSON.stringify(document));
    edited.case.machine.cores = 0;
    expect(() => parseReplay(edited, 'edited.json')).toThrow(/^edited\.json: case\.machine\.cores/);
  });

  it("a hand-edited case past the fuzzer's own limits is refused on reading, naming the field", () => {
    const edited = JSON.parse(JSON.stringify(document));
    edited.case.machine.smt = 9;
    expect(() => parseReplay(edited, 'edited.json')).toThrow(/case\.machine\.smt: at most 4/);
  });
});
