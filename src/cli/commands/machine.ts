import { type Command, Option } from 'commander';
import { memoryMiBMax } from '../../constants.js';
import { ConfigError } from '../../errors.js';
import { createMachine } from '../../machine.js';
import { formatMachineSummary } from '../../report/machine-table.js';
import { writeOutputs } from '../../report/output-files.js';
import { machineSection, readJsonFile } from '../config-file.js';
import { integerFlag } from '../flags.js';
import { checkOutputs } from '../outputs.js';

export function registerMachineCommand(program: Command): void {
  program
    .command('machine')
    .description('build a machine and print what the model built: frames and owners, address spaces, regions')
    .option('--config <file>', 'JSON config file with a "machine" section')
    .addOption(new Option('--cores <n>', 'cores (1..256)').argParser(integerFlag('--cores', 1, 256)))
    .addOption(new Option('--smt <n>', 'hyperthreads per core (1..4)').argParser(integerFlag('--smt', 1, 4)))
    .addOption(
      new Option('--memory-mib <n>', `physical memory in MiB (1..${memoryMiBMax})`).argParser(
        integerFlag('--memory-mib', 1, memoryMiBMax),
      ),
    )
    .option('--json <file>', 'also write the summary as JSON (atomically)')
    .addHelpText(
      'after',
      '\nExamples:\n  asi-emu machine\n  asi-emu machine --cores 4 --smt 2 --json machine.json\n',
    )
    .action(
      async (options: {
        config?: string;
        cores?: number;
        smt?: number;
        memoryMib?: number;
        json?: string;
      }) => {
        const { say } = checkOutputs(options.json ? [{ flag: '--json', path: options.json }] : []);
        const fromFile = options.config ? machineSection(readJsonFile(options.config, '--config')) : {};
        if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile))
          throw new ConfigError('machine', 'a JSON object of machine fields', fromFile);
        const machineConfig = { ...fromFile } as Record<string, unknown>;
        if (options.cores !== undefined) machineConfig.cores = options.cores;
        if (options.smt !== undefined) machineConfig.smt = options.smt;
        if (options.memoryMib !== undefined) machineConfig.memoryMiB = options.memoryMib;
        const machine = createMachine(machineConfig);
        const summary = machine.summary();
        say(`${formatMachineSummary(summary)}\n`);
        if (options.json) {
          await writeOutputs([
            { flag: '--json', path: options.json, contents: `${JSON.stringify(summary, null, 2)}\n` },
          ]);
        }
      },
    );
}
