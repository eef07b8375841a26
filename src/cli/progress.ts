import { Presets, SingleBar } from 'cli-progress';

/** A progress bar over a known number of runs, or nothing where it would only clutter (CI, pipes). */
export interface RunProgress {
  /** One more run done; `label` says which (e.g. "asi on sysbench-cpu"). */
  tick(label: string): void;
  stop(): void;
}

/**
 * On a terminal (stderr a TTY, CI unset), a cli-progress bar on stderr; elsewhere a no-op, so logs and
 * `--json` consumers see only the results (issue 6: a progress bar on a TTY, quiet in CI and pipes).
 */
export function runProgress(what: string, total: number): RunProgress {
  if (process.stderr.isTTY !== true || process.env.CI || total <= 1)
    return { tick: () => {}, stop: () => {} };
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
    tick: (label) => bar.increment(1, { label }),
    stop: () => bar.stop(),
  };
}
