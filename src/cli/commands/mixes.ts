import type { Command } from 'commander';
import {
  builtinMix,
  builtinMixes,
  defaultExitsPerSecond,
  type ExitMix,
  mixClassOf,
} from '../../cpu/mixes.js';
import { formatTable } from '../../report/machine-table.js';

/** `asi-emu mixes [name]`: the built-in exit mixes with their sources and weights. */
export function registerMixesCommand(program: Command): void {
  program
    .command('mixes')
    .description('list the built-in VM-exit mixes: where each comes from and its weights per exit reason')
    .argument('[name]', 'show only this mix')
    .option(
      '--json',
      'print JSON instead of text (name, class, description, source, weights, exitsPerSecond)',
    )
    .addHelpText(
      'after',
      [
        '',
        'Weights are percentages as published (perf kvm stat style); a run normalizes them, so "share" is',
        'what a run draws. A key is an exit reason (HLT) or a reason and a handler variant (EPT_VIOLATION:alloc).',
        `A mix's rate is its source's exits per second per vCPU; a mix without one runs at ${defaultExitsPerSecond}/s.`,
        'Class kvm: a vCPU, its exits are VM exits. Class user: a host process, its "exits" are kernel entries',
        '(read, write, page-fault, futex, syscall); it runs under none and the linux-asi policies.',
        '',
        'Examples:',
        '  asi-emu mixes',
        '  asi-emu mixes idle-tracing',
        '  asi-emu mixes --json > mixes.json',
        '',
      ].join('\n'),
    )
    .action((name: string | undefined, options: { json?: boolean }) => {
      const mixes = name === undefined ? builtinMixes : [builtinMix(name, 'mixes [name]')];
      if (options.json) {
        // Every mix says its rate: the published one, or null (its description says why).
        // Every mix says its class too: kvm (VM exits) or user (a host process's kernel entries).
        const withRates = mixes.map((mix) => ({
          ...mix,
          class: mixClassOf(mix),
          exitsPerSecond: mix.exitsPerSecond ?? null,
        }));
        process.stdout.write(`${JSON.stringify(withRates, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${mixes.map(formatMix).join('\n\n')}\n`);
    });
}

/** One mix for a person: name and description, source, then its weights, largest first. */
export function formatMix(mix: ExitMix): string {
  const entries = Object.entries(mix.weights).sort(([, a], [, b]) => b - a);
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  const table = formatTable(
    ['exit', 'weight', 'share'],
    entries.map(([key, weight]) => [key, weight.toString(), `${((weight / total) * 100).toFixed(1)}%`]),
  );
  const indented = table
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  const rate =
    mix.exitsPerSecond == null
      ? `none published (runs at ${defaultExitsPerSecond}/s unless workload.exitsPerSecond says otherwise)`
      : `${mix.exitsPerSecond} exits/s per vCPU`;
  const runs =
    mixClassOf(mix) === 'user'
      ? 'user (a host process: its exits are kernel entries; runs under none and linux-asi policies)'
      : 'kvm (a vCPU: its exits are VM exits)';
  return `${mix.name}: ${mix.description}\n  class: ${runs}\n  source: ${mix.source}\n  rate: ${rate}\n${indented}`;
}
