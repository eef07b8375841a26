import { Presets, SingleBar } from 'cli-progress';

/** A progress bar over a known number of runs, or nothing where it would only clutter (CI, pipes). */
export interface RunProgress {
  /** A run starts; `label` says which, so a long run shows what it is waiting on. */
  begin(label: string): void;
  /** One more run done; `label` says which (e.g. "asi on sysbench-cpu"). */
  tick(label: string): void;
  stop(): void;
}

/**
 * On a terminal (stderr a TTY, CI unset), a cli-progress bar on stderr; elsewhere a no-op, so logs and
 * `--json` consumers see only the results (issue 6: a progress bar on a TTY, quiet in CI and pipes).
 */
export function runProgress(what: string, total: number, options: { singleRun?: boolean } = {}): RunProgress {
  // One sim run ends in seconds; one workers run may take minutes (`singleRun`: show it anyway).
  if (process.stderr.isTTY !== true || process.env.CI || (total <= 1 && options.singleRun !== true))
    return { begin: () => {}, tick: () => {}, stop: () => {} };
  const bar = new SingleBar(
    {
      format: `${what} |{bar}| {value}/{total} runs | {label} | {duration_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0, { label: '' });
  return {
    begin: (label) => bar.update({ label: `${label}...` }),
    tick: (label) => bar.increment(1, { label }),
    stop: () => bar.stop(),
  };
}
