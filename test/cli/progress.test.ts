import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { etaSeconds, formatDuration, progressHooks, runProgress } from '../../src/cli/progress.js';

/**
 * Issue 20 item 7: progress within a run, with an ETA. The bar is drawn on a stand-in terminal (a
 * stream that says it is a TTY and keeps what it is sent), on a clock the test moves, and with
 * cli-progress's own timers and Date faked, so nothing here depends on how fast the machine is.
 * The CLI's bar on a real pseudo-terminal is tested through util-linux `script` (bench-workers.test.ts,
 * sweep.test.ts).
 */

function terminal(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    columns: 200,
    rows: 40,
    write: (chunk: string | Uint8Array, ...rest: unknown[]) => {
      chunks.push(String(chunk));
      const callback = rest.find((argument) => typeof argument === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

/** The last state the bar drew (lines are redrawn in place after a carriage-return escape). */
function lastDrawn(text: string): string {
  const draws = text.split('\x1b[1G').filter((draw) => draw.includes('runs |'));
  return draws.at(-1) ?? '';
}

describe('progress within a run', () => {
  let ci: string | undefined;
  beforeEach(() => {
    ci = process.env.CI;
    delete process.env.CI;
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
    if (ci !== undefined) process.env.CI = ci;
  });

  it('moves the bar within a run and estimates the time left at the mean rate so far', () => {
    const { stream, text } = terminal(true);
    let nowMs = 0;
    const progress = runProgress('bench', 2, { stream, clock: () => nowMs });
    const hooks = progressHooks(progress, 20_000);
    hooks.onRun('asi on sysbench-cpu', false);
    // Half of the first run's exits, 10 s in: a quarter of the work, so 30 s left.
    nowMs = 10_000;
    hooks.onRunProgress(10_000);
    vi.advanceTimersByTime(500);
    expect(lastDrawn(text())).toMatch(
      /^bench \|[^|]+\| 25% \| 0\/2 runs \| asi on sysbench-cpu\.\.\. \| 0:10 elapsed, ETA 0:30/,
    );
    hooks.onRun('asi on sysbench-cpu', true);
    hooks.onRun('none on sysbench-cpu', false);
    nowMs = 30_000;
    hooks.onRunProgress(15_000);
    vi.advanceTimersByTime(500);
    expect(lastDrawn(text())).toMatch(
      / 87% \| 1\/2 runs \| none on sysbench-cpu\.\.\. \| 0:30 elapsed, ETA 0:04/,
    );
    // A run past its target (its last step's exits) stays within its own share.
    hooks.onRunProgress(25_000);
    hooks.onRun('none on sysbench-cpu', true);
    progress.stop();
    expect(lastDrawn(text())).toMatch(/ 100% \| 2\/2 runs \| none on sysbench-cpu \| 0:30 elapsed, ETA 0:00/);
  });

  it('draws nothing where stderr is not a terminal, or in CI', () => {
    const piped = terminal(false);
    const quiet = runProgress('bench', 3, { stream: piped.stream });
    quiet.begin('a');
    quiet.within(0.5);
    quiet.tick('a');
    quiet.stop();
    expect(piped.text()).toBe('');
    process.env.CI = 'true';
    const inCi = terminal(true);
    const ciProgress = runProgress('bench', 3, { stream: inCi.stream });
    ciProgress.within(0.5);
    ciProgress.stop();
    expect(inCi.text()).toBe('');
  });

  it('a single run shows its bar too (it may be the long one)', () => {
    const { stream, text } = terminal(true);
    const progress = runProgress('bench', 1, { stream, clock: () => 0 });
    progress.begin('asi on sysbench-cpu');
    progress.within(0.5);
    vi.advanceTimersByTime(500);
    expect(lastDrawn(text())).toMatch(/ 50% \| 0\/1 runs \| asi on sysbench-cpu\.\.\./);
    progress.stop();
  });
});

describe('the estimate', () => {
  it('is the mean rate so far applied to what is left; none before 2% or 1 s', () => {
    expect(etaSeconds(10_000, 0.25)).toBe(30);
    expect(etaSeconds(10_000, 1)).toBe(0);
    expect(etaSeconds(10_000, 0.01)).toBeNull();
    expect(etaSeconds(500, 0.5)).toBeNull();
  });

  it('reads as a terminal shows durations', () => {
    expect(formatDuration(null)).toBe('-');
    expect(formatDuration(7.4)).toBe('0:07');
    expect(formatDuration(723)).toBe('12:03');
    expect(formatDuration(3723)).toBe('1:02:03');
  });
});
