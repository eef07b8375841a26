import { Presets, SingleBar } from 'cli-progress';

/**
 * A progress bar over a known number of runs, moving within each run too, with an estimate of the
 * time left; or nothing where it would only clutter (CI, pipes).
 */
export interface RunProgress {
  /** A run starts; `label` says which, so a long run shows what it is waiting on. */
  begin(label: string): void;
  /**
   * The current run is `fraction` (0..1) done: a long run moves the bar as it goes. The sim's runs call
   * this from inside their synchronous loop (every 65,536 steps, backend/sim/run-sim.ts `onProgress`);
   * cli-progress draws on such an update itself (its `synchronousUpdate`, at most every 200 ms), so the
   * run need not give the event loop a turn for the bar to move.
   */
  within(fraction: number): void;
  /** One more run done; `label` says which (e.g. "asi on sysbench-cpu"). */
  tick(label: string): void;
  stop(): void;
}

/** Bar units per run: a run's progress moves the bar in thousandths of a run. */
const unitsPerRun = 1000;
/**
 * No estimate before this share of the work is done, or this long into it: the first runs include
 * start-up (module loading, V8 warming up) and a calibration run per config, so an early rate is not
 * the rate of the rest.
 */
const etaFractionMin = 0.02;
const etaElapsedMsMin = 1000;

/**
 * Seconds left, from the time spent and the share done, at the mean rate so far (the rate of the whole
 * work rather than of the last few updates: runs of different policies and exit rates differ in speed,
 * and a mean over all of them steadies the estimate); null while too little is done to say.
 */
export function etaSeconds(elapsedMs: number, fraction: number): number | null {
  if (!(fraction >= etaFractionMin) || elapsedMs < etaElapsedMsMin) return null;
  if (fraction >= 1) return 0;
  return ((elapsedMs / fraction) * (1 - fraction)) / 1000;
}

/** `0:07`, `12:03`, `1:02:03`: a duration as a terminal shows it; `-` for none. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '-';
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}

export interface RunProgressOptions {
  /** Where the bar goes (default process.stderr); shown only where `isTTY` is true. */
  stream?: NodeJS.WriteStream;
  /** Milliseconds, monotonic (default performance.now): the elapsed time and the estimate. */
  clock?: () => number;
}

/**
 * On a terminal (stderr a TTY, CI unset), a cli-progress bar on stderr; elsewhere a no-op, so logs and
 * `--json` consumers see only the results (issue 6: a progress bar on a TTY, quiet in CI and pipes).
 * Shown for one run too: a single long run moves the bar within itself (issue 20), and the bar clears
 * itself when the work ends.
 */
export function runProgress(what: string, total: number, options: RunProgressOptions = {}): RunProgress {
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY !== true || process.env.CI || total < 1)
    return { begin: () => {}, within: () => {}, tick: () => {}, stop: () => {} };
  const clock = options.clock ?? (() => performance.now());
  const startMs = clock();
  const bar = new SingleBar(
    {
      format: `${what} |{bar}| {percentage}% | {runs}/{totalRuns} runs | {label} | {spent} elapsed, ETA {left}`,
      hideCursor: true,
      clearOnComplete: true,
      stream,
    },
    Presets.shades_classic,
  );
  let done = 0;
  let label = '';
  const payload = (value: number) => {
    const elapsedMs = clock() - startMs;
    return {
      runs: done,
      totalRuns: total,
      label,
      spent: formatDuration(elapsedMs / 1000),
      left: formatDuration(etaSeconds(elapsedMs, value / (total * unitsPerRun))),
    };
  };
  // Payload keys of our own: cli-progress fills `{eta}` and `{duration}` with its own figures first.
  bar.start(total * unitsPerRun, 0, payload(0));
  const update = (value: number) => bar.update(value, payload(value));
  return {
    begin: (next) => {
      label = `${next}...`;
      update(done * unitsPerRun);
    },
    within: (fraction) => {
      // Clamped: a run may pass its exit target by the exits its last step took; it is whole only
      // when it ends (`tick`).
      const share = Math.min(Math.max(fraction, 0), 1);
      update(done * unitsPerRun + Math.min(Math.floor(share * unitsPerRun), unitsPerRun - 1));
    },
    tick: (next) => {
      done = Math.min(done + 1, total);
      label = next;
      update(done * unitsPerRun);
    },
    stop: () => bar.stop(),
  };
}

/**
 * `compareRepeated`'s run hooks on a bar: each run begins and ticks, and moves the bar within itself
 * as its workload exits (of `exitsPerRun`) come.
 */
export function progressHooks(
  progress: RunProgress,
  exitsPerRun: number,
): { onRun: (label: string, done: boolean) => void; onRunProgress: (exits: number) => void } {
  return {
    onRun: (label, done) => (done ? progress.tick(label) : progress.begin(label)),
    onRunProgress: (exits) => progress.within(exits / exitsPerRun),
  };
}
