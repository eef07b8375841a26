import type { Command } from 'commander';
import { registerBenchCommand } from './bench.js';
import { registerConfigInitCommand } from './config-init.js';
import { registerExploreCommand } from './explore.js';
import { registerFuzzCommand } from './fuzz.js';
import { registerMachineCommand } from './machine.js';
import { registerMixesCommand } from './mixes.js';
import { registerPoliciesCommand } from './policies.js';
import { registerReplayCommand } from './replay.js';
import { registerSweepCommand } from './sweep.js';

/**
 * Every CLI command, one module each under cli/commands/, registered here in help order. Adding a
 * command: write `commands/<name>.ts` exporting `register<Name>Command(program)` and add one line below.
 */
export function registerCommands(program: Command): void {
  registerBenchCommand(program);
  registerSweepCommand(program);
  registerMachineCommand(program);
  registerMixesCommand(program);
  registerPoliciesCommand(program);
  registerConfigInitCommand(program);
  registerFuzzCommand(program);
  registerReplayCommand(program);
  registerExploreCommand(program);
}
