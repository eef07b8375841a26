import type { Command } from 'commander';
import { designComparison, designSources } from '../../policy/design-comparison.js';
import { type Policy, policies, policyScopes, safePolicyNames } from '../../policy/index.js';
import { plantedBugs } from '../../policy/planted.js';

/** `asi-emu policies`: the built-in mitigation policies, one line each (and the planted bugs). */
export function registerPoliciesCommand(program: Command): void {
  program
    .command('policies')
    .description('list the built-in mitigation policies, one line each, and whether each is meant to be safe')
    .option(
      '--planted',
      'also list the planted-bug policies the fuzzer must catch, with the invariants they break',
    )
    .option('--long', 'add two lines per policy: what it models, and what it leaves out')
    .option(
      '--compare',
      "the 2019 KVM ASI RFC (asi) against today's Linux ASI (linux-asi), design question by question",
    )
    .option(
      '--json',
      'print JSON instead of text (name, safe, description, the policy switches, models, leavesOut)',
    )
    .addHelpText(
      'after',
      [
        '',
        '"safe" policies are held to every invariant by the test suite; "unsafe" ones (none, l1d-flush, ...)',
        'are baselines that must be caught breaking them.',
        '',
        'Examples:',
        '  asi-emu policies',
        '  asi-emu policies --planted',
        '  asi-emu policies --long',
        '  asi-emu policies --compare',
        "  asi-emu policies --json | jq -r '.[] | select(.safe) | .name'",
        '',
      ].join('\n'),
    )
    .action((options: { json?: boolean; planted?: boolean; long?: boolean; compare?: boolean }) => {
      if (options.compare) {
        process.stdout.write(compareText(options.json === true));
        return;
      }
      const rows = Object.entries(policies).map(([name, policy]) => ({
        ...policyJson(name, policy),
        safe: (safePolicyNames as readonly string[]).includes(name),
        ...policyScopes[name],
      }));
      const planted = options.planted
        ? plantedBugs.map((bug) => ({
            ...policyJson(bug.policy.name, bug.policy),
            safe: false,
            breaks: bug.breaks,
          }))
        : [];
      if (options.json) {
        process.stdout.write(`${JSON.stringify([...rows, ...planted], null, 2)}\n`);
        return;
      }
      const width = Math.max(...[...rows, ...planted].map((row) => row.name.length));
      const lines = rows.flatMap((row) => {
        const line = `${row.name.padEnd(width)}  ${row.safe ? 'safe  ' : 'unsafe'}  ${row.description}`;
        if (!options.long) return [line];
        const indent = ' '.repeat(width + 10);
        return [line, `${indent}models:     ${row.models}`, `${indent}leaves out: ${row.leavesOut}`];
      });
      if (planted.length > 0) {
        lines.push('', 'planted bugs (unsafe on purpose: the monitor and the fuzzer must catch them):');
        for (const row of planted) {
          lines.push(`${row.name.padEnd(width)}  breaks ${row.breaks.join('/')}  ${row.description}`);
        }
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

function policyJson(name: string, policy: Policy) {
  return {
    name,
    description: policy.description,
    smt: policy.smt,
    stun: policy.stun,
    flushPoint: policy.plantedBugs.flushPoint,
    waitFor: policy.plantedBugs.waitFor,
  };
}

/** `policies --compare`: one row per design question; JSON has the rows and both sources. */
function compareText(json: boolean): string {
  if (json) return `${JSON.stringify({ sources: designSources, rows: designComparison }, null, 2)}\n`;
  const aspectWidth = Math.max(...designComparison.map((row) => row.aspect.length));
  const lines = designComparison.flatMap((row) => [
    `${row.aspect.padEnd(aspectWidth)}  asi:       ${row.asi}`,
    `${' '.repeat(aspectWidth)}  linux-asi: ${row.linuxAsi}`,
  ]);
  return [
    `asi:       ${designSources.asi}`,
    `linux-asi: ${designSources.linuxAsi}`,
    '',
    ...lines,
    '',
    'Each rule and its source: docs/model.md (asi), docs/linux-asi.md (linux-asi).',
    '',
  ].join('\n');
}
