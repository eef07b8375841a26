import { describe, expect, it } from 'vitest';
import { engineTuningOptOutVariable, tuneEngineForSim } from '../src/engine-tuning.js';

describe('tuneEngineForSim', () => {
  it('keeps V8 defaults when the opt-out variable is 1', () => {
    expect(tuneEngineForSim({ [engineTuningOptOutVariable]: '1' })).toBe(false);
  });

  it('raises the inlining budget otherwise, and a second call is harmless', () => {
    expect(tuneEngineForSim({})).toBe(true);
    expect(tuneEngineForSim({ [engineTuningOptOutVariable]: '0' })).toBe(true);
  });
});
