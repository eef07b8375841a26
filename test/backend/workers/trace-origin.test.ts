import { describe, expect, it } from 'vitest';
import { runWorkers } from '../../../src/backend/workers/run-workers.js';
import { EventLog } from '../../../src/invariants/event-log.js';
import { policies } from '../../../src/policy/index.js';
import { distBuilt, workersConfig } from './helpers.js';

/**
 * The workers backend's kept events are in ns since the run's start (issue 20, item 8), not since its
 * workers were spawned (~0.35 s of start-up before the first event). Not a timing test: every event
 * happens between the start and the workers' stop, which bounds its time by the run's own wall time.
 */
describe.skipIf(!distBuilt)('workers trace time origin', () => {
  it('every event lies within 0 .. the run wall time', async () => {
    const log = new EventLog(64, true);
    const result = await runWorkers(workersConfig({ run: { exits: 300 } }), policies.asi, { log });
    const events = log.events();
    expect(events.length).toBeGreaterThan(0);
    const wallNs = result.wallSeconds * 1e9;
    for (const event of events) {
      expect(event.timeCycles).toBeGreaterThanOrEqual(0);
      expect(event.timeCycles).toBeLessThanOrEqual(wallNs);
    }
  });
});
