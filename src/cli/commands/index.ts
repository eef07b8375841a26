import type { Command } from 'commander';
import { registerBenchCommand } from './bench.js';
import { registerMachineCommand } from './machine.js';

/**
 * Every CLI command, one module each under cli/commands/, registered here in help order. Adding a
 * command: write `commands/<name>.ts` exporting `register<Name>Command(program)` and add one line below.
 */
export function registerCommands(program: Command): void {
  registerBenchCommand(program);
  registerMachineCommand(program);
}
